"""Probe figures a reader can trust (uncertainty drawn, noise rows marked, text large and in contrast), and
matplotlib as the `plots` extra, imported only when a figure is drawn."""

from __future__ import annotations

import math
import sys

import pytest
from matplotlib.colors import to_rgb

from anchor_hf.errors import AnchorConfigError
from anchor_hf.probes.plots import FONT, new_figure, plot_alignment, plot_detection, plot_dose_response, \
    plot_entanglement


def cell_texts(fig) -> dict[str, object]:
    return {t.get_text(): t for t in fig.axes[0].texts}


def test_plot_alignment_draws_the_alignment_and_the_margin_with_its_interval():
    fig = plot_alignment(["model.layers.0", "model.layers.1"],
                         {"red": {"labelled": [0.5, 0.7], "containment": [0.0, 0.1], "margin": [0.5, 0.6],
                                  "margin_interval": [[0.4, 0.6], [0.5, 0.7]], "control_margin": [0.0, 0.0]}})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 2
    assert "red (95% CI)" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]


def test_new_figure_names_the_plots_extra_when_matplotlib_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec -> None, import -> ImportError
    with pytest.raises(AnchorConfigError, match=r"anchor-hf\[plots\]"):
        new_figure(4.0, 3.0)


def test_entanglement_heatmap_text_is_large_and_contrasts_with_its_cell():
    """A dark-red cell prints white, a pale one black, both at FONT points or more, with the interval below."""
    fig = plot_entanglement(["red"], ["red", "blue"], [[1.0, 0.05]], "E", intervals=[[[0.9, 1.1], [-0.1, 0.2]]])
    texts = cell_texts(fig)
    dark, pale = texts["1.00\n[0.90, 1.10]"], texts["0.05\n[-0.10, 0.20]"]
    assert dark.get_fontsize() >= FONT >= 10 and pale.get_fontsize() >= FONT
    assert to_rgb(dark.get_color()) == (1.0, 1.0, 1.0) and to_rgb(pale.get_color()) == (0.0, 0.0, 0.0)


def test_entanglement_heatmap_marks_rows_below_the_noise_floor_instead_of_printing_ratios():
    fig = plot_entanglement(["red", "blue"], ["red", "blue"], [[math.nan, math.nan], [0.3, 1.0]], "E",
                            suppressed=[True, False])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("below noise floor") == 2 and "0.30" in texts
    assert not any(t.startswith("7.") for t in texts)


def test_detection_and_dose_response_figures_draw_their_intervals():
    fig = plot_detection(["l.0", "l.1"], {"red": {"anchored": [0.8, 0.9], "probe": [0.85, 0.95]}},
                         {"red": {"anchored": [[0.7, 0.9], [0.85, 0.95]]}})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "anchored (95% CI)" in labels and "probe" in labels  # error bars only where an interval exists
    fig = plot_dose_response({"red": {"doses": [0, 1], "mean": [0, 1], "std": [1, 1],
                                      "mean_interval": [[-0.1, 0.1], [0.8, 1.2]], "control_mean": [0, 0]}}, "s")
    assert "95% CI of the mean" in fig.axes[0].get_title()
    assert "red: control" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
