"""Percentile bootstrap intervals of a statistic computed from one or several independent samples.

A measured effect (a mean score shift, a ratio of two shifts) is reported with the interval
its finite sample allows: each replicate redraws every sample with replacement, at its own
size and independently of the others, and recomputes the statistic; the interval is the
central `level` share of the replicates (Efron's percentile interval). A statistic of
several paired quantities (e.g. scores of the same prompts before and after an edit) keeps
the pairing by indexing all of them with the same redrawn indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..errors import AnchorDataError

Statistic = Callable[[Sequence[torch.Tensor]], float]


def bootstrap_interval(statistic: Statistic, sizes: Sequence[int], *, resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """The percentile interval `(low, high)` of `statistic` under resampling of each sample.

    Args:
        statistic: maps one index tensor per sample (`[n_i]` long, drawn with replacement
            from `range(n_i)`) to a number; NaN replicates (an undefined ratio) are left out.
        sizes: `n_i`, the size of each sample (each >= 1).
        resamples: number of replicates (>= 1).
        level: coverage in (0, 1), e.g. 0.95.
        seed: seeds the draws, so an interval is reproducible.

    Returns:
        `(low, high)`; `(nan, nan)` when every replicate is NaN.
    """
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise AnchorDataError(f"`sizes` must list sample sizes >= 1, got {list(sizes)!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise AnchorDataError(f"`resamples` must be an int >= 1, got {resamples!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise AnchorDataError(f"`level` must be in (0, 1), got {level!r}")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(resamples):
        draws = [torch.randint(0, n, (n,), generator=generator) for n in sizes]
        value = float(statistic(draws))
        if not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    tail = (1 - level) / 2
    ordered = torch.tensor(values, dtype=torch.float64)
    return float(torch.quantile(ordered, tail)), float(torch.quantile(ordered, 1 - tail))
