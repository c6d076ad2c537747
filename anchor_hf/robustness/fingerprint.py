"""Fingerprint: can the edited model be told apart from one that never learned the concept?

Two models trained separately differ on every text (seed, data order), so a raw loss
difference says little. What betrays a removal that only hides is a difference that is
*concept-specific*: per example, `d = NLL_arm − NLL_never`, and the question is whether
`d` on concept texts is distributed like `d` on other texts. The two-sided Mann–Whitney U
test answers it without assuming a distribution; a small p-value means the arm is
distinguishable on the concept beyond its ordinary difference from the never-saw model.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def mann_whitney(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Two-sided Mann–Whitney U test of `x` vs `y`: (`U / (n_x n_y)`, p-value).

    `U / (n_x n_y)` is the probability that a random `x` exceeds a random `y` (ties count
    half): 0.5 when they are alike. The p-value uses the normal approximation with the tie
    correction and a continuity correction (as `scipy.stats.mannwhitneyu(method="asymptotic")`).
    """
    x, y = x.double().reshape(-1), y.double().reshape(-1)
    x, y = x[~x.isnan()], y[~y.isnan()]
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    both = torch.cat([x, y])
    ranks = _average_ranks(both)
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    n = n1 + n2
    _, counts = torch.unique(both, return_counts=True)
    ties = float((counts.double() ** 3 - counts.double()).sum())
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    mean = n1 * n2 / 2
    if var <= 0:
        return u / (n1 * n2), 1.0
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    return u / (n1 * n2), min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks, ties sharing the mean of their ranks."""
    order = torch.argsort(values, stable=True)
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=values.dtype)
    unique, inverse = torch.unique(values, return_inverse=True)
    sums = torch.zeros(len(unique), dtype=values.dtype).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(unique), dtype=values.dtype).index_add_(0, inverse, torch.ones_like(values))
    return (sums / counts)[inverse]


def fingerprint(arm_concept: torch.Tensor, never_concept: torch.Tensor, arm_other: torch.Tensor,
                never_other: torch.Tensor) -> dict[str, Any]:
    """How distinguishable an arm is from the never-saw model, on concept texts beyond other texts.

    Args:
        arm_concept, never_concept: per-example NLL `[N_c]` of the arm and of the never-saw
            model on the same concept texts; arm_other, never_other: `[N_o]` on other texts.

    Returns:
        `mean_diff_concept`, `mean_diff_other` (mean `d`), `auc` (P(d_concept > d_other)),
        `pvalue` (Mann–Whitney, two-sided), and the per-example `diff_concept` / `diff_other` lists.
    """
    d_c = (arm_concept - never_concept).double()
    d_o = (arm_other - never_other).double()
    auc, p = mann_whitney(d_c, d_o)
    return {"mean_diff_concept": float(d_c.nanmean()), "mean_diff_other": float(d_o.nanmean()), "auc": auc,
            "pvalue": p, "diff_concept": d_c.tolist(), "diff_other": d_o.tolist()}
