"""Where and along what an intervention acts: resolve a concept or a direction, and the layers.

Every entry point (`suppress`, `repel`, `steer`, `redirect`, `ablate`, `redirect_weights`) takes either an
`AnchorConfig` and a concept name, or an explicit `direction=` (a vector `[D]` or a basis `[D, k]`) with
`layers=`. Everything is checked here, before a hook is registered or a weight touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..binding import bind
from ..config import OPPOSITE, AnchorConfig
from ..errors import AnchorError
from ..geometry import concept_place
from ..layers import hidden_size_of, resolve_layers


class AnchorInterventionError(AnchorError, ValueError):
    """An argument of an intervention (direction, dose, falloff, target, dims) is not allowed."""


class AnchorInterventionTypeError(AnchorError, TypeError):
    """An intervention got an object of the wrong type (model, config, module, callable)."""


@dataclass
class Target:
    """A resolved intervention target.

    Attributes:
        basis: orthonormal `[D, k]` float32 basis of the concept's place.
        dims: the axes when the place is axis-aligned (then `basis` is one-hot columns), else None.
        label: the concept's name, or "direction" for an explicit one (used in messages).
    """

    basis: torch.Tensor
    dims: list[int] | None
    label: str

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    @property
    def width(self) -> int:
        return int(self.basis.shape[0])


def check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise AnchorInterventionTypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """`value` as a float if it is a finite real number in range; raises naming `name` otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnchorInterventionError(f"`{name}` must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise AnchorInterventionError(f"`{name}` must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise AnchorInterventionError(f"`{name}` must be {'<' if high_open else '<='} {high}, got {value!r}")
    return float(value)


def orthonormal_basis(direction: Any, name: str = "direction") -> torch.Tensor:
    """`direction` (a vector `[D]` or a basis `[D, k]`) as an orthonormal float32 `[D, k]`.

    A vector is normalized; a matrix is orthonormalized by QR, keeping the span it gives.
    """
    if not isinstance(direction, torch.Tensor):
        try:
            direction = torch.as_tensor(direction, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise AnchorInterventionTypeError(
                f"`{name}` must be a tensor [D] or [D, k] (or a list of numbers), got {type(direction).__name__}"
            ) from err
    if direction.dim() not in (1, 2) or direction.numel() == 0:
        raise AnchorInterventionError(
            f"`{name}` must have shape [D] (a direction) or [D, k] (a subspace basis), got {list(direction.shape)}")
    d = direction.detach().float().cpu()
    if not torch.isfinite(d).all():
        raise AnchorInterventionError(f"`{name}` has non-finite entries")
    if d.dim() == 1:
        d = d.unsqueeze(1)
    width, k = d.shape
    if k >= width:
        raise AnchorInterventionError(
            f"`{name}` spans k = {k} columns in a {width}-dim space; a concept's place needs k < D "
            "(pass a [D] vector or a [D, k] basis with D rows)")
    q, r = torch.linalg.qr(d)
    diag = r.diagonal().abs()
    if diag.min() <= 1e-6 * max(float(diag.max()), 1e-30):
        raise AnchorInterventionError(
            f"`{name}` is zero or its {k} columns are linearly dependent; give independent, non-zero columns")
    return q * torch.sign(r.diagonal())  # QR's sign convention flipped so a vector keeps its sign


def resolve_target(model: nn.Module, cfg: AnchorConfig | None, concept: str | None,
                   direction: Any | None, *, check_width: bool = True) -> Target:
    """The concept's orthonormal basis, from `cfg` + `concept` or from `direction`.

    Raises before any work if both or neither are given, the concept is unknown, or (with
    `check_width`, for sites that carry the residual stream) an explicit direction does not
    fit the model's hidden size. Sites named by pattern may have another width; those are
    checked against each state when the hook runs.
    """
    check_model(model)
    if cfg is not None and direction is not None:
        raise AnchorInterventionError("give either `cfg` with a concept name or `direction=`, not both")
    if cfg is None:
        if direction is None:
            raise AnchorInterventionError(
                "nothing to act on: pass an AnchorConfig and a concept name, e.g. suppress(model, cfg, 'red'), "
                "or `direction=` a tensor [D] / basis [D, k] with `layers=`")
        if concept is not None:
            raise AnchorInterventionError(
                f"`concept` = {concept!r} needs an AnchorConfig; with `direction=` leave `concept` unset")
        basis = orthonormal_basis(direction)
        width = hidden_size_of(model) if check_width else None
        if width is not None and basis.shape[0] != width:
            raise AnchorInterventionError(
                f"`direction` has {basis.shape[0]} entries but the model's hidden size is {width}")
        return Target(basis=basis, dims=None, label="direction")
    if not isinstance(cfg, AnchorConfig):
        raise AnchorInterventionTypeError(f"`cfg` must be an AnchorConfig or None, got {type(cfg).__name__}")
    if not isinstance(concept, str):
        raise AnchorInterventionError(
            f"`concept` must be the name of one of the config's concepts {[c.name for c in cfg.concepts]}, "
            f"got {concept!r}")
    anchor = cfg.concept(concept)  # AnchorConfigError naming the known concepts
    width = bind(cfg, model).hidden_size  # the config must fit this model: width, depth, names
    basis, dims = concept_place(anchor, width)
    return Target(basis=basis, dims=dims, label=concept)


@dataclass
class Destination:
    """Where `redirect` moves a concept: a unit vector `[D]` orthogonal to `v̂`, or `-v̂` (`is_opposite`).

    Attributes:
        vector: unit `[D]` float32.
        label: the destination concept's name, "opposite", or "vector".
        is_opposite: True when `vector` is exactly `-v̂`.
    """

    vector: torch.Tensor
    label: str
    is_opposite: bool


DESTINATION_TOL = 1e-4  # |cos(d, v̂)| a given vector may have and still count as orthogonal (or opposite)


def resolve_destination(cfg: AnchorConfig | None, target: Target, to: Any | None) -> Destination:
    """The destination of `redirect`: `to`, or the config's `destination` for the concept when `to` is None.

    `to` may be "opposite" (`-v̂`), the name of another one-direction concept of `cfg`, or a
    vector `[D]`. A vector within `DESTINATION_TOL` of orthogonal is made exactly orthogonal
    (`d − (d·v̂)v̂`, renormalized), one within it of `-v̂` becomes `-v̂`; anything else raises,
    since at strength 1 redirect must leave no concept component and give the destination all of it.
    """
    if target.rank != 1:
        raise AnchorInterventionError(
            f"redirect needs a one-direction concept, but {target.label!r} spans {target.rank} axes; pass "
            "`direction=` a vector inside the subspace (with `layers=`) and `to=`")
    v_hat = target.basis[:, 0]
    if to is None:
        if cfg is None:
            raise AnchorInterventionError("with `direction=` and no AnchorConfig, pass `to=` ('opposite' or a vector)")
        to = cfg.concept(target.label).destination
        if to is None:
            raise AnchorInterventionError(
                f"concept {target.label!r} has no `destination` in its config; pass `to=` ('opposite', another "
                f"concept of {[c.name for c in cfg.concepts]}, or a vector [D])")
    if isinstance(to, str):
        if to == OPPOSITE:
            return Destination(-v_hat, OPPOSITE, True)
        if cfg is None:
            raise AnchorInterventionError(f"`to` = {to!r} names a concept, which needs an AnchorConfig; with "
                                          "`direction=` pass 'opposite' or a vector")
        if to == target.label:
            raise AnchorInterventionError(f"`to` = {to!r} is the concept itself; name another concept or 'opposite'")
        basis, _ = concept_place(cfg.concept(to), target.width)
        if basis.shape[1] != 1:
            raise AnchorInterventionError(f"`to` = {to!r} spans {basis.shape[1]} axes; a destination must be one "
                                          "direction")
        vector, label = basis[:, 0], to
    else:
        vector, label = orthonormal_basis(to, "to"), "vector"
        if vector.shape != (target.width, 1):
            raise AnchorInterventionError(f"`to` must be a vector [{target.width}] (the concept's width), got "
                                          f"shape {list(torch.as_tensor(to).shape)}")
        vector = vector[:, 0]
    cos = float(vector @ v_hat)
    if cos < -1.0 + DESTINATION_TOL:
        return Destination(-v_hat, label, True)
    if abs(cos) > DESTINATION_TOL:
        raise AnchorInterventionError(
            f"`to` = {label!r} is neither orthogonal to {target.label!r} nor its opposite pole (cos = {cos:.3g}); "
            "orthogonalize it first: d − (d·v̂)v̂")
    vector = vector - cos * v_hat
    return Destination(vector / vector.norm(), label, False)


def resolve_sites(model: nn.Module, cfg: AnchorConfig | None,
                  layers: Sequence[int | str] | int | str | None) -> list[tuple[str, nn.Module]]:
    """(name, module) pairs to hook: `layers` if given, else the config's saved or declared layers."""
    if layers is not None:
        if isinstance(layers, (int, str)) and not isinstance(layers, bool):
            layers = [layers]
        layers = list(layers)
        if not layers:
            raise AnchorInterventionError("`layers` must name at least one layer, got []")
        for i, layer in enumerate(layers):
            if isinstance(layer, bool) or not isinstance(layer, (int, str)) or layer == "":
                raise AnchorInterventionError(
                    f"`layers[{i}]` must be a block index (int) or a module-name pattern (str), got {layer!r}")
        return resolve_layers(model, layers)
    if cfg is None:
        raise AnchorInterventionError("with `direction=` and no AnchorConfig, pass `layers=` (block indices or "
                                      "module-name patterns) to say where to intervene")
    return bind(cfg, model).sites
