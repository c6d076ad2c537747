"""anchor_hf.experiments.colour.maths: HSV conversion, named colours, similarity to red, label affinities, the cube."""

from __future__ import annotations

import colorsys

import pytest
import torch

from anchor_hf.experiments.colour.maths import (NAMED_COLOURS, cube_grid, hsv_similarity, hsv_to_rgb, named_colours,
                                                p_red, p_vibrant, red_similarity, rgb_to_hsv, sample_cube, vibrancy)


def rgb(name: str) -> torch.Tensor:
    return torch.tensor(NAMED_COLOURS[name])


def test_rgb_to_hsv_matches_colorsys_and_round_trips():
    colours = torch.cat([torch.rand(500, 3, generator=torch.Generator().manual_seed(0)), cube_grid(8)])
    expected = torch.tensor([colorsys.rgb_to_hsv(*c) for c in colours.tolist()])
    hsv = rgb_to_hsv(colours)
    assert torch.allclose(hsv, expected, atol=1e-6)  # float32 vs float64 rounding
    assert torch.allclose(hsv_to_rgb(hsv), colours, atol=1e-6)
    assert not torch.allclose(hsv, colours)  # negative control: the conversion does something


def test_named_colours_are_the_twelve_hues_at_30_degrees_then_greys():
    names, colours = named_colours()
    assert names[:12] == ["red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure", "blue", "purple",
                          "magenta", "pink"]
    assert names[12:] == ["black", "gray", "white"]
    hsv = rgb_to_hsv(colours[:12])
    assert torch.allclose(hsv[:, 0], torch.arange(12) / 12, atol=1e-6)
    assert torch.all(hsv[:, 1:] == 1)
    assert torch.all(rgb_to_hsv(colours[12:])[:, 1] == 0)


def test_red_similarity_is_one_for_red_and_zero_for_cyan_greys_and_quarter_turn_hues():
    names, colours = named_colours()
    sim = dict(zip(names, red_similarity(colours).tolist()))
    assert sim["red"] == pytest.approx(1.0)
    for name in ("cyan", "lime", "purple", "green", "blue", "black", "gray", "white"):
        assert sim[name] == pytest.approx(0.0, abs=1e-6), name
    # negative control: hues within 90° of red are partly similar, closer ones more so
    assert 0 < sim["yellow"] < sim["orange"] < 1
    assert sim["orange"] == pytest.approx(2 / 3, abs=1e-5)
    assert sim["pink"] == pytest.approx(sim["orange"], abs=1e-5)


def test_similarity_falls_with_value_and_saturation_of_a_red():
    dark, pale = torch.tensor([0.5, 0.0, 0.0]), torch.tensor([1.0, 0.5, 0.5])
    assert red_similarity(dark) == pytest.approx(0.5)  # hue matches; (1 − |Δv|) = 0.5
    assert red_similarity(pale) == pytest.approx(0.5)  # hue matches; (1 − |Δs|) = 0.5
    assert hsv_similarity(rgb_to_hsv(rgb("cyan")), rgb_to_hsv(rgb("cyan"))) == pytest.approx(1.0)


def test_p_red_is_8_percent_for_pure_red_and_zero_away_from_red():
    assert p_red(rgb("red")) == pytest.approx(0.08)
    assert p_red(rgb("cyan")) == 0
    assert p_red(rgb("black")) == 0
    assert 0 < p_red(rgb("orange")) < 0.08 * 0.75 ** 7  # (0.75)^8 · 0.08: labels stay concentrated on reds


def test_p_red_labels_about_009_percent_of_the_8_cube():
    # the paper's 83 ± 8 labels in 96k draws: mean p over the grid times the draws
    assert p_red(cube_grid(8)).mean() == pytest.approx(0.0009, abs=0.00005)


def test_p_vibrant_is_1_percent_on_the_hue_ring_and_zero_for_greys():
    _, colours = named_colours()
    assert torch.allclose(p_vibrant(colours[:12]), torch.full((12,), 0.01))
    assert torch.all(p_vibrant(colours[12:]) == 0)
    assert vibrancy(torch.tensor([0.5, 0.25, 0.25])) == pytest.approx(0.25)  # s = 0.5, v = 0.5


def test_cube_grid_has_steps_cubed_colours_including_the_corners():
    grid = cube_grid(8)
    assert grid.shape == (512, 3)
    assert any(torch.equal(c, torch.tensor([1.0, 0.0, 0.0])) for c in grid)
    assert torch.unique(grid, dim=0).shape[0] == 512
    with pytest.raises(ValueError, match="`steps` must be an int >= 2, got 1"):
        cube_grid(1)


def test_sample_cube_draws_grid_colours_with_replacement():
    draws = sample_cube(2000, 8, torch.Generator().manual_seed(0))
    grid = cube_grid(8)
    assert ((draws[:, None, :] - grid[None]).abs().sum(-1) == 0).any(-1).all()
    assert torch.unique(draws, dim=0).shape[0] < 2000  # repeats: drawn with replacement
    again = sample_cube(2000, 8, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    assert not torch.equal(draws, sample_cube(2000, 8, torch.Generator().manual_seed(1)))
