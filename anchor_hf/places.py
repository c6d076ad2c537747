"""Where to put a concept in a pretrained model: a seeded random direction clear of the model's outlier axes.

A pretrained residual stream is far from isotropic. A few axes carry "massive activations"
(on SmolLM2-135M one axis is tens to hundreds of times the median axis RMS from block 3 on,
and thousands of times at the first position, an attention sink), and every layer's states
share a large mean. Two defaults that are harmless in a model trained from scratch then bite
(docs/reports/steering_smollm2/ measures both on SmolLM2):
- `dims=[i]` may land on such an axis: anchoring fights the model's own scale there, and
  `suppress` / `steer` along it act on the massive activation itself;
- a random unit vector `v` picks up `v_i·h_i` on those axes and `v·mean`, which then decide
  the sign of `h·v` for almost every state, so `suppress(only_positive=True)` finds almost
  nothing pointing toward the concept to remove.

`pretrained_direction` measures the model's states at the anchored layers and draws a seeded
random unit vector with no component on any outlier axis and none along any layer's mean
state, so `cos(h, v)` is centred at every anchored layer before training;
`warn_outlier_places` warns when a concept's place has outlier scale on the states it is about
to be trained on: the trainer takes `place_statistics` on its first step (without a host sync)
and warns when it first logs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .capture import HiddenStateCapture
from .errors import AnchorConfigError
from .geometry import EPS
from .layers import resolve_layers

OUTLIER_FACTOR = 10.0  # an axis (or a place) whose RMS is this many times the median axis RMS is an outlier


class AnchorScaleWarning(UserWarning):
    """A concept's place has outlier scale on the model's states (it sits on or leans on a massive-activation axis)."""


def random_direction(hidden_size: int, seed: int = 0, *, avoid: Sequence[int] = (),
                     orthogonal_to: torch.Tensor | None = None) -> list[float]:
    """A seeded random unit vector `[D]` (a `ConceptAnchor.vector`), zero on `avoid`, orthogonal to `orthogonal_to`.

    `v ~ N(0, I)` from `torch.Generator().manual_seed(seed)`, the axes in `avoid` set to 0,
    the span of the rows of `orthogonal_to` (`[m, D]`, e.g. mean states) projected out,
    then normalized. With neither, the same seed gives the same vector on every machine.
    """
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
        raise AnchorConfigError(f"`hidden_size` must be an int >= 1, got {hidden_size!r}")
    bad = [a for a in avoid if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < hidden_size]
    if bad:
        raise AnchorConfigError(f"`avoid` must hold axes in 0..{hidden_size - 1}, got {bad}")
    v = torch.randn(hidden_size, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    keep = torch.ones(hidden_size)
    keep[list(avoid)] = 0.0
    v = v * keep
    if orthogonal_to is not None and orthogonal_to.numel() > 0:
        rows = orthogonal_to.detach().float().cpu().reshape(-1, hidden_size) * keep  # stay off the avoided axes
        q, r = torch.linalg.qr(rows.T)  # [D, m]
        q = q[:, r.diagonal().abs() > 1e-6 * max(float(r.diagonal().abs().max()), EPS)]  # independent rows only
        v = v - q @ (q.T @ v)
    norm = float(v.norm())
    if norm < 1e-6:
        raise AnchorConfigError(f"nothing is left of a random direction after avoiding {len(avoid)} axes and "
                                "projecting out the given rows; avoid fewer axes")
    return (v / norm).tolist()


def axis_scale(states: torch.Tensor) -> torch.Tensor:
    """Each axis's RMS over the states `[N, D]`, in multiples of the median axis RMS: `[D]`."""
    rms = states.detach().float().pow(2).mean(0).sqrt()  # [D]
    return rms / rms.median().clamp_min(EPS)


def outlier_axes(states: torch.Tensor, factor: float = OUTLIER_FACTOR) -> list[int]:
    """Axes whose RMS over `states [N, D]` is at least `factor` times the median axis RMS, largest first."""
    scale = axis_scale(states)
    order = torch.argsort(scale, descending=True)
    return [int(i) for i in order if scale[i] >= factor]


def place_scale(states: torch.Tensor, basis: torch.Tensor) -> float:
    """RMS of the states `[N, D]` along a place (orthonormal `[D, k]`, per direction), over the median axis RMS.

    About 1 for a direction the states do not favour, `axis_scale[i]` for the axis `i`, and
    large for a random direction that leans on an outlier axis.
    """
    stats = place_statistics({"": states}, {"": basis})
    return float(stats.along_rms[0, 0] / stats.axis_rms[0].median().clamp_min(EPS))


def live_states(model: nn.Module, layers: Sequence[int | str], input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Module name -> the states `[N, D]` of every non-padding token at `layers`, from one forward without grad."""
    sites = resolve_layers(model, list(layers))
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    with torch.no_grad(), HiddenStateCapture([m for _, m in sites], [n for n, _ in sites]) as capture:
        model(input_ids=input_ids, attention_mask=attention_mask)
    return {name: state[mask.to(state.device)].float().cpu() for (name, _), state in zip(sites, capture.states)}


def pretrained_direction(model: nn.Module, layers: Sequence[int | str], input_ids: torch.Tensor,
                         attention_mask: torch.Tensor | None = None, *, seed: int = 0,
                         factor: float = OUTLIER_FACTOR) -> list[float]:
    """A seeded random unit direction for anchoring a pretrained model at `layers` (a `ConceptAnchor.vector`).

    Measured on the model's states for `input_ids` (ordinary text of the kind it will see):
    zero on every axis that is an outlier (`factor` × the median axis RMS) at any of the
    layers, and orthogonal to each layer's mean state, so `cos(h, v)` is centred there.
    """
    states = live_states(model, layers, input_ids, attention_mask)
    avoid = sorted({axis for s in states.values() for axis in outlier_axes(s, factor)})
    means = torch.stack([s.mean(0) for s in states.values()])  # [L, D]
    width = next(iter(states.values())).shape[-1]
    return random_direction(width, seed, avoid=avoid, orthogonal_to=means)


@dataclass(frozen=True)
class PlaceStats:
    """The RMS of some states per axis and along each concept's place, per layer (tensors on the states' device).

    Attributes:
        layers: layer names; concepts: concept names.
        axis_rms: `[L, D]` each axis's RMS over the (live) states of each layer.
        along_rms: `[C, L]` the RMS of the states along each concept's place (per direction of it).
    """

    layers: list[str]
    concepts: list[str]
    axis_rms: torch.Tensor
    along_rms: torch.Tensor


def place_statistics(states: Mapping[str, torch.Tensor], bases: Mapping[str, torch.Tensor],
                     live: torch.Tensor | None = None) -> PlaceStats:
    """`PlaceStats` of states `[..., D]` per layer, with tensor operations only.

    No value is read back to the host (no `.item()`, no boolean indexing), so a trainer can
    take them inside a training step on a GPU and read them once, when it logs. `live`
    (`[...]`, e.g. `[B, T]`) weighs the states; without it, or where its shape does not fit, all count.
    """
    axis, along = [], []
    for s in states.values():
        h = s.detach().float()
        w = live.to(h.device, torch.float32) if live is not None and live.shape == h.shape[:-1] \
            else torch.ones(h.shape[:-1], device=h.device)
        w = w.unsqueeze(-1)  # [..., 1]
        count = w.sum().clamp_min(1.0)
        axis.append(((w * h.pow(2)).reshape(-1, h.shape[-1]).sum(0) / count).sqrt())  # [D]
        along.append(torch.stack([((w * (h @ b.to(h.device, torch.float32)).pow(2)).sum() / (count * b.shape[1])
                                   ).sqrt() for b in bases.values()]))  # [C]
    return PlaceStats(layers=list(states), concepts=list(bases), axis_rms=torch.stack(axis),
                      along_rms=torch.stack(along, 1))


def outlier_place_messages(stats: PlaceStats, factor: float = OUTLIER_FACTOR) -> list[str]:
    """One message per concept and layer whose place scale (along RMS / median axis RMS) is at least `factor`."""
    axis_rms, along_rms = stats.axis_rms.cpu(), stats.along_rms.cpu()
    messages = []
    for j, layer in enumerate(stats.layers):
        median = axis_rms[j].median().clamp_min(EPS)
        scale_axes = axis_rms[j] / median
        top = [int(a) for a in torch.argsort(scale_axes, descending=True)[:3] if scale_axes[a] >= factor]
        for i, concept in enumerate(stats.concepts):
            scale = float(along_rms[i, j] / median)
            if scale < factor:
                continue
            axes = ", ".join(f"{a} ({float(scale_axes[a]):.0f}×)" for a in top)
            messages.append(
                f"concept {concept!r} at {layer!r}: the states' RMS along its place is {scale:.0f}× the median axis "
                f"RMS (outlier scale: ≥ {factor:g}×); this model's outlier axes there: {axes or 'none'}. Anchoring "
                "there fights the model's massive activations, and suppress/steer along it act on them; anchor a "
                "direction clear of them instead: anchor_hf.places.pretrained_direction(model, layers, input_ids)")
    return messages


def warn_outlier_places(stats: PlaceStats, factor: float = OUTLIER_FACTOR) -> list[str]:
    """Warn (`AnchorScaleWarning`) for every concept whose place has outlier scale at a layer; returns the messages.

    `stats` come from `place_statistics` on the states of the model before anchoring changes it.
    """
    messages = outlier_place_messages(stats, factor)
    for message in messages:
        warnings.warn(message, AnchorScaleWarning, stacklevel=2)
    return messages
