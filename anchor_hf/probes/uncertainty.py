"""How sure a probe number is: bootstrap intervals over the held-out examples, and the noise floor.

Every probe statistic is a function of the examples it was measured on; another held-out
set of the same size would give another value. Resampling the examples with replacement
(`bootstrap_interval`) shows how much: the 2.5th and 97.5th percentiles of the statistic
over the resamples are its 95% interval. The same seed gives the same interval.

A ratio of two changes (entanglement's ΔL_B / ΔL_A) is only meaningful when its denominator
stands out from that variation: `noise_floor` is `z` standard errors of the mean of the
per-example changes (z = 2 by default, about a 95% two-sided test of "no change"), and a
denominator at or below it is reported as below the floor, never as a ratio.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

RESAMPLES = 200  # enough for stable 95% percentile intervals at the second decimal of AUROCs and cosines
LEVEL = 0.95
NOISE_Z = 2.0


def bootstrap_intervals(statistic: Callable[[torch.Tensor], torch.Tensor], n: int, resamples: int = RESAMPLES,
                        seed: int = 0, level: float = LEVEL) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise `level` percentile intervals of a tensor statistic over `resamples` draws of `n` example indices.

    `statistic` takes a `[n]` long tensor of example indices (drawn with replacement) and
    returns a tensor of any fixed shape; an element that is NaN on a resample (e.g. an AUROC
    whose resample lost a class) is left out there, and is NaN in the result when fewer than
    half of the resamples give it a number. Returns (low, high), each of the statistic's shape.
    """
    g = torch.Generator().manual_seed(seed)
    values = torch.stack([torch.as_tensor(statistic(torch.randint(0, n, (n,), generator=g)), dtype=torch.float64)
                          for _ in range(resamples)])  # [R, ...]
    tail = (1.0 - level) / 2
    low, high = torch.nanquantile(values, tail, dim=0), torch.nanquantile(values, 1.0 - tail, dim=0)
    enough = torch.isfinite(values).sum(0) >= resamples / 2
    nan = torch.full_like(low, float("nan"))
    return torch.where(enough, low, nan), torch.where(enough, high, nan)


def bootstrap_interval(statistic: Callable[[torch.Tensor], float], n: int, resamples: int = RESAMPLES,
                       seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """`bootstrap_intervals` for a float statistic: (low, high), or (nan, nan) without enough resamples."""
    if n < 1 or resamples < 1:
        return math.nan, math.nan
    low, high = bootstrap_intervals(lambda index: torch.tensor(float(statistic(index))), n, resamples, seed, level)
    return float(low), float(high)


def standard_error(changes: torch.Tensor) -> float:
    """Standard error of the mean of per-example values `[n]` (NaN below two values)."""
    changes = changes.double().reshape(-1)
    if changes.numel() < 2:
        return math.nan
    return float(changes.std(unbiased=True) / math.sqrt(changes.numel()))


def noise_floor(changes: torch.Tensor, z: float = NOISE_Z) -> float:
    """`z` standard errors of the mean per-example change: a mean change at or below this is noise."""
    return z * standard_error(changes)


def is_above_floor(changes: torch.Tensor, z: float = NOISE_Z) -> bool:
    """Whether the mean of `changes [n]` is positive and above its noise floor."""
    floor = noise_floor(changes, z)
    return not math.isnan(floor) and float(changes.double().mean()) > floor
