"""Figures of a colour-LM evaluation: projections, error vs similarity, swatches (matplotlib, no display).

- `plot_projection`: each line's state at the answer position projected on the anchor
  axis (x) and on the first two principal axes of the off-anchor part (y), dots in the
  line's true colour; anchored beside control. A concept on the axis shows as the
  target's hues spread to the right, alone.
- `plot_error_vs_similarity`: each colour's error rise under an intervention against its
  similarity to the target, dots in the true colour.
- `plot_swatches`: true colour, the model's answer, and its answer under interventions,
  for the colours most similar to the target and a few dissimilar ones.
- `plot_toward_destination`: for each target-group item, where its answer lies between its
  own colour (0) and the destination (1) under each intervention, dots in the answer's colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure

from anchor_hf.geometry import unit


def _off_axis_pcs(h: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """First two principal axes `[D, 2]` of the unit states' part orthogonal to the anchor."""
    h_hat = unit(h)
    off = h_hat - (h_hat @ basis) @ basis.T
    off = off - off.mean(0)
    _, _, v = torch.linalg.svd(off, full_matrices=False)
    return v[:2].T


def plot_projection(panels: Mapping[str, tuple[torch.Tensor, torch.Tensor]], rgb: torch.Tensor) -> Figure:
    """panels: title -> (states at the answer position `[N, D]`, anchor basis `[D, 1]`); rgb `[N, 3]`."""
    fig = Figure(figsize=(4.2 * len(panels), 7.6))
    for col, (title, (h, basis)) in enumerate(panels.items()):
        pcs = _off_axis_pcs(h, basis)
        h_hat = unit(h)
        x = (h_hat @ basis[:, 0]).numpy()
        for row in range(2):
            ax = fig.add_subplot(2, len(panels), row * len(panels) + col + 1)
            ax.scatter(x, (h_hat @ pcs[:, row]).numpy(), c=rgb.clamp(0, 1).numpy(), s=9, edgecolors="none")
            ax.set_xlabel("cos with anchor axis")
            ax.set_ylabel(f"off-axis PC{row + 1}")
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_error_vs_similarity(panels: Mapping[str, torch.Tensor], sim: torch.Tensor, rgb: torch.Tensor) -> Figure:
    """panels: title -> error rise per colour `[N]`; sim `[N]`, rgb `[N, 3]`."""
    fig = Figure(figsize=(4.0 * len(panels), 3.6))
    for i, (title, rise) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.scatter(sim.numpy(), rise.numpy(), c=rgb.clamp(0, 1).numpy(), s=10, edgecolors="0.4", linewidths=0.2)
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_xlabel("similarity to target")
        ax.set_ylabel("error rise (RGB MSE)")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_swatches(names: Sequence[str], rows: Mapping[str, torch.Tensor]) -> Figure:
    """A grid of colour swatches: one row per entry of `rows` (`[N, 3]` each), one column per name."""
    n = len(names)
    fig = Figure(figsize=(max(6.0, 0.42 * n), 0.55 * len(rows) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    image = torch.stack([r.clamp(0, 1) for r in rows.values()])  # [R, N, 3]
    ax.imshow(image.numpy(), aspect="equal", interpolation="nearest")
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xticks(range(n), names, rotation=90, fontsize=6)
    fig.tight_layout()
    return fig


def toward(pred: torch.Tensor, own: torch.Tensor, destination: torch.Tensor) -> torch.Tensor:
    """Position `[N]` of each answer on the segment from its own colour (0) to the destination (1).

    `t = (a − c)·(d − c) / |d − c|²`, the projection onto the segment (not clipped: below 0
    the answer moved away from the destination, above 1 beyond it).
    """
    span = destination.reshape(1, 3) - own
    return ((pred - own) * span).sum(-1) / span.pow(2).sum(-1).clamp_min(1e-12)


def plot_toward_destination(panels: Mapping[str, torch.Tensor], own: torch.Tensor, destination: torch.Tensor,
                            sim: torch.Tensor) -> Figure:
    """panels: title -> answers `[N, 3]` of the target items; own colours `[N, 3]`, destination `[3]`, sim `[N]`.

    One row per panel: x is `toward` (0 = the item's own colour, 1 = the destination), y the
    item's similarity to the target; each dot is drawn in the colour the model answered.
    """
    fig = Figure(figsize=(7.0, 1.9 * len(panels) + 0.8))
    for i, (title, pred) in enumerate(panels.items()):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        t = toward(pred, own, destination)
        ax.scatter(t.numpy(), sim.numpy(), c=pred.clamp(0, 1).numpy(), s=22, edgecolors="0.3", linewidths=0.3)
        for x in (0.0, 1.0):
            ax.axvline(x, color="0.6", lw=0.7, ls="--")
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylabel("similarity", fontsize=8)
        ax.set_title(f"{title}: median {float(t.median()):.2f} of the way to the destination", fontsize=9)
    ax.set_xlabel("0 = the item's own colour … 1 = the destination")
    fig.tight_layout()
    return fig
