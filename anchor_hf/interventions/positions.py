"""Which positions a reversible intervention edits: every one, from position k on, or generated tokens only.

    positions="all"        every position (the default of every hook)
    positions=k (int ≥ 0)  positions k, k+1, ... of each sequence
    positions="generated"  only the states of tokens the model generated (under `generate()`)

A position is the index of a real token in its sequence, counted from 0 over the tokens
seen so far: with a KV cache, a token fed at step t of `generate()` has position
(cached length + t). Where the model's call carries a 2-D `attention_mask` covering the
cache, pads are not counted, so left-padded rows get their own positions. A block's
forward hook sees neither the cache nor the mask, so `PositionTracker` reads them with a
pre-hook on the model itself and the hooks ask it for a `[B, T]` mask of the positions to edit.
"Generated" needs the KV cache (`generate()`'s default): a forward that starts from an
empty cache is a prompt, and positions at or past each row's prompt length are generated.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..layers import unwrap_model
from .targets import AnchorInterventionError

Positions = Literal["all", "generated"] | int


def check_positions(positions: Any) -> Positions:
    """`positions` if it is "all", "generated" or an int ≥ 0; raises naming the allowed values otherwise."""
    if positions in ("all", "generated"):
        return positions
    if isinstance(positions, int) and not isinstance(positions, bool) and positions >= 0:
        return positions
    raise AnchorInterventionError(f"`positions` must be 'all', 'generated' or an int >= 0 (edit from that position "
                                  f"on), got {positions!r}")


def _cached_length(kwargs: dict[str, Any]) -> int:
    """Tokens already in the KV cache of this call (0 without one)."""
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    if isinstance(cache, (tuple, list)) and cache and isinstance(cache[0], (tuple, list)):
        return int(cache[0][0].shape[-2])  # legacy tuples: [B, heads, past, head_dim]
    return 0


class PositionTracker:
    """Knows, during each forward of `model`, the position of every token it processes.

    Installed by an intervention whose `positions` is not "all"; removed with it.
    """

    def __init__(self, model: nn.Module, positions: Positions) -> None:
        self.positions = positions
        self.current: torch.Tensor | None = None  # [B, T] positions of the running forward
        self.prompt: torch.Tensor | None = None  # [B] prompt lengths of the running generation
        base = unwrap_model(model)
        self.handles: list[RemovableHandle] = [
            base.register_forward_pre_hook(self._before, with_kwargs=True),
            base.register_forward_hook(self._after)]

    def _before(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs.get("inputs_embeds")
        if not isinstance(ids, torch.Tensor) or ids.dim() < 2:
            raise AnchorInterventionError("`positions` needs a model called with `input_ids` (or `inputs_embeds`) "
                                          "of shape [B, T]")
        if self.positions == "generated" and kwargs.get("use_cache") is False:
            raise AnchorInterventionError("`positions='generated'` needs the KV cache (generate()'s default): "
                                          "without it every step re-reads the prompt; pass use_cache=True, or "
                                          "`positions=` the prompt length")
        b, t = ids.shape[0], ids.shape[1]
        past = _cached_length(kwargs)
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape == (b, past + t):
            pos = mask.long().cumsum(-1)[:, -t:] - 1  # [B, T]: real tokens before each, pads not counted
        else:
            pos = (past + torch.arange(t, device=ids.device)).expand(b, t)
        if past == 0:
            self.prompt = pos.max(-1).values + 1  # [B] a fresh prompt: everything later is generated
        self.current = pos

    def _after(self, module: nn.Module, args: Any, output: Any) -> None:
        self.current = None  # a stale mask must never reach a later call that bypasses the model

    def mask(self, shape: torch.Size, where: str) -> torch.Tensor:
        """`[B, T]` bool: the positions of the running forward to edit, for a state of `shape` at `where`."""
        if self.current is None or len(shape) != 3 or tuple(shape[:2]) != tuple(self.current.shape):
            raise AnchorInterventionError(
                f"`positions` = {self.positions!r}: the state at {where!r} has shape {list(shape)}, which is not "
                "[B, T, D] of the running model call; call the model itself (not a submodule), or use "
                "positions='all'")
        if self.positions == "generated":
            if self.prompt is None or self.prompt.shape[0] != self.current.shape[0]:
                return torch.zeros_like(self.current, dtype=torch.bool)
            return self.current >= self.prompt.unsqueeze(-1)
        return self.current >= int(self.positions)

    def remove(self) -> None:
        while self.handles:
            self.handles.pop().remove()
