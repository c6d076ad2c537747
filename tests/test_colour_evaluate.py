"""anchor_hf.experiments.colour.ae.evaluate: conditions, per-colour error, selectivity R², geometry criteria.

The models here have hand-made encoders (a designed code, then an identity `nn.Linear` so
ablation has weights to zero), so the geometry is known exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.experiments.colour.ae.evaluate import (GRID_STEPS, condition, measure_conditions, measure_geometry,
                                                      per_colour_mse)
from anchor_hf.probes import r_squared
from anchor_hf.experiments.colour.maths import cube_grid, named_colours, red_similarity, rgb_to_hsv
from anchor_hf.errors import AnchorConfigError
from anchor_hf.experiments.colour.ae.model import ColourAutoencoder, ColourAutoencoderConfig


class Wheel(nn.Module):
    """Hue wheel in dims 0-1 with red on +dim 0 (turned by `turn`), greys in dims 2-3."""

    def __init__(self, turn: float = 0.0) -> None:
        super().__init__()
        self.turn = turn

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        h, s, v = rgb_to_hsv(rgb).unbind(-1)
        sv, angle = s * v, 2 * math.pi * (h + self.turn)
        return torch.stack([sv * angle.cos(), sv * angle.sin(), (1 - sv) * (2 * v - 1), 1 - sv], -1)


class Pole(nn.Module):
    """Red-like colours toward +dim 0 in proportion to their similarity to red; the rest on dims 1-4."""

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        sim = red_similarity(rgb)
        rest = torch.cat([rgb, torch.ones_like(rgb[..., :1])], -1) * (1 - sim).unsqueeze(-1)
        return torch.cat([3 * sim.unsqueeze(-1), rest + 0.01], -1)


def designed(code: nn.Module, width: int) -> ColourAutoencoder:
    torch.manual_seed(0)
    model = ColourAutoencoder(ColourAutoencoderConfig(hidden_size=width, num_nonlinear=1))
    identity = nn.Linear(width, width)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(width))
        identity.bias.zero_()
    model.encoder = nn.Sequential(code, identity)
    return model.eval()


def anchored_config() -> AnchorConfig:
    return AnchorConfig(layers=["bottleneck_norm"], concepts=[
        ConceptAnchor(name="red", vector=[1.0, 0.0, 0.0, 0.0], tau=None),
        ConceptAnchor(name="vibrant", dims=[0, 1], tau=None)])


def isolated_config() -> AnchorConfig:
    return AnchorConfig(layers=["bottleneck_norm"], concepts=[
        ConceptAnchor(name="red", dims=[0], repel=1.0, tau=None)])


def test_r_squared_is_one_for_a_line_and_zero_for_an_even_function():
    x = torch.linspace(-1, 1, 101)
    assert r_squared(x, 3 * x + 2) == pytest.approx(1.0)
    assert r_squared(x, -x) == pytest.approx(1.0)  # squared correlation: sign does not matter
    assert r_squared(x, x ** 2) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(r_squared(x, torch.ones_like(x)))


def test_suppression_changes_only_colours_aligned_with_red_and_removes_its_hooks():
    model, cfg = designed(Wheel(), 4), anchored_config()
    names, named = named_colours()
    with condition(model, cfg, "red", "baseline") as forward:
        before = per_colour_mse(forward, named)
    with condition(model, cfg, "red", "suppress") as forward:
        during = per_colour_mse(forward, named)
    with condition(model, cfg, "red", "baseline") as forward:
        after = per_colour_mse(forward, named)
    assert torch.equal(before, after)  # hooks gone
    changed = {n for n, b, d in zip(names, before.tolist(), during.tolist()) if b != d}
    # red, orange, yellow, magenta, pink point toward +dim 0; lime and purple sit at exactly 90°
    assert changed == {"red", "orange", "yellow", "magenta", "pink"}


def test_ablation_edits_a_copy_and_spares_colours_off_the_axis():
    model, cfg = designed(Pole(), 5), isolated_config()
    weights = [p.detach().clone() for p in model.parameters()]
    grid = cube_grid(GRID_STEPS)
    with condition(model, cfg, "red", "baseline") as forward:
        before = per_colour_mse(forward, grid)
    with condition(model, cfg, "red", "ablate") as forward:
        ablated = per_colour_mse(forward, grid)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    off_axis = red_similarity(grid) == 0
    assert torch.allclose(ablated[off_axis], before[off_axis], atol=1e-6)
    assert not torch.allclose(ablated[~off_axis], before[~off_axis])  # negative control: reds change


def test_measure_conditions_reports_every_condition_with_its_r2_power():
    model = designed(Pole(), 5)
    results = measure_conditions(model, isolated_config(), "red")
    assert set(results) == {"baseline", "suppress", "ablate"}
    assert len(results["baseline"]["grid_mse"]) == GRID_STEPS ** 3
    assert set(results["ablate"]["named_mse"]) == set(named_colours()[0])
    assert (results["suppress"]["r2_power"], results["ablate"]["r2_power"]) == (2, 3)
    assert "r2" not in results["baseline"]
    # a concept given as a non-axis vector has no axis to ablate
    tilted = AnchorConfig(layers=["bottleneck_norm"], concepts=[
        ConceptAnchor(name="red", vector=[1.0, 1.0, 0.0, 0.0], tau=None)])
    assert "ablate" not in measure_conditions(designed(Wheel(), 4), tilted, "red")


def test_geometry_holds_for_the_designed_wheel_and_fails_when_red_is_turned_away():
    good = measure_geometry(designed(Wheel(), 4), anchored_config(), "red")
    assert good["success"] and good["red_cos"] == pytest.approx(1.0, abs=1e-5)
    assert good["vibrant_ring_alignment"] == pytest.approx(1.0, abs=1e-5)
    turned = measure_geometry(designed(Wheel(turn=0.25), 4), anchored_config(), "red")
    assert not turned["success"] and abs(turned["red_cos"]) < 1e-5


def test_isolation_criterion_separates_a_pole_from_a_wheel():
    pole = measure_geometry(designed(Pole(), 5), isolated_config(), "red")
    assert pole["success"] and pole["leak"] < 0.01
    wheel_on_five = designed(nn.Sequential(Wheel(), nn.ConstantPad1d((0, 1), 0.0)), 5)
    wheel = measure_geometry(wheel_on_five, isolated_config(), "red")
    assert not wheel["success"] and wheel["leak"] > 0.1  # cyan, teal, azure... sit on the negative axis
    assert wheel["criterion"] == "red_cos >= 0.9 and leak <= 0.1"


def test_condition_names_what_it_cannot_do():
    model = designed(Wheel(), 4)
    with pytest.raises(AnchorConfigError, match="unknown condition 'steer'; allowed"):
        with condition(model, anchored_config(), "red", "steer"):
            pass
    tilted = AnchorConfig(layers=["bottleneck_norm"], concepts=[
        ConceptAnchor(name="red", vector=[1.0, 1.0, 0.0, 0.0], tau=None)])
    with pytest.raises(AnchorConfigError, match="no bottleneck axis to ablate"):
        with condition(model, tilted, "red", "ablate"):
            pass
