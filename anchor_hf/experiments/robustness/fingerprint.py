"""Fingerprint: can the edited model be told apart from one that never learned the concept?

Two models trained separately differ on every text (seed, data order), so a raw loss
difference says little. What betrays a removal that only hides is a difference that is
*concept-specific*: per example, `d = NLL_arm − NLL_never`, and the question is whether
`d` on concept texts is distributed like `d` on other texts. The two-sided Mann–Whitney U
test answers it without assuming a distribution; a small p-value means the arm is
distinguishable on the concept beyond its ordinary difference from the never-saw model.
"""

from __future__ import annotations

from typing import Any

import torch

from .stats import mann_whitney


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
