"""`redirect`: move a concept's states to a destination instead of removing them (docs/method.md §10).

Suppression subtracts the concept, and a wide residual stream falls back on whatever else
still carries it (the name tokens themselves). A definite signal competes with that
fallback; an absent one does not. So `redirect` moves each state's concept component into
the place of a destination the model was trained to read as something definite (a neutral
colour, a neutral emotion, another concept), or onto the concept's own opposite pole:

    with redirect(model, cfg, "red"):               # to the config's destination
        ...
    with redirect(model, cfg, "red", to="opposite", strength=0.5, positions="generated"):
        ...

Invariants (tests/test_redirect.py): a state with no positive alignment to the concept is
returned bit for bit; at strength 1 a state with alignment α to the concept (and none to
the destination) ends with 0 on the concept and α on the destination, which for the
opposite pole is the reflection `h − 2(h·v̂)v̂`; the norm is kept at every strength in [0, 1].
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import AnchorConfig
from .positions import Positions, check_positions
from .sites import InterventionHandle, Layers, check_falloff, install, on_device, resolve
from .targets import AnchorInterventionError, AnchorInterventionTypeError, check_number, resolve_destination
from .transforms import falloff as falloff_gain, orthogonal_fallback, redirect_states


def redirect(model: nn.Module, cfg: AnchorConfig | None = None, concept: str | None = None, to: Any | None = None,
             strength: float = 1.0, *, positions: Positions = "all", layers: Layers = None,
             falloff: tuple[float, float, float] | None = None, only_positive: bool = True,
             direction: Any | None = None) -> InterventionHandle:
    """Move the concept's component of each state into the destination's place, keeping its norm (reversible).

    With `α = h·v̂` and `s` the strength (times the falloff lobe `g(α/‖h‖)` when given), the
    state's coordinates on `v̂` and the destination `d̂` become `(1 − s)·α` and `β + s·α`, and
    the rest of the state is rescaled to keep `‖h‖` (`transforms.redirect_states`). For
    `d̂ = −v̂` that is `α → (1 − 2s)·α`: the reflection `h − 2(h·v̂)v̂` at `s = 1`. States with
    `α ≤ 0` are returned bit for bit unless `only_positive=False` (then both signs move, as
    the weight version `redirect_weights` does). One concept per call; nest two `with`
    blocks for two (edits apply in the order created). Subspace concepts are refused: a
    destination is one direction, so pass `direction=` a vector inside the subspace.

    Args:
        model: any `nn.Module` (PEFT/DDP/compile wrappers are seen through).
        cfg, concept: the `AnchorConfig` and the concept's name, or `direction=` a vector `[D]` (with `layers=`).
        to: None for the config's `destination` of the concept; `"opposite"` for `-v̂`; another
            one-direction concept's name; or a vector `[D]` orthogonal to `v̂` (within 1e-4, then
            made exact) or equal to `-v̂`.
        strength: `s` in [0, 1]; 0 changes nothing, 1 moves the whole component.
        positions: "all" (default), an int k (positions k, k+1, ... only) or "generated" (only
            tokens produced under `generate()` with a KV cache); see `interventions.positions`.
        layers: block indices or module-name patterns; default the config's layers.
        falloff: None, or `(a, b, p)`: the strength is scaled by `b·((α̂ − a)/(1 − a))^p` for
            `α̂ = ĥ·v̂ ≥ a` (and 0 below), so weakly aligned states move less (graded redirect).
        only_positive: move only states with `α > 0` (default).
        direction: an explicit concept direction instead of `cfg` + `concept`.

    Returns:
        An `InterventionHandle`; use it in `with`, or call `.remove()`.
    """
    if isinstance(concept, (list, tuple, set)):
        raise AnchorInterventionError(
            f"redirect moves one concept per call, got {concept!r}; nest `with redirect(...)` blocks for several")
    s = check_number("strength", strength, low=0.0, high=1.0)
    lobe = check_falloff(falloff)
    if not isinstance(only_positive, bool):
        raise AnchorInterventionTypeError(f"`only_positive` must be a bool, got {only_positive!r}")
    check_positions(positions)
    target, sites = resolve(model, cfg, concept, direction, layers)
    destination = resolve_destination(cfg, target, to)
    v_on, d_on = on_device(target.basis[:, 0]), on_device(destination.vector)
    plane = target.basis if destination.is_opposite else torch.stack([target.basis[:, 0], destination.vector], 1)
    fallback_on = on_device(orthogonal_fallback(plane))

    def edit(h: torch.Tensor) -> torch.Tensor:
        v_hat = v_on(h.device)
        cos = (h.float() @ v_hat) / torch.linalg.vector_norm(h.float(), dim=-1).clamp_min(1e-12)  # [...]
        gain = torch.full_like(cos, s) if lobe is None else s * falloff_gain(cos.abs(), *lobe)
        moved = (cos > 0) if only_positive else (cos != 0)
        gain = torch.where(moved, gain, torch.zeros_like(gain))
        out = redirect_states(h, v_hat, d_on(h.device), gain, fallback_on(h.device)).to(h.dtype)
        return torch.where((gain > 0).unsqueeze(-1), out, h)

    return install("redirect", target, model, sites, edit, positions)
