"""Probe figures: matplotlib is the `plots` extra, imported only when a figure is drawn."""

from __future__ import annotations

import sys

import pytest

from anchor_hf.errors import AnchorConfigError
from anchor_hf.probes.plots import new_figure, plot_alignment


def test_plot_alignment_draws_one_axis_per_figure():
    fig = plot_alignment(["model.layers.0", "model.layers.1"], {"red": {"labelled": [0.5, 0.7],
                                                                        "containment": [0.0, 0.1]}})
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) >= 2


def test_new_figure_names_the_plots_extra_when_matplotlib_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec -> None, import -> ImportError
    with pytest.raises(AnchorConfigError, match=r"anchor-hf\[plots\]"):
        new_figure(4.0, 3.0)
