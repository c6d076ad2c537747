"""Detect an anchored concept without search: how closely each token's states sit on its place.

The place is known by construction, so detection has nothing to fit (docs/method.md §6):
the score of a token is its alignment with the concept's place, averaged over the anchored
layers, and an example scores as its best token,

    score_b = max_{t live} (1/L) Σ_l cos(h_{l,b,t}, place),

with `cos = ĥ·v̂` for a direction and `‖P_D ĥ‖` for a subspace of axes D. Padding never
scores: pads are read with the attention mask and position ids of a real batch, then left
out of the max (and NaN in the per-token view).
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

import torch
from torch import nn

from ..binding import bind
from ..capture import HiddenStateCapture
from ..config import AnchorConfig
from ..geometry import alignment, concept_place, coordinates
from ..layers import unwrap_model
from .targets import AnchorInterventionError, check_model

Reduce = Literal["max"] | None


def detect(model: nn.Module, cfg: AnchorConfig, concept: str, input_ids: torch.Tensor,
           attention_mask: torch.Tensor | None = None, reduce: Reduce = "max") -> torch.Tensor:
    """Per-example scores `[B]` of `concept`, or with `reduce=None` per-layer, per-token alignments `[L, B, T]`.

    Runs one forward pass without gradients and reads the anchored sites that
    `binding.bind(cfg, model)` resolves (the same sites the trainer anchored). Left and
    right padding give the same scores as each example alone: position ids follow the
    attention mask, and pads are excluded (NaN in the per-token view).

    Args:
        model: the anchored model (PEFT / DDP / compile wrappers are seen through).
        cfg: its `AnchorConfig` (e.g. `AnchorConfig.from_pretrained(folder)`).
        concept: the name of one of the config's concepts.
        input_ids: `[B, T]` token ids.
        attention_mask: `[B, T]`, 1 on tokens and 0 on pads; default every position is a token.
        reduce: `"max"` for one score per example, `None` for the alignments themselves.

    Returns:
        float32 `[B]` scores in [-1, 1] (a subspace: [0, 1]), or `[L, B, T]` alignments.
    """
    check_model(model)
    if reduce not in ("max", None):
        raise AnchorInterventionError(f"`reduce` must be 'max' or None, got {reduce!r}")
    binding = bind(cfg, model)
    binding.basis(concept)  # AnchorConfigError naming the known concepts
    basis, dims = concept_place(binding.config.concept(concept), binding.hidden_size)  # a pole -1 place signed
    ids, live = _check_inputs(input_ids, attention_mask)
    device = next(model.parameters()).device
    ids, live = ids.to(device), live.to(device)
    with torch.no_grad(), HiddenStateCapture(binding.modules, binding.names) as capture:
        model(**model_inputs(model, ids, live))
        cos = torch.stack([alignment(coordinates(h, basis, dims)) for h in capture.states])  # [L, B, T]
    if reduce is None:
        return cos.masked_fill(~live, float("nan"))
    return cos.mean(0).masked_fill(~live, -float("inf")).amax(-1)  # [B]


def model_inputs(model: nn.Module, input_ids: torch.Tensor, live: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward kwargs for a padded batch: ids, mask and, where the model takes them, position ids from the mask.

    Without explicit position ids most decoders number positions 0..T-1 whatever the mask,
    so a left-padded example would be read at shifted positions and score differently from
    the same example alone; counting live tokens puts its first token at position 0.
    """
    inputs = {"input_ids": input_ids, "attention_mask": live.long()}
    if "position_ids" in inspect.signature(unwrap_model(model).forward).parameters:
        inputs["position_ids"] = (live.long().cumsum(-1) - 1).clamp_min(0)
    return inputs


def _check_inputs(input_ids: Any, attention_mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_ids [B, T], live [B, T] bool)`, refusing shapes, dtypes and examples without a token."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point() \
            or input_ids.numel() == 0:
        raise AnchorInterventionError(f"`input_ids` must be a 2-D integer tensor [B, T], got "
                                      f"{type(input_ids).__name__} {list(getattr(input_ids, 'shape', []))}")
    if attention_mask is None:
        return input_ids, torch.ones_like(input_ids, dtype=torch.bool)
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        raise AnchorInterventionError(f"`attention_mask` has shape {list(getattr(attention_mask, 'shape', []))}, "
                                      f"but `input_ids` has {list(input_ids.shape)}; give one 0/1 per token")
    live = attention_mask.bool()
    empty = (~live.any(-1)).nonzero().flatten().tolist()
    if empty:
        raise AnchorInterventionError(f"example {empty[0]} has no token to score: its `attention_mask` is all 0")
    return input_ids, live
