"""Detection without search: AUROC of `cos(h, v̂)` for concept vs non-concept examples (docs/method.md §6).

The anchor is known in advance, so the detector has no parameters to fit: the score of an
example is its pooled alignment, and the AUROC says how well that score ranks concept
examples above the rest. Pure torch (no sklearn).
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import AnchorDataError

Pool = Literal["mean", "max"]


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of `scores [N]` for binary `labels [N]`.

    The Mann–Whitney form: the probability that a random positive scores above a random
    negative, ties counting one half (average ranks). 1.0 = perfect ranking, 0.5 = chance.
    Raises `AnchorDataError` unless both classes are present.
    """
    scores = scores.detach().reshape(-1).double().cpu()
    labels = labels.detach().reshape(-1).cpu().bool()
    if scores.numel() != labels.numel():
        raise AnchorDataError(f"auroc: {scores.numel()} scores but {labels.numel()} labels")
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        raise AnchorDataError(f"auroc needs both classes, got {n_pos} positive and {n_neg} negative examples")
    if not bool(torch.isfinite(scores).all()):
        raise AnchorDataError("auroc: scores contain NaN or inf")
    _, inverse, counts = torch.unique(scores, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # 1-based rank of the last member of each tie group
    average_rank = ends - (counts.double() - 1) / 2
    ranks = average_rank[inverse]
    rank_sum = float(ranks[labels].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def pool_alignment(cos: torch.Tensor, live: torch.Tensor, pool: Pool = "mean") -> torch.Tensor:
    """One score per example from `cos [N, T]` over its live positions `[N, T]` → `[N]`."""
    live = live.bool()
    if pool == "mean":
        return (cos.float() * live).sum(-1) / live.sum(-1).clamp_min(1)
    if pool == "max":
        return torch.where(live, cos.float(), torch.full_like(cos.float(), -float("inf"))).amax(-1)
    raise AnchorDataError(f"`pool` must be 'mean' or 'max', got {pool!r}")


def detection_auroc(cos: torch.Tensor, live: torch.Tensor, labels: torch.Tensor, pool: Pool = "mean") -> float:
    """AUROC of pooled alignment for exact labels `[N]` (values ≥ 0.5 count as the concept)."""
    return auroc(pool_alignment(cos, live, pool), labels.float() >= 0.5)
