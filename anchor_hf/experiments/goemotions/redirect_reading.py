"""The reading view of redirect: how an edit changes a model's loss on held-out comments of both sides.

The continuation measure (`redirect_eval`) asks whether what a model *writes* moves from E
to F. Where a model writes nearly the same after E and F prompts, that measure has nothing
to measure (its denominators fall below the floor, and the report says so). What an edit
does to the model's *reading* is measurable on any model: per held-out comment (E-and-not-F,
and F-and-not-E, as in training with the end-of-text token), the summed next-token NLL and
the number of predicted tokens, without and with the edit. Their ratio as perplexities,

    ratio_E = exp(ΣNLL_E(edited) / Σn − ΣNLL_E(unedited) / Σn)     (and ratio_F on F comments)

says how much the edit costs the model on the concept's own text (like suppression's
concept-NLL rise) and on the destination's text (collateral). Stored per comment so the
report's bootstrap redraws comments.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from anchor_hf.probes.inputs import pad_batches
from anchor_hf.probes.scores import token_nll
from .data import Comment


def held_out_comments(held_out: Sequence[Comment], holds: Any, cap: int, seed: int) -> list[Comment]:
    """Up to `cap` held-out comments for which `holds` is true, in a seeded random order."""
    chosen = [c for c in held_out if holds(c)]
    random.Random(seed).shuffle(chosen)
    return chosen[:cap]


def comment_nll(model: nn.Module, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int
                ) -> dict[str, list[float]]:
    """Per comment: `nll` (summed over its predicted tokens) and `count` (how many), under the model as it is."""
    out: dict[str, list[float]] = {"nll": [], "count": []}
    with torch.no_grad():
        for batch in pad_batches(ids, pad_id, batch_size):
            mask = batch["attention_mask"]
            count = (mask[:, 1:] & mask[:, :-1]).sum(-1).float()  # [B] tokens with a prediction
            out["nll"] += (token_nll(model, batch).cpu() * count).tolist()
            out["count"] += count.tolist()
    return out
