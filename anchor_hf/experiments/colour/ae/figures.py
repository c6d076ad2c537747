"""Figures in the paper's three-panel style, for one trained model and one intervention.

Top: axis-aligned projections of the latent sphere (the anchor axis vertical), each dot a
colour of a `12³` RGB grid drawn in its own colour. Middle: reconstructions under the
intervention over HSV slices (hue across, value down, one block per saturation); each
patch shows the reconstruction with the true colour as an inset. Bottom: error against
hue along a few saturation/value rings, baseline dashed, intervention solid.
"""

from __future__ import annotations

import torch

from anchor_hf.config import AnchorConfig
from ..maths import cube_grid, hsv_to_rgb
from .model import ColourAutoencoder
from .evaluate import condition, concept_axis, per_colour_mse
from anchor_hf.io import atomic_path

LATENT_STEPS = 12
SLICE_HUES, SLICE_SATURATIONS, SLICE_VALUES = 12, (1 / 3, 2 / 3, 1.0), (0.25, 0.5, 0.75, 1.0)
CURVES = ((1.0, 1.0), (0.5, 1.0), (1.0, 0.5))  # (saturation, value) rings for the error-vs-hue panel
CELL, INSET = 10, 4  # pixels per patch, and the margin around the true-colour inset


def _slice_image(recon: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Patches `[rows, cols, 3]` → image `[rows·CELL, cols·CELL, 3]`: reconstruction with a true-colour inset."""
    image = recon.clamp(0, 1).repeat_interleave(CELL, 0).repeat_interleave(CELL, 1).clone()
    inner = true.repeat_interleave(CELL, 0).repeat_interleave(CELL, 1)
    mask = torch.zeros(CELL, CELL, dtype=torch.bool)
    mask[INSET:CELL - INSET, INSET:CELL - INSET] = True
    mask = mask.repeat(recon.shape[0], recon.shape[1])
    image[mask] = inner[mask]
    return image


def plot_three_panel(model: ColourAutoencoder, cfg: AnchorConfig, concept: str, intervention: str, path: str,
                     title: str) -> str:
    """Draw the figure for `intervention` on `model` and write it to `path` (PNG) atomically."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left as it is
    from matplotlib.patches import Circle

    width = model.config.hidden_size
    axis = (concept_axis(cfg.concept(concept), width) or [0])[0]
    others = [d for d in range(width) if d != axis][:3]
    grid = cube_grid(LATENT_STEPS)
    with condition(model, cfg, concept, "baseline") as forward:
        _, latents = forward(grid)

    hue = torch.arange(SLICE_HUES) / SLICE_HUES
    rows = [(s, v) for s in SLICE_SATURATIONS for v in SLICE_VALUES]
    hsv = torch.stack([torch.stack([h.expand(len(rows)), torch.tensor([r[0] for r in rows]),
                                    torch.tensor([r[1] for r in rows])], -1) for h in hue], 1)  # [rows, hues, 3]
    true = hsv_to_rgb(hsv)
    ring_hue = torch.linspace(0, 1, 181)
    rings = {sv: hsv_to_rgb(torch.stack([ring_hue, torch.full_like(ring_hue, sv[0]),
                                         torch.full_like(ring_hue, sv[1])], -1)) for sv in CURVES}
    errors: dict[str, dict] = {}
    for name in ("baseline", intervention):
        with condition(model, cfg, concept, name) as forward:
            if name == intervention:
                recon, _ = forward(true.reshape(-1, 3))
                recon = recon.reshape(true.shape)
            errors[name] = {sv: per_colour_mse(forward, rgb) for sv, rgb in rings.items()}

    fig = Figure(figsize=(10, 11), layout="constrained")
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1.1, 1.3, 1.0])
    axes = top.subplots(1, len(others))
    for ax, other in zip(list(axes) if len(others) > 1 else [axes], others):
        ax.scatter(latents[:, other], latents[:, axis], c=grid.numpy(), s=6, linewidths=0)
        ax.add_patch(Circle((0, 0), 1, fill=False, color="0.7", lw=0.8))
        ax.plot([0], [1], marker="^", color="k", ms=6)
        ax.set_xlim(-1.1, 1.1), ax.set_ylim(-1.1, 1.1), ax.set_aspect("equal")
        ax.set_xlabel(f"dim {other}"), ax.set_ylabel(f"dim {axis} (anchor)")
    top.suptitle("Latent space (baseline): axis-aligned projections, ▲ = anchor", fontsize=10)

    ax = middle.subplots(1, 1)
    ax.imshow(_slice_image(recon, true).numpy(), interpolation="nearest")
    ax.set_xticks([(i + 0.5) * CELL for i in range(SLICE_HUES)], [f"{round(360 * h)}" for h in hue.tolist()],
                  fontsize=7)
    ax.set_yticks([(i + 0.5) * CELL for i in range(len(rows))], [f"s={s:.2f} v={v:.2f}" for s, v in rows],
                  fontsize=7)
    ax.set_xlabel("hue (°)")
    middle.suptitle(f"Reconstruction under {intervention} (outer) with the true colour (inset)", fontsize=10)

    ax = bottom.subplots(1, 1)
    for sv, style in zip(CURVES, ("C3", "C1", "C0")):
        degrees = (360 * ring_hue).numpy()
        ax.plot(degrees, errors["baseline"][sv].numpy(), color=style, ls="--", lw=1)
        ax.plot(degrees, errors[intervention][sv].numpy(), color=style, lw=1.5, label=f"s={sv[0]:g}, v={sv[1]:g}")
    ax.set_xlabel("hue (°)"), ax.set_ylabel("MSE"), ax.set_xlim(0, 360)
    ax.legend(fontsize=8, title=f"{intervention} (solid) vs baseline (dashed)", title_fontsize=8)
    bottom.suptitle("Reconstruction error vs hue", fontsize=10)
    fig.suptitle(title, fontsize=11)

    with atomic_path(path, suffix=".png") as tmp:  # never leave a half-written figure behind
        fig.savefig(tmp, dpi=110)
    return path
