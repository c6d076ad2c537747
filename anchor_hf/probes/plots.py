"""Figures for probe reports: alignment per layer, detection AUROC, dose–response curves, entanglement heat-map.

Each function takes plain numbers (as stored in report.json) and returns a matplotlib
`Figure` built directly, never through pyplot: no display, no global backend switched
under the user, nothing that blocks; `report.write_report` saves them (Agg renders PNG).
matplotlib is the `plots` extra, imported when a figure is drawn, so the core imports
without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AnchorConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def require_matplotlib() -> None:
    """Raise before any work starts when matplotlib (the `plots` extra) is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise AnchorConfigError("probe figures need matplotlib, which is not installed; "
                                "install it with `pip install 'anchor-hf[plots]'`")


def new_figure(width: float, height: float) -> Figure:
    """An empty matplotlib `Figure` of `width` × `height` inches (imports matplotlib here, not at import time)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def plot_alignment(layers: Sequence[str], curves: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Alignment per layer: for each concept, labelled mean (solid) and containment (dashed).

    Args:
        layers: layer names, the x axis.
        curves: concept -> {"labelled": [L], "containment": [L]}.
    """
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    x = list(range(len(layers)))
    for i, (concept, c) in enumerate(curves.items()):
        color = f"C{i % 10}"
        ax.plot(x, c["labelled"], "o-", color=color, label=f"{concept}: labelled")
        ax.plot(x, c["containment"], "s--", color=color, label=f"{concept}: all (containment)")
    ax.set_xticks(x, [_short(name) for name in layers], rotation=30, ha="right")
    ax.set_ylabel("mean alignment cos(h, v)")
    ax.set_title("Alignment per anchored layer")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_dose_response(curves: Mapping[str, Mapping[str, Any]], ylabel: str) -> Figure:
    """Mean score ± std against the steering dose, one line per concept.

    Args:
        curves: concept -> {"doses": [C], "mean": [C], "std": [C]}.
        ylabel: what the score is.
    """
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot()
    for i, (concept, c) in enumerate(curves.items()):
        doses, mean, std = c["doses"], c["mean"], c["std"]
        ax.plot(doses, mean, "o-", color=f"C{i % 10}", label=concept)
        ax.fill_between(doses, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=f"C{i % 10}", alpha=0.2)
    ax.set_xlabel("steering dose c  (h + c·|h|·v)")
    ax.set_ylabel(ylabel)
    ax.set_title("Dose-response under steering")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_entanglement(rows: Sequence[str], groups: Sequence[str], matrix: Sequence[Sequence[float]],
                      title: str) -> Figure:
    """Heat-map of `ΔL_B / ΔL_A` (rows: removed concept A, columns: group B), values printed in cells."""
    fig = new_figure(1.2 * len(groups) + 2.5, 0.9 * len(rows) + 2.0)
    ax = fig.add_subplot()
    finite = [abs(v) for row in matrix for v in row if not math.isnan(v)]
    limit = max(finite + [1.0])
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("group B (held-out loss)")
    ax.set_ylabel("removed concept A")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, "nan" if math.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="ΔL_B / ΔL_A")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_detection(layers: Sequence[str], curves: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Held-out AUROC per layer, one panel per concept, one line per method (anchored, probe, post-hoc)."""
    fig = new_figure(4.0 * max(1, len(curves)), 3.6)
    x = list(range(len(layers)))
    for i, (concept, methods) in enumerate(curves.items()):
        ax = fig.add_subplot(1, max(1, len(curves)), i + 1)
        for j, (method, values) in enumerate(methods.items()):
            ax.plot(x, values, "o-", color=f"C{j % 10}", label=method)
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
        ax.set_ylim(0.0, 1.05)
        ax.set_xticks(x, [_short(name) for name in layers], rotation=30, ha="right")
        ax.set_title(concept)
        ax.set_ylabel("held-out AUROC")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _short(name: str) -> str:
    """`model.layers.3` -> `layers.3`: the last two parts of a module name."""
    return ".".join(name.split(".")[-2:])
