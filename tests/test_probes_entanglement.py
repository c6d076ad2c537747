"""Entanglement: ≈ 0 between orthogonal planted features, > 0 between overlapping ones."""

from __future__ import annotations

import math

import pytest
import torch
from probe_toys import StateModel, unit

from anchor_hf.errors import AnchorDataError
from anchor_hf.interventions import active_sites, suppress
from anchor_hf.probes.entanglement import entanglement_from_examples, entanglement_matrix, measure_entanglement

D = 8


def test_entanglement_matrix_normalizes_by_own_change():
    base = torch.tensor([1.0, 2.0, 3.0])
    under = torch.tensor([[1.5, 2.25, 3.0], [1.0, 2.0, 3.0]])
    result = entanglement_matrix(base, under, own=[0, 1])
    assert result["matrix"][0].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert all(math.isnan(v) for v in result["matrix"][1].tolist())  # own loss unchanged: no scale
    assert result["delta"][0].tolist() == pytest.approx([0.5, 0.25, 0.0])


def test_entanglement_matrix_rejects_mismatched_shapes():
    with pytest.raises(AnchorDataError, match="do not fit"):
        entanglement_matrix(torch.zeros(3), torch.zeros(2, 2), own=[0, 1])


def planted_groups(u_a: torch.Tensor, u_b: torch.Tensor, n: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Group A states carry `u_a`, group B `u_b` (strength 1..2), plus noise on axes 4.. that neither uses."""
    g = torch.Generator().manual_seed(seed)
    groups = {}
    for name, u in (("A", u_a), ("B", u_b)):
        noise = torch.randn(n, 3, D, generator=g)
        noise[..., :4] = 0
        strength = 1.0 + torch.rand(n, 3, 1, generator=g)
        groups[name] = strength * u + 0.3 * noise
    return groups


def measure(u_a: torch.Tensor, u_b: torch.Tensor) -> dict:
    model = StateModel()
    groups = planted_groups(u_a, u_b)
    states = torch.cat(list(groups.values()))  # [2n, 3, D]: A's examples, then B's
    n = len(groups["A"])
    masks = {"A": torch.arange(2 * n) < n, "B": torch.arange(2 * n) >= n}

    def example_losses() -> torch.Tensor:  # reconstruction error of each example's states through the model
        return (model(states) - states).pow(2).sum(-1).mean(-1)

    interventions = {"A": lambda: suppress(model, None, direction=u_a, layers=[0]),
                     "B": lambda: suppress(model, None, direction=u_b, layers=[0])}
    result = measure_entanglement(interventions, example_losses, masks, progress=False, resamples=50)
    assert active_sites(model) == []
    return result


def test_entanglement_is_zero_for_orthogonal_planted_features():
    result = measure(unit([1, 0, 0, 0, 0, 0, 0, 0]), unit([0, 1, 0, 0, 0, 0, 0, 0]))
    assert result["matrix"][0] == pytest.approx([1.0, 0.0], abs=1e-6)
    assert result["matrix"][1] == pytest.approx([0.0, 1.0], abs=1e-6)


def test_entanglement_is_positive_for_overlapping_planted_features():
    """u_B = 0.6·u_A + 0.8·e1: suppressing A removes 0.36 of B's squared feature, relative to all of A's."""
    result = measure(unit([1, 0, 0, 0, 0, 0, 0, 0]), unit([0.6, 0.8, 0, 0, 0, 0, 0, 0]))
    assert result["matrix"][0][1] > 0.2
    assert result["matrix"][1][0] > 0.2
    # the loss changes come from states, so the ratio is ≈ cos² = 0.36 when strengths match in distribution
    assert result["matrix"][0][1] == pytest.approx(0.36, abs=0.08)


def test_measure_entanglement_needs_each_concept_to_have_a_group():
    with pytest.raises(AnchorDataError, match="no group of their own"):
        measure_entanglement({"C": lambda: suppress(StateModel(), None, direction=torch.ones(D), layers=[0])},
                             lambda: torch.zeros(2), {"A": torch.tensor([True, False]),
                                                      "B": torch.tensor([False, True])}, progress=False)


def test_a_row_whose_own_change_is_within_noise_is_suppressed_not_reported_as_a_ratio():
    """The reported failure: A's own loss moved by 0.001 on average while examples scatter by ±0.05, and B by
    0.004: a ratio of 4 would be noise. The row is suppressed and says why; a clear own change keeps its row."""
    g = torch.Generator().manual_seed(0)
    n = 40
    base = torch.rand(2 * n, generator=g)
    scatter = 0.05 * torch.randn(2 * n, generator=g)
    noisy = base + 0.001 + scatter - scatter.mean()  # A: a mean change of about 0.001 within ±0.05 scatter
    noisy[n:] += 0.003
    clear = base + 0.5 + 0.01 * torch.randn(2 * n, generator=g)
    masks = torch.stack([torch.arange(2 * n) < n, torch.arange(2 * n) >= n])
    result = entanglement_from_examples(base, torch.stack([noisy, clear]), masks, own=[0, 1], resamples=100)
    assert result["suppressed"] == [True, False]
    assert result["own_change"][0] < result["floor"][0]  # the floor is what suppressed it
    assert all(math.isnan(v) for v in result["matrix"][0])
    assert all(math.isnan(v) for v in sum(result["interval"][0], []))
    assert result["matrix"][1][1] == pytest.approx(1.0)
    low, high = result["interval"][1][0]
    assert low <= result["matrix"][1][0] <= high and high - low < 0.2  # a tight interval around a real ratio
