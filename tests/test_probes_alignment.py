"""Alignment, margin, containment, retention and latch check on constructed states (docs/method.md §6)."""

from __future__ import annotations

import math

import pytest
import torch

from anchor_hf.geometry import direction_basis
from anchor_hf.probes.alignment import (containment, direction_cosine, labelled_alignment, latch_mass, margin,
                                        position_profile, retention, token_alignment)

D = 8


def states_at(cosines: torch.Tensor, axis: int = 0, seed: int = 0) -> torch.Tensor:
    """States `[N, T, D]` of random norm whose cosine with `e_axis` is exactly `cosines [N, T]`."""
    g = torch.Generator().manual_seed(seed)
    other = torch.randn(*cosines.shape, D, generator=g)
    other[..., axis] = 0
    other = other / other.norm(dim=-1, keepdim=True)
    h = cosines.unsqueeze(-1) * torch.eye(D)[axis] + (1 - cosines.pow(2)).sqrt().unsqueeze(-1) * other
    return h * (0.5 + torch.rand(*cosines.shape, 1, generator=g) * 3)


def test_token_alignment_recovers_constructed_cosines():
    cos = torch.tensor([[0.9, -0.3, 0.0], [0.5, 0.2, -0.8]])
    h = states_at(cos)
    assert torch.allclose(token_alignment(h, direction_basis([0], None, D), [0]), cos, atol=1e-6)
    # negative control: the same states measured on another axis do not give these cosines
    assert not torch.allclose(token_alignment(h, direction_basis([1], None, D), [1]), cos, atol=1e-2)


def test_subspace_alignment_is_norm_of_projection():
    h = torch.zeros(1, 1, D)
    h[0, 0, :3] = torch.tensor([0.6, 0.0, 0.8])
    assert token_alignment(h, direction_basis([0, 2], None, D), [0, 2]).item() == pytest.approx(1.0)
    assert token_alignment(h, direction_basis([0, 1], None, D), [0, 1]).item() == pytest.approx(0.6)


def test_margin_and_containment_match_hand_computed_values_and_ignore_pads():
    """One labelled example of four sits at cos 0.8, the rest at 0: containment 0.2, margin 0.6."""
    cos = torch.tensor([[0.8, 0.8, 0.8], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    live = torch.ones(4, 3, dtype=torch.bool)
    live[1, 2] = False
    cos[1, 2] = 0.99  # a pad: must not count
    tok = token_alignment(states_at(cos), direction_basis([0], None, D), [0])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0])
    expected_containment = (3 * 0.8) / 11
    assert containment(tok, live) == pytest.approx(expected_containment, abs=1e-6)
    assert labelled_alignment(tok, live, labels) == pytest.approx(0.8, abs=1e-6)
    assert margin(tok, live, labels) == pytest.approx(0.8 - expected_containment, abs=1e-6)
    # negative control: counting the pad changes containment
    assert containment(tok, torch.ones_like(live)) != pytest.approx(expected_containment, abs=1e-3)


def test_whole_cloud_drift_shows_in_containment_not_margin():
    """Every example at cos 0.5 (a concept-blind shift): margin 0, containment 0.5."""
    cos = torch.full((6, 4), 0.5)
    live = torch.ones(6, 4, dtype=torch.bool)
    labels = torch.tensor([1.0, 0, 0, 1.0, 0, 0])
    assert margin(cos, live, labels) == pytest.approx(0.0, abs=1e-7)
    assert containment(cos, live) == pytest.approx(0.5)
    # negative control: the selective case has a positive margin at lower containment
    selective = torch.where(labels.bool().unsqueeze(-1), torch.full_like(cos, 0.5), torch.zeros_like(cos))
    assert margin(selective, live, labels) > 0.3 and containment(selective, live) < 0.5


def test_margin_is_nan_without_labels_and_token_weights_are_accepted():
    cos, live = torch.rand(3, 4), torch.ones(3, 4, dtype=torch.bool)
    assert math.isnan(margin(cos, live, torch.zeros(3)))
    token_w = torch.zeros(3, 4)
    token_w[0, 1] = 1.0
    assert labelled_alignment(cos, live, token_w) == pytest.approx(float(cos[0, 1]))


def test_retention_is_final_over_peak():
    assert retention([0.1, 0.5, 0.4]) == pytest.approx(0.8)
    assert retention([0.2, 0.3]) == pytest.approx(1.0)
    assert math.isnan(retention([-0.1, -0.2]))  # no positive peak to compare with
    assert math.isnan(retention([]))


def test_position_profile_averages_live_rows_per_position():
    cos = torch.tensor([[1.0, 2.0, 9.0], [3.0, 4.0, 5.0]])
    live = torch.tensor([[True, True, False], [True, True, True]])
    profile = position_profile(cos, live)
    assert profile.tolist() == [2.0, 3.0, 5.0]
    only_first = position_profile(cos, live, rows=torch.tensor([True, False]))
    assert only_first[:2].tolist() == [1.0, 2.0] and math.isnan(only_first[2].item())


def test_latch_mass_flags_pull_concentrated_on_syntax_tokens():
    """At small τ the softmin weight goes to the best-aligned token; if that is syntax, mass ≫ chance."""
    spans = torch.ones(2, 4, dtype=torch.bool)
    syntax = torch.tensor([[False, True, False, False], [False, False, False, True]])
    latched = torch.tensor([[0.1, 0.9, 0.1, 0.1], [0.0, 0.1, 0.0, 0.8]])  # syntax tokens best aligned
    result = latch_mass(latched, spans, syntax, tau=0.03)
    assert result["chance"] == pytest.approx(0.25)
    assert result["mass"] > 0.99
    # negative controls: content tokens best aligned -> mass ≈ 0; uniform pull (tau None) -> mass = chance
    content = torch.tensor([[0.9, 0.1, 0.1, 0.1], [0.8, 0.1, 0.0, 0.0]])
    assert latch_mass(content, spans, syntax, tau=0.03)["mass"] < 0.01
    assert latch_mass(latched, spans, syntax, tau=None)["mass"] == pytest.approx(0.25)


def test_latch_mass_skips_rows_without_a_span():
    spans = torch.tensor([[True, True], [False, False]])
    syntax = torch.tensor([[True, False], [True, True]])
    result = latch_mass(torch.zeros(2, 2), spans, syntax, tau=0.1)
    assert result["spans"] == 1 and result["mass"] == pytest.approx(0.5)
    assert math.isnan(latch_mass(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.bool), syntax, 0.1)["mass"])


def test_direction_cosine_signed_for_a_direction_and_unsigned_for_a_subspace():
    d = torch.tensor([-1.0, 1.0, 0, 0, 0, 0, 0, 0])
    assert direction_cosine(d, direction_basis([0], None, D)) == pytest.approx(-2 ** -0.5)
    assert direction_cosine(d, direction_basis([0, 1], None, D)) == pytest.approx(1.0)
    assert direction_cosine(d, direction_basis([2], None, D)) == pytest.approx(0.0)
