"""Figures for probe reports: alignment per layer, detection AUROC, dose–response curves, entanglement heat-map.

Each function takes plain numbers (as stored in report.json) and returns a matplotlib
`Figure` built directly, never through pyplot: no display, no global backend switched
under the user, nothing that blocks; `report.write_report` saves them (Agg renders PNG).
matplotlib is the `plots` extra, imported when a figure is drawn, so the core imports
without it. Every figure shows its uncertainty where the numbers carry one (95% bootstrap
intervals as error bars or bands), and text sits at `FONT` points or more, dark on light
cells and white on dark ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AnchorConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FONT = 11  # points: cell values and tick labels stay readable at the saved 120 dpi
Intervals = Sequence[Sequence[float]]  # [L][2] (low, high)


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


def _errors(values: Sequence[float], intervals: Intervals) -> list[list[float]]:
    """Matplotlib's asymmetric error bars `[[below...], [above...]]` from intervals (0 where unknown)."""
    below = [v - lo if _finite(v, lo) else 0.0 for v, (lo, _) in zip(values, intervals)]
    above = [hi - v if _finite(v, hi) else 0.0 for v, (_, hi) in zip(values, intervals)]
    return [below, above]


def _finite(*values: Any) -> bool:
    return all(v is not None and not math.isnan(v) for v in values)


def plot_alignment(layers: Sequence[str], curves: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Per layer: labelled mean and containment (left); margin with its 95% interval and the control's (right).

    Args:
        layers: layer names, the x axis.
        curves: concept -> {"labelled", "containment", "margin": [L], "margin_interval": [L][2],
            optionally "control_margin": [L]}.
    """
    fig = new_figure(11.0, 4.2)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = list(range(len(layers)))
    for i, (concept, c) in enumerate(curves.items()):
        color = f"C{i % 10}"
        left.plot(x, c["labelled"], "o-", color=color, label=f"{concept}: labelled")
        left.plot(x, c["containment"], "s--", color=color, label=f"{concept}: all (containment)")
        right.errorbar(x, c["margin"], yerr=_errors(c["margin"], c["margin_interval"]), fmt="o-", color=color,
                       capsize=4, label=f"{concept} (95% CI)")
        if "control_margin" in c:
            right.plot(x, c["control_margin"], "x:", color="grey", label=f"{concept}: control")
    for ax, title in ((left, "Mean alignment cos(h, v)"), (right, "Margin = labelled − containment")):
        ax.set_xticks(x, [_short(name) for name in layers], rotation=30, ha="right", fontsize=FONT)
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_title(title, fontsize=FONT + 1)
        ax.legend(fontsize=FONT - 2)
    fig.tight_layout()
    return fig


def plot_dose_response(curves: Mapping[str, Mapping[str, Any]], ylabel: str) -> Figure:
    """Mean score against the steering dose, one line per concept, with its band and the control's mean.

    Args:
        curves: concept -> {"doses": [C], "mean": [C], "std": [C], optionally "mean_interval": [C][2]
            (then the band is that 95% interval of the mean, else ±1 std) and "control_mean": [C]}.
        ylabel: what the score is.
    """
    fig = new_figure(6.8, 4.4)
    ax = fig.add_subplot()
    bands = set()
    for i, (concept, c) in enumerate(curves.items()):
        doses, mean = c["doses"], c["mean"]
        if "mean_interval" in c:
            low, high = [lo for lo, _ in c["mean_interval"]], [hi for _, hi in c["mean_interval"]]
            bands.add("95% CI of the mean")
        else:
            low, high = [m - s for m, s in zip(mean, c["std"])], [m + s for m, s in zip(mean, c["std"])]
            bands.add("±1 std")
        ax.plot(doses, mean, "o-", color=f"C{i % 10}", label=concept)
        ax.fill_between(doses, low, high, color=f"C{i % 10}", alpha=0.2)
        if "control_mean" in c:
            ax.plot(doses, c["control_mean"], "x:", color="grey", label=f"{concept}: control")
    ax.set_xlabel("steering dose c  (h + c·|h|·v)", fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    ax.set_title(f"Dose-response under steering (band: {', '.join(sorted(bands))})", fontsize=FONT)
    ax.legend(fontsize=FONT - 2)
    fig.tight_layout()
    return fig


def plot_entanglement(rows: Sequence[str], groups: Sequence[str], matrix: Sequence[Sequence[float]], title: str,
                      intervals: Sequence[Sequence[Sequence[float]]] | None = None,
                      suppressed: Sequence[bool] | None = None) -> Figure:
    """Heat-map of `ΔL_B / ΔL_A` (rows: removed concept A, columns: group B), each cell's value and interval printed.

    Rows in `suppressed` (own change below the noise floor) are drawn grey and say so instead of a ratio.
    """
    fig = new_figure(1.9 * len(groups) + 3.0, 1.1 * len(rows) + 2.2)
    from matplotlib import colormaps  # after new_figure, which checks that matplotlib is installed
    from matplotlib.colors import to_rgb

    ax = fig.add_subplot()
    suppressed = list(suppressed) if suppressed is not None else [False] * len(rows)
    finite = [abs(v) for row in matrix for v in row if _finite(v)]
    limit = max(finite + [1.0])
    cmap = colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")  # suppressed rows, missing cells: light grey
    image = ax.imshow([[math.nan if s else v for v in row] for row, s in zip(matrix, suppressed)], cmap=cmap,
                      vmin=-limit, vmax=limit)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right", fontsize=FONT)
    ax.set_yticks(range(len(rows)), rows, fontsize=FONT)
    ax.set_xlabel("group B (held-out loss)", fontsize=FONT)
    ax.set_ylabel("removed concept A", fontsize=FONT)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if suppressed[i] or not _finite(value):
                text, color = ("below noise floor" if suppressed[i] else "–"), "black"
            else:
                r, g, b = to_rgb(image.cmap(image.norm(value)))
                color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"  # luminance contrast
                text = f"{value:.2f}"
                if intervals is not None and _finite(*intervals[i][j]):
                    text += f"\n[{intervals[i][j][0]:.2f}, {intervals[i][j][1]:.2f}]"
            ax.text(j, i, text, ha="center", va="center", fontsize=FONT, color=color)
    fig.colorbar(image, ax=ax).set_label("ΔL_B / ΔL_A", fontsize=FONT)
    ax.set_title(title + ("  (95% CI in brackets)" if intervals is not None else ""), fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def plot_detection(layers: Sequence[str], curves: Mapping[str, Mapping[str, Sequence[float]]],
                   intervals: Mapping[str, Mapping[str, Intervals]] | None = None) -> Figure:
    """Held-out AUROC per layer, one panel per concept, one line per method; error bars where intervals are given.

    Args:
        layers: layer names, the x axis.
        curves: concept -> method -> AUROC per layer `[L]`.
        intervals: concept -> method -> `[L][2]` 95% intervals (methods without one are drawn plain).
    """
    fig = new_figure(4.6 * max(1, len(curves)), 4.0)
    x = list(range(len(layers)))
    for i, (concept, methods) in enumerate(curves.items()):
        ax = fig.add_subplot(1, max(1, len(curves)), i + 1)
        for j, (method, values) in enumerate(methods.items()):
            bars = (intervals or {}).get(concept, {}).get(method)
            if bars is None:
                ax.plot(x, values, "o-", color=f"C{j % 10}", label=method)
            else:
                ax.errorbar(x, values, yerr=_errors(values, bars), fmt="o-", color=f"C{j % 10}", capsize=4,
                            label=f"{method} (95% CI)")
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
        ax.set_ylim(0.0, 1.05)
        ax.set_xticks(x, [_short(name) for name in layers], rotation=30, ha="right", fontsize=FONT)
        ax.set_title(concept, fontsize=FONT + 1)
        ax.set_ylabel("held-out AUROC", fontsize=FONT)
        ax.legend(fontsize=FONT - 2)
    fig.tight_layout()
    return fig


def _short(name: str) -> str:
    """`model.layers.3` -> `layers.3`: the last two parts of a module name."""
    return ".".join(name.split(".")[-2:])
