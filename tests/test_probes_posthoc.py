"""Post-hoc directions: difference of means and LEACE recover a planted direction."""

from __future__ import annotations

import pytest
import torch

from anchor_hf.errors import AnchorDataError
from anchor_hf.probes.posthoc import is_leace_available, leace_direction, mean_difference


def planted(n: int = 800, d: int = 12, seed: int = 0, anisotropic: bool = False):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=g)
    v = v / v.norm()
    y = (torch.rand(n, generator=g) < 0.4).float()
    noise = torch.randn(n, d, generator=g)
    if anisotropic:
        noise = noise * torch.linspace(0.2, 3.0, d)
    return noise + 1.0 * y[:, None] * v + 2.0, y, v


def test_mean_difference_recovers_planted_direction():
    x, y, v = planted()
    assert float(mean_difference(x, y) @ v) > 0.95
    # negative control: with shuffled labels the difference of means is unrelated to v
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    assert abs(float(mean_difference(x, shuffled) @ v)) < 0.6


def test_mean_difference_is_unit_and_points_to_the_concept():
    x, y, _ = planted()
    d = mean_difference(x, y)
    assert float(d.norm()) == pytest.approx(1.0)
    assert float((x[y == 1] @ d).mean()) > float((x[y == 0] @ d).mean())


def test_mean_difference_rejects_one_class():
    with pytest.raises(AnchorDataError, match="both concept and non-concept"):
        mean_difference(torch.randn(5, 3), torch.ones(5))


@pytest.mark.skipif(not is_leace_available(), reason="optional `concept-erasure` package is not installed")
def test_leace_readout_is_the_whitened_mean_difference():
    """LEACE's erased functional is ∝ Σ⁻¹Δμ: with isotropic noise ≈ v, with anisotropic noise it follows Σ⁻¹."""
    x, y, v = planted()
    assert float(leace_direction(x, y) @ v) > 0.9
    xa, ya, va = planted(anisotropic=True, seed=2)
    r = leace_direction(xa, ya)
    centred = torch.cat([xa[ya == 1] - xa[ya == 1].mean(0), xa[ya == 0] - xa[ya == 0].mean(0)])
    sigma = centred.T @ centred / len(xa)
    fisher = torch.linalg.solve(sigma, xa[ya == 1].mean(0) - xa[ya == 0].mean(0))
    assert float(r @ (fisher / fisher.norm())) > 0.95
    # negative control: under anisotropic noise the plain mean difference is a different direction
    assert float(mean_difference(xa, ya) @ (fisher / fisher.norm())) < float(r @ (fisher / fisher.norm()))


@pytest.mark.skipif(not is_leace_available(), reason="optional `concept-erasure` package is not installed")
def test_fit_leace_eraser_makes_the_class_means_coincide():
    """The LEACE theorem on the fitting data: after the edit the two class means are equal (before they differ)."""
    from anchor_hf.probes.posthoc import fit_leace_eraser

    x, y, _ = planted(anisotropic=True, seed=3)
    eraser = fit_leace_eraser(x, y)
    gap_before = (x[y == 1].mean(0) - x[y == 0].mean(0)).norm()
    erased = eraser(x)
    gap_after = (erased[y == 1].mean(0) - erased[y == 0].mean(0)).norm()
    assert float(gap_before) > 0.5  # negative control: the concept is linearly readable before
    assert float(gap_after) < 1e-4 * float(gap_before)  # float32 rounding of a rank-1 edit
