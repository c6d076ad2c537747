"""anchor_hf.probes.selectivity and .stats: one contrast ratio, one R², one median, each with its choices explicit."""

from __future__ import annotations

import math

import pytest
import torch

from anchor_hf.probes import median, r_squared, selectivity_ratio


def test_selectivity_ratio_divides_by_the_size_of_the_change_elsewhere_floored_in_its_units():
    assert selectivity_ratio(0.2, 0.01, floor=1e-4) == pytest.approx(20.0)
    assert selectivity_ratio(0.2, -0.04, floor=1e-4) == pytest.approx(5.0)  # a fall elsewhere is collateral too
    assert selectivity_ratio(0.2, 0.0, floor=1e-4) == pytest.approx(2000.0)  # untouched elsewhere: the floor
    assert selectivity_ratio(0.2, 0.0, floor=1e-3) == pytest.approx(200.0)  # the floor is the caller's, in its units
    assert selectivity_ratio(-0.1, 0.05, floor=1e-3) == pytest.approx(-2.0)  # the target improving stays negative
    with pytest.raises(ValueError, match="`floor` must be > 0"):
        selectivity_ratio(0.2, 0.01, floor=0.0)


def test_r_squared_is_one_on_a_line_small_on_noise_and_undefined_on_flat_data():
    x = torch.linspace(0, 1, 50)
    assert r_squared(x, 3 * x + 1) == pytest.approx(1.0)
    assert r_squared(x, -x) == pytest.approx(1.0)  # a falling line is explained as well
    noise = torch.randn(50, generator=torch.Generator().manual_seed(0))
    assert r_squared(x, noise) < 0.2
    assert math.isnan(r_squared(x, torch.zeros(50))) and math.isnan(r_squared(torch.ones(50), x))
    with pytest.raises(ValueError, match="1-D of the same length"):
        r_squared(x, x[:10])


def test_r_squared_equals_one_minus_the_residual_share_of_a_least_squares_line():
    """The identity behind the closed form: for a fitted line, R² = corr² = 1 − SS_res / SS_tot."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, generator=g).double(), torch.rand(40, generator=g).double()
    design = torch.stack([x, torch.ones_like(x)], -1)
    fitted = design @ torch.linalg.lstsq(design, y.unsqueeze(-1)).solution
    expected = 1 - (y - fitted.squeeze(-1)).pow(2).sum() / (y - y.mean()).pow(2).sum()
    assert r_squared(x, y) == pytest.approx(float(expected), abs=1e-12)


def test_median_says_what_a_missing_value_does():
    values = [3.0, float("nan"), 1.0, None, 2.0]
    assert median(values, nan="omit") == 2.0
    assert math.isnan(median(values, nan="propagate"))
    assert median([1.0, 2.0, 3.0, 4.0], nan="propagate") == 2.5
    assert median([1.0, math.inf, math.inf], nan="propagate") == math.inf  # a budget that ran out is a value
    assert math.isnan(median([None, float("nan")], nan="omit")) and math.isnan(median([], nan="omit"))
    with pytest.raises(ValueError, match="`nan` must be 'omit' or 'propagate'"):
        median([1.0], nan="drop")
