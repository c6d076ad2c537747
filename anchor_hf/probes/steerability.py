"""Steerability: the dose–response of a concept score under additive steering (docs/method.md §5–6).

`steer` adds `c·‖h‖·v̂` at the anchored layers. A concept is steerable when a per-example
score moves with the dose `c` for (nearly) every example, not just on average, so this
reports per-example slopes and the fraction of examples that move the wrong way beside
the mean curve. The math works on a `[E, C]` table of scores (examples × doses); the one
function that runs a model, `dose_response`, takes the intervention and the score as
callables, so it knows nothing about transformers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import AnchorDataError
from .uncertainty import RESAMPLES, bootstrap_interval, bootstrap_intervals

ScoreFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # batch -> [B] scores


def dose_slopes(doses: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Least-squares slope of each example's score against the dose: `doses [C]`, `scores [E, C]` → `[E]`."""
    doses = torch.as_tensor(doses, dtype=torch.float64).reshape(-1)
    scores = scores.double()
    if scores.dim() != 2 or scores.shape[1] != doses.numel():
        raise AnchorDataError(f"dose_slopes: scores must be [examples, {doses.numel()} doses], got "
                              f"{tuple(scores.shape)}")
    if doses.numel() < 2 or float(doses.var()) == 0:
        raise AnchorDataError(f"dose_slopes needs at least two different doses, got {doses.tolist()}")
    dc = doses - doses.mean()
    sc = scores - scores.mean(1, keepdim=True)
    return (sc @ dc) / (dc @ dc)


def wrong_way_fraction(slopes: torch.Tensor, expected_sign: int = 1) -> float:
    """Share of examples whose slope has the opposite sign of `expected_sign` (a zero slope counts as wrong)."""
    if expected_sign not in (1, -1):
        raise AnchorDataError(f"`expected_sign` must be 1 or -1, got {expected_sign!r}")
    if slopes.numel() == 0:
        return math.nan
    return float((slopes * expected_sign <= 0).double().mean())


def monotone_fraction(scores: torch.Tensor, expected_sign: int = 1) -> float:
    """Share of examples whose score moves strictly in the expected direction at every dose step (doses sorted)."""
    steps = scores.diff(dim=1) * expected_sign
    return float((steps > 0).all(1).double().mean())


def summarize_dose_response(doses: Sequence[float], scores: torch.Tensor, expected_sign: int = 1,
                            resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Mean/std curve, per-example slopes and the wrong-way fraction of a `[E, C]` score table.

    Doses are sorted first, so the table may come in any dose order. The mean curve and the
    mean slope come with 95% bootstrap intervals over the examples (`uncertainty`).
    """
    doses_t = torch.as_tensor(list(doses), dtype=torch.float64)
    order = torch.argsort(doses_t)
    doses_t, scores = doses_t[order], scores.double()[:, order]
    slopes = dose_slopes(doses_t, scores)
    low, high = bootstrap_intervals(lambda i: scores[i].nanmean(0), scores.shape[0], resamples, seed)
    return {
        "doses": doses_t.tolist(),
        "mean": scores.mean(0).tolist(),
        "mean_interval": torch.stack([low, high], -1).tolist(),
        "std": scores.std(0, unbiased=False).tolist(),
        "slopes": slopes.tolist(),
        "slope_mean": float(slopes.mean()),
        "slope_mean_interval": list(bootstrap_interval(lambda i: float(slopes[i].mean()), slopes.numel(), resamples,
                                                       seed)),
        "slope_median": float(slopes.median()),
        "wrong_way_fraction": wrong_way_fraction(slopes, expected_sign),
        "monotone_fraction": monotone_fraction(scores, expected_sign),
        "examples": int(scores.shape[0]),
    }


def dose_response(apply: Callable[[float], AbstractContextManager[Any]], score: ScoreFn,
                  batches: Iterable[dict[str, torch.Tensor]], doses: Sequence[float],
                  progress: bool = True, desc: str = "dose-response") -> torch.Tensor:
    """Scores `[E, C]` of every example under every dose.

    Args:
        apply: `dose -> context manager` that steers while open (e.g. `lambda c: steer(model, cfg, name, c)`).
        score: `batch -> [B]` concept score of each example (run under the open intervention).
        batches: the examples, a list of model-input dicts (iterated once per dose).
        doses: the doses `c`, any order, negative allowed.
        progress: show a tqdm bar.
    """
    batches = list(batches)
    columns = []
    for dose in tqdm(list(doses), desc=desc, disable=not progress):
        with torch.no_grad(), apply(float(dose)):
            columns.append(torch.cat([score(batch).detach().float().cpu() for batch in batches]))
    return torch.stack(columns, dim=1)
