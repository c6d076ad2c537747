"""Summaries over seeds or runs, with the treatment of missing values said out loud."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Literal

NanPolicy = Literal["omit", "propagate"]


def median(values: Iterable[float | None], nan: NanPolicy) -> float:
    """The median of `values`, where None and NaN are missing values.

    `nan="omit"`: the median of the values that are there (NaN when none is), for summaries
    that report how many runs gave a value; `nan="propagate"`: NaN as soon as one is missing,
    so a failed run cannot drop out of a median unseen. Infinities are ordinary values (a
    budget that ran out is larger than any count).
    """
    if nan not in ("omit", "propagate"):
        raise ValueError(f"`nan` must be 'omit' or 'propagate', got {nan!r}")
    items = [math.nan if v is None else float(v) for v in values]
    kept = [v for v in items if not math.isnan(v)]
    if not kept or (nan == "propagate" and len(kept) < len(items)):
        return math.nan
    return float(statistics.median(kept))
