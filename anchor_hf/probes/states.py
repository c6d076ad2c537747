"""Collect what probes need from a model's anchored layers over a dataset (docs/method.md §6).

Probes read states exactly as the regularizer saw them in training: the first output of
each anchored module, recorded by forward hooks (`HiddenStateCapture`), so "the state at
layer L" means the same thing in training and in measurement. Full states `[N, T, D]`
per layer outgrow memory on real models, so by default only their summaries are kept:
the alignment of every position with each concept's place `[N, T]`, and each example's
mean unit state `[N, D]` (the features of linear probes and post-hoc directions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from ..capture import HiddenStateCapture
from ..geometry import unit
from .alignment import token_alignment

Place = tuple[torch.Tensor, Sequence[int] | None]  # (basis [D, k], axes or None)


@dataclass
class LayerStates:
    """Summaries of N examples' states at the anchored layers, float32 on the CPU.

    Attributes:
        names: module name of each layer.
        live: `[N, T]` bool, non-pad positions.
        input_ids: `[N, T]` token ids (0 at pads).
        pooled: per layer `[N, D]`, the mean unit state `mean_t ĥ_t` over live positions.
        cos: concept -> per layer `[N, T]` alignment with its place (0 at pads).
        states: per layer `[N, T, D]` (zeros at pads), only when collected with `keep_states`.
    """

    names: list[str]
    live: torch.Tensor
    input_ids: torch.Tensor
    pooled: list[torch.Tensor]
    cos: dict[str, list[torch.Tensor]]
    states: list[torch.Tensor] | None = None


def _pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    """Right-pad dim 1 of `x` with zeros up to `length`."""
    if x.shape[1] == length:
        return x
    return torch.cat([x, x.new_zeros((x.shape[0], length - x.shape[1], *x.shape[2:]))], dim=1)


def _cat(chunks: list[torch.Tensor], length: int) -> torch.Tensor:
    return torch.cat([_pad_to(x, length) for x in chunks])


def collect_states(model: nn.Module, modules: Sequence[tuple[str, nn.Module]],
                   batches: Iterable[dict[str, torch.Tensor]], places: Mapping[str, Place] | None = None,
                   keep_states: bool = False, progress: bool = True, desc: str = "states") -> LayerStates:
    """Run `model` over `batches` without gradients and summarize the anchored modules' outputs.

    Args:
        model: the model (any wrapper; it is only called).
        modules: `(name, module)` pairs, e.g. from `layers.resolve_layers`.
        batches: dicts with `input_ids` and `attention_mask` `[B, T]`, right-padded so
            positions line up across examples.
        places: concept -> (basis `[D, k]`, axes or None) to measure alignment with.
        keep_states: also keep the full states (small models and tests only).
        progress: show a tqdm bar.
    """
    places = dict(places or {})
    names = [name for name, _ in modules]
    device = next(model.parameters()).device
    pooled: list[list[torch.Tensor]] = [[] for _ in modules]
    cos: dict[str, list[list[torch.Tensor]]] = {c: [[] for _ in modules] for c in places}
    full: list[list[torch.Tensor]] = [[] for _ in modules]
    lives, ids = [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in tqdm(list(batches), desc=desc, disable=not progress):
                inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                with HiddenStateCapture([m for _, m in modules], names) as capture:
                    model(**inputs)
                live = batch["attention_mask"].bool().cpu()
                mask = live.unsqueeze(-1).float()
                for layer, h in enumerate(capture.states):
                    h = h.detach().float().cpu() * mask  # [B, T, D], pads zeroed
                    pooled[layer].append((unit(h) * mask).sum(1) / mask.sum(1).clamp_min(1))
                    for concept, (basis, dims) in places.items():
                        cos[concept][layer].append(token_alignment(h, basis, dims) * live)
                    if keep_states:
                        full[layer].append(h)
                lives.append(live)
                ids.append(batch["input_ids"].cpu() * live)
    finally:
        model.train(was_training)
    length = max(x.shape[1] for x in lives)
    return LayerStates(
        names=names, live=_cat(lives, length), input_ids=_cat(ids, length),
        pooled=[torch.cat(chunks) for chunks in pooled],
        cos={c: [_cat(chunks, length) for chunks in per_layer] for c, per_layer in cos.items()},
        states=[_cat(chunks, length) for chunks in full] if keep_states else None)
