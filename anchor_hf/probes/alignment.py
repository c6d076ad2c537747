"""Alignment, margin, containment, retention and the latch check (docs/method.md §6).

Pure torch on tensors of cosines, so every quantity can be checked on hand-made numbers.
`cos` is `[N, T]` (alignment of each example's state at each position with the anchored
place), `live` is `[N, T]` bool (non-pad positions); pads never count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..geometry import EPS, alignment, coordinates, softmin_weights


def token_alignment(h: torch.Tensor, basis: torch.Tensor, dims: Sequence[int] | None = None) -> torch.Tensor:
    """Alignment of every state with the anchored place: `h [..., D]`, `basis [D, k]` → `[...]`.

    `ĥ·v̂` for a direction (signed), `‖P_D ĥ‖` for a subspace (≥ 0), in float32.
    """
    return alignment(coordinates(h, basis, dims))


def _f(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (float64 stays float64, so callers can ask for exact sums)."""
    return x if x.dtype == torch.float64 else x.float()


def _token_weights(weights: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Broadcast example weights `[N]` (or token weights `[N, T]`) onto live tokens `[N, T]`."""
    weights = _f(weights)
    if weights.dim() == 1:
        weights = weights.unsqueeze(-1)
    return weights * live


def containment(cos: torch.Tensor, live: torch.Tensor) -> float:
    """Plain mean alignment over every live position.

    Catches the whole cloud drifting onto the axis, the main transformer failure (docs/method.md
    §8): a concept-blind shift raises containment but not margin.
    """
    live = live.bool()
    if not bool(live.any()):
        return math.nan
    return float(_f(cos)[live].mean())


def labelled_alignment(cos: torch.Tensor, live: torch.Tensor, weights: torch.Tensor) -> float:
    """Label-weighted mean alignment `Σ w·cos / Σ w` over live positions (NaN without labels)."""
    w = _token_weights(weights, live)
    total = float(w.sum())
    if total <= 0:
        return math.nan
    return float((w * _f(cos)).sum() / total)


def margin(cos: torch.Tensor, live: torch.Tensor, weights: torch.Tensor) -> float:
    """Label-weighted mean alignment minus plain mean alignment (docs/method.md §6).

    How much closer a state sits to the anchor for being the concept. `weights` are the
    label probabilities (or exact 0/1 labels) per example `[N]` or per token `[N, T]`.
    """
    return labelled_alignment(cos, live, weights) - containment(cos, live)


def retention(margins: Sequence[float]) -> float:
    """Final margin divided by the peak margin over checkpoints (1 = nothing lost since the peak).

    NaN when there is no positive peak: a ratio to a non-positive peak says nothing.
    """
    values = [m for m in margins if not math.isnan(m)]
    if not values:
        return math.nan
    peak = max(values)
    if peak <= 0:
        return math.nan
    return values[-1] / peak


def position_profile(cos: torch.Tensor, live: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Mean alignment at each position over the selected rows `[T]`; NaN where no row is live."""
    live = live.bool()
    if rows is not None:
        live = live & rows.bool().unsqueeze(-1)
    count = live.sum(0)
    total = (cos.float() * live).sum(0)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


def latch_mass(cos: torch.Tensor, spans: torch.Tensor, syntax: torch.Tensor, tau: float | None) -> dict[str, float]:
    """How much of the pooled pull lands on syntax tokens (the latch check, docs/method.md §6, §8).

    The mellowmax pull's gradient over a span is the softmin weights of `x = 1 − cos`
    (`geometry.softmin_weights`); at small τ they can concentrate on syntax tokens early in
    training. Returns `mass` (mean over spans of the weight on syntax tokens) and `chance`
    (mean share of syntax tokens in a span, the mass a uniform pull would put there), so
    `mass ≫ chance` flags a latch. `tau=None` is the uniform pull (mass = chance).

    Args:
        cos: `[N, T]` alignment.
        spans: `[N, T]` bool, the labelled spans (rows without a span are skipped).
        syntax: `[N, T]` bool, positions holding syntax tokens.
        tau: mellowmax temperature of the concept.
    """
    spans = spans.bool()
    has_span = spans.any(-1)
    if not bool(has_span.any()):
        return {"mass": math.nan, "chance": math.nan, "spans": 0}
    x = 1.0 - cos.float()
    if tau is None:
        weights = spans.float() / spans.sum(-1, keepdim=True).clamp_min(1)
    else:
        weights = softmin_weights(x, spans, tau)  # rows without a span come back as 0
    syntax_f = (syntax.bool() & spans).float()
    mass = (weights * syntax_f).sum(-1)[has_span]
    chance = (syntax_f.sum(-1) / spans.sum(-1).clamp_min(1))[has_span]
    return {"mass": float(mass.mean()), "chance": float(chance.mean()), "spans": int(has_span.sum())}


def direction_cosine(direction: torch.Tensor, basis: torch.Tensor) -> float:
    """Cosine between a found direction `[D]` and the anchored place `basis [D, k]`.

    Signed `d̂·v̂` for a direction; for a subspace the unsigned `‖Uᵀd̂‖` (the cosine of the
    angle between the direction and the subspace). Compares post-hoc and probe directions
    with the anchor.
    """
    d = direction.float().reshape(-1)
    d = d / d.norm().clamp_min(EPS)
    proj = basis.float().T @ d  # [k]
    if proj.numel() == 1:
        return float(proj[0])
    return float(proj.norm())
