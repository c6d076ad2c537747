"""Small statistics the attacks report: a rank test, an AUROC's standard error, the median over triples.

Plain torch and `math`, so the robustness code needs no SciPy; each is checked against
hand-computed values in tests/test_robustness_attacks.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from anchor_hf.probes.stats import median as seed_median


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


def auroc_standard_error(auroc: float, n_positive: int, n_negative: int) -> float:
    """Standard error of an AUROC from its value and class sizes (Hanley & McNeil 1982).

    Used to say when two probes' AUROCs differ by less than their sampling noise.
    """
    a = auroc
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_positive - 1) * (q1 - a * a) + (n_negative - 1) * (q2 - a * a)) / (n_positive * n_negative)
    return math.sqrt(max(var, 0.0))


def median(values: Sequence[float]) -> float:
    """Median over triples: an `inf` (a relearning budget that ran out) is larger than any count; a NaN
    (no value) makes the median NaN (`anchor_hf.probes.median` with `nan="propagate"`)."""
    return seed_median(values, nan="propagate")
