"""Gradient routing to the anchor: labelled states learn through the anchored place only.

The pull puts a concept *on* its axis, but a wide residual stream keeps it readable *off*
the axis too, so suppressing the axis barely changes the output (docs/method.md §9). Routing
closes the other door: at each anchored layer, for the labelled positions of a batch, the
state keeps its value but its off-axis part is detached,

    h' = P h + stop_gradient(h − P h),     P = U Uᵀ the projector on the anchored place,

so the task loss of labelled examples trains everything upstream only through the
anchored component. What makes those examples special is then learned where suppression
and ablation can reach it. The forward pass is unchanged (h' = h up to rounding), so
outputs, metrics and unlabelled examples are untouched; labels stay sparse and drawn per
visit (docs/method.md §3), so strongly labelled examples are routed on most visits and weakly
labelled ones rarely. This is gradient routing (Cloud et al. 2024, arXiv 2410.04332)
with the anchor as the route.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .capture import first_tensor


def route_state(h: torch.Tensor, basis: torch.Tensor, routed: torch.Tensor) -> torch.Tensor:
    """`h [B, T, D]` with the off-place part detached at positions `routed [B, T]` (value kept).

    `basis [D, k]` is orthonormal. Positions not routed are returned as they are.
    """
    u = basis.to(device=h.device, dtype=h.dtype)
    on = (h @ u) @ u.T  # [B, T, D]
    out = on + (h - on).detach()
    return torch.where(routed.to(h.device).unsqueeze(-1), out, h)


class GradientRouter:
    """Forward hooks that route labelled positions' gradients through each concept's place.

    Args:
        modules: the anchored modules (their first output is the hidden state `[B, T, D]`).
        bases: per routed concept, its orthonormal basis `[D, k]`.
        routed: per routed concept, `[B, T]` bool, the positions to route in this batch.
    """

    def __init__(self, modules: Sequence[nn.Module], bases: Sequence[torch.Tensor],
                 routed: Sequence[torch.Tensor]) -> None:
        self.modules = list(modules)
        self.routes = [(b, r) for b, r in zip(bases, routed) if bool(r.any())]
        self._handles: list[RemovableHandle] = []

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        h = first_tensor(output)
        if h is None or h.dim() != 3:
            return None
        for basis, routed in self.routes:
            h = route_state(h, basis, routed)
        if isinstance(output, torch.Tensor):
            return h
        return (h, *output[1:])

    def __enter__(self) -> GradientRouter:
        try:
            if self.routes:
                for module in self.modules:
                    self._handles.append(module.register_forward_hook(self._hook))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()
