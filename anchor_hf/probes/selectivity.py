"""How selective an intervention is: contrast (a ratio of rises) and grading (R² against similarity).

Both are read off per-item losses or errors before and after an intervention (docs/method.md §6):
- contrast, `selectivity_ratio`: how much the concept's items worsen per unit of change on
  unrelated items;
- grading, `r_squared`: how well one item's rise follows its similarity to the concept.
The experiments measure in different units (mean squared RGB error, nats per token), so the
floor of the ratio is an argument, never a constant hidden here.
"""

from __future__ import annotations

import math

import torch


def selectivity_ratio(target_rise: float, other_rise: float, floor: float) -> float:
    """`Δtarget / max(|Δother|, floor)`: the target's rise per unit of change elsewhere.

    Why the absolute value: unrelated items that get *better* under an intervention were moved
    by it too, so a fall counts as collateral as much as a rise. Why the floor: when unrelated
    items do not move at all the ratio would be infinite; below `floor` (the smallest change the
    measurement resolves, in the rises' units) a change counts as `floor`.

    Args:
        target_rise: mean rise of the loss (or error) on the concept's items.
        other_rise: mean rise on unrelated items, in the same units.
        floor: > 0, in those units (e.g. 1e-4 for mean squared RGB error, 2.5 hex steps on every channel;
            1e-3 nats for a mean per-token NLL).
    """
    if not floor > 0:
        raise ValueError(f"`floor` must be > 0 (in the units of the rises), got {floor!r}")
    return target_rise / max(abs(other_rise), floor)


def r_squared(x: torch.Tensor, y: torch.Tensor) -> float:
    """R² of `y` against `x` `[N]` under a least-squares line: the squared Pearson correlation.

    `R² = (Σ x̃ỹ)² / (Σ x̃² · Σ ỹ²)` with `x̃ = x − mean(x)`, in float64. NaN when either is
    flat: a line through constant data explains nothing and fails nothing, so R² is undefined
    there, and a caller must say how it summarizes such a case rather than read a 0 or a 1.
    """
    if x.shape != y.shape or x.dim() != 1:
        raise ValueError(f"`x` and `y` must be 1-D of the same length, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denominator = float((x * x).sum() * (y * y).sum())
    if denominator == 0.0:
        return math.nan
    return float((x * y).sum() ** 2 / denominator)
