"""Ablate for the length of a block, then put every edited weight back exactly.

Measuring an ablated model means editing its weights in place (`ablate`, `ablate_axes`);
comparing it with the intact model means undoing that. `restored` copies the parameters of
the modules an edit can touch before the block and copies them back after it, also when the
block raises, so the model leaves bit-identical (twice the memory of the edited modules,
never of the whole model; tied parameters are restored with the module that owns them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..config import AnchorConfig
from ..layers import named_sites, unwrap_model
from .ablation import ablate, ablate_axes, residual_writes


@contextmanager
def restored(*modules: nn.Module) -> Iterator[None]:
    """Inside the block the parameters of `modules` may change; on exit they are exactly as before."""
    saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for module in modules:
        for p in module.parameters():
            saved.setdefault(id(p), (p, p.detach().clone()))
    try:
        yield
    finally:
        with torch.no_grad():
            for p, copy in saved.values():
                p.copy_(copy)


@contextmanager
def ablated(model: nn.Module, cfg: AnchorConfig | None = None, concept: str | None = None, *,
            direction: Any | None = None) -> Iterator[dict[str, float]]:
    """`ablate(model, cfg, concept)` (or `direction=`) for the block; the weights are restored on exit.

        with ablated(model, cfg, "red") as removed:   # removed: parameter -> norm of the part taken out
            loss = evaluate(model)                     # the model without the concept
        # here the model is exactly as before

    Args: as `ablate` (the model is edited in place inside the block).
    """
    base = unwrap_model(model)
    sites = named_sites(base)
    writes = [sites[name] for name in residual_writes(base)]  # raises for an unknown family before any edit
    with restored(*writes):
        yield ablate(model, cfg, concept, direction=direction)


@contextmanager
def ablated_axes(producer: nn.Linear, consumer: nn.Linear, dims: Sequence[int]) -> Iterator[dict[str, float]]:
    """`ablate_axes(producer, consumer, dims)` for the block; both layers are restored on exit."""
    with restored(producer, consumer):
        yield ablate_axes(producer, consumer, dims)
