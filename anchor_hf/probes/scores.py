"""Per-example scores of a model on a batch: token loss, log-likelihood, readout alignment.

The quantities that interventions are judged by (docs/method.md §6): entanglement compares
held-out losses, steerability tracks a concept score over doses. Each function returns
one number per example `[B]`, so callers can group or pair examples freely.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..capture import HiddenStateCapture
from .alignment import token_alignment

MODEL_INPUTS = ("input_ids", "attention_mask")


def _inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: batch[k].to(device) for k in MODEL_INPUTS if k in batch}


def token_nll(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token negative log-likelihood of each example over its live positions `[B]`.

    A causal LM's own task loss, per example instead of per batch, so losses can be grouped
    by concept. Examples with fewer than two live tokens get NaN (nothing to predict).
    """
    inputs = _inputs(model, batch)
    logits = model(**inputs).logits.float()  # [B, T, V]
    ids = inputs["input_ids"]
    live = inputs.get("attention_mask", torch.ones_like(ids)).bool()
    target_live = live[:, 1:] & live[:, :-1]  # [B, T-1]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    count = target_live.sum(-1)
    mean = (nll * target_live).sum(-1) / count.clamp_min(1)
    return torch.where(count > 0, mean, torch.full_like(mean, float("nan")))


def token_logprob(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token log-likelihood of each example `[B]` (minus `token_nll`)."""
    return -token_nll(model, batch)


class ReadoutAlignment:
    """Mean alignment of each example's live states at a readout module with an anchored place `[B]`.

    Used as a steerability score: steer at the anchored layers, read the alignment further
    down (by default the last block), so the score says whether the push survives the
    layers in between.
    """

    def __init__(self, model: nn.Module, module: nn.Module, basis: torch.Tensor,
                 dims: Sequence[int] | None = None) -> None:
        self.model, self.module, self.basis, self.dims = model, module, basis, dims

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = _inputs(self.model, batch)
        with HiddenStateCapture([self.module]) as capture:
            self.model(**inputs)
        cos = token_alignment(capture.states[0], self.basis, self.dims)  # [B, T]
        live = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).bool()
        return (cos * live).sum(-1) / live.sum(-1).clamp_min(1)
