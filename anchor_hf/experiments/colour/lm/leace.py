"""LEACE at every anchored slice: the strongest post-hoc linear erasure, as a baseline for redirect.

LEACE (Belrose et al. 2023, arXiv 2306.03819; EleutherAI's `concept-erasure`) is the
least-squares edit after which no linear classifier can read a concept from the states. It
is fitted here per token at each anchored slice, on the states of the memorized lines with
each token labelled by its line's exact target label, and applied at every slice while the
model answers: erasure at the same places, on the same items, as the anchored interventions
(docs/method.md §10 measured it on the demo models). Nothing here is part of the anchor_hf
core: LEACE needs no anchor, so it runs on the control model as well as the anchored one.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from anchor_hf.binding import bind
from anchor_hf.config import AnchorConfig
from anchor_hf.probes.states import LayerStates
from .effects import Intervention


def fit_erasers(states: LayerStates, labels: torch.Tensor) -> list[Any]:
    """One `LeaceEraser` per layer, fitted on every live token `[M, D]` with its line's label `[N]`."""
    from concept_erasure import LeaceFitter

    if states.states is None:
        raise ValueError("fit_erasers needs the full states: collect them with keep_states=True")
    z = labels.float().unsqueeze(1).expand_as(states.live)[states.live]  # [M] each token: its line's label
    erasers = []
    for h in states.states:
        x = h[states.live].double()  # [M, D]
        erasers.append(LeaceFitter.fit(x, z.double().unsqueeze(-1)).eraser)
    return erasers


def leace_intervention(cfg: AnchorConfig, erasers: list[Any]) -> Intervention:
    """A context manager factory: the fitted erasers applied to the outputs of `cfg`'s anchored sites."""

    def enter(model: nn.Module) -> ExitStack:
        sites = bind(cfg, model).sites
        if len(sites) != len(erasers):
            raise ValueError(f"{len(erasers)} erasers for {len(sites)} anchored sites")
        stack = ExitStack()
        try:
            for (_, module), eraser in zip(sites, erasers):
                stack.callback(module.register_forward_hook(_erase_hook(eraser)).remove)
        except BaseException:
            stack.close()  # never leave half the hooks behind
            raise
        return stack

    return enter


def _erase_hook(eraser: Any) -> Any:
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        h = output if isinstance(output, torch.Tensor) else output[0]
        erased = eraser(h.double()).to(h.dtype)
        return erased if isinstance(output, torch.Tensor) else (erased, *output[1:])

    return hook
