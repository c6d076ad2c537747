"""Reversible interventions: `suppress` and `repel` as forward hooks (docs/method.md §5); `steer` is in `steering.py`.

Each call returns an `InterventionHandle`, which is also a context manager::

    with suppress(model, cfg, "red"):      # hooks removed on exit, also when the body raises
        model.generate(**inputs)
    handle = repel(model, cfg, "red", target=0.0)  # or keep it and remove it later
    handle.remove()                                # removing twice is harmless

How the hooks attach (one owned hook per module, edits in creation order, nothing left on
error) is `sites.py`; the state edits themselves are the pure functions of `transforms.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..config import AnchorConfig
from ..geometry import alignment, coordinates
from .sites import InterventionHandle, Layers, check_falloff, install, on_device, resolve
from .targets import AnchorInterventionError, AnchorInterventionTypeError, check_number
from .transforms import falloff as falloff_gain, orthogonal_fallback, project_out, rotate_to_alignment


def suppress(model: nn.Module, cfg: AnchorConfig | None = None, concept: str | None = None, *,
             falloff: tuple[float, float, float] | None = None, only_positive: bool = True,
             layers: Layers = None, direction: Any | None = None) -> InterventionHandle:
    """Project the concept out of the hidden states at the anchored layers (reversible).

    `h' = h − g(α)(h·v̂)v̂` with `α = ĥ·v̂` (docs/method.md §5). `g = 1` is the full projection;
    `falloff=(a, b, p)` uses the bounded lobe `b·((α − a)/(1 − a))^p` for `α ≥ a`, which
    leaves weakly aligned states almost untouched. By default only states pointing toward
    the concept (`α > 0`) are edited, so states pointing away keep their meaning; with
    `only_positive=False` both sides are edited (the lobe then uses `|α|`). For a subspace
    concept (k > 1 axes) the components in the subspace are zeroed, `α = ‖P ĥ‖` is the
    in-subspace mass, and `only_positive` does not apply. States left alone are returned
    bit for bit.

    Args:
        model: any `nn.Module` (PEFT/DDP/compile wrappers are seen through).
        cfg: the `AnchorConfig` holding the concept, or None with `direction=`.
        concept: the concept's name in `cfg`.
        falloff: None for full projection, or `(a, b, p)` with a in [0, 1), b in (0, 1], p > 0.
        only_positive: edit only states with `α > 0` (one-direction concepts).
        layers: block indices or module-name patterns; default the config's layers.
        direction: a vector `[D]` or basis `[D, k]` instead of a concept (needs `layers=`).

    Returns:
        An `InterventionHandle`; use it in `with`, or call `.remove()`.
    """
    lobe = check_falloff(falloff)
    if not isinstance(only_positive, bool):
        raise AnchorInterventionTypeError(f"`only_positive` must be a bool, got {only_positive!r}")
    target, sites = resolve(model, cfg, concept, direction, layers)
    basis_on, dims, one_direction = on_device(target.basis), target.dims, target.rank == 1

    def edit(h: torch.Tensor) -> torch.Tensor:
        basis = basis_on(h.device)
        alpha = alignment(coordinates(h, basis, dims))  # [...], signed for one direction
        if lobe is None:
            gain = torch.ones_like(alpha)
        else:
            gain = falloff_gain(alpha.abs() if one_direction and not only_positive else alpha, *lobe)
        if one_direction and only_positive:
            gain = torch.where(alpha > 0, gain, torch.zeros_like(gain))
        out = project_out(h, basis, gain).to(h.dtype)
        return torch.where((gain > 0).unsqueeze(-1), out, h)

    return install("suppress", target, model, sites, edit)


def _alignment_map(target: float | Callable[[torch.Tensor], torch.Tensor], rank: int
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    """`m(α)` from a float target or a callable, checked on a grid of alignments before use."""
    low = -1.0 if rank == 1 else 0.0
    if callable(target):
        grid = torch.linspace(low, 1.0, 201)
        try:
            values = target(grid)
        except Exception as err:
            raise AnchorInterventionError(
                f"`target` failed on a tensor of alignments ({type(err).__name__}: {err}); it must map a "
                "float tensor of alignments to a tensor of new alignments of the same shape") from err
        if not isinstance(values, torch.Tensor) or values.shape != grid.shape:
            raise AnchorInterventionError(
                f"`target` must map a tensor of alignments [N] to a tensor [N], got "
                f"{type(values).__name__} {list(getattr(values, 'shape', []))}")
        if not torch.isfinite(values).all() or values.min() < low or values.max() > 1.0:
            raise AnchorInterventionError(
                f"`target` must return alignments in [{low}, 1] (finite), got values in "
                f"[{values.min().item():.3g}, {values.max().item():.3g}]")
        return lambda alpha: target(alpha).float()
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        t = check_number("target", target, low=low, high=1.0, high_open=True)
        return lambda alpha: torch.full_like(alpha, t)
    raise AnchorInterventionTypeError(
        f"`target` must be a float (the new alignment) or a callable m(alpha) -> new alignment, got {target!r}")


def repel(model: nn.Module, cfg: AnchorConfig | None = None, concept: str | None = None, *,
          target: float | Callable[[torch.Tensor], torch.Tensor],
          layers: Layers = None, direction: Any | None = None) -> InterventionHandle:
    """Rotate each state away from the concept to a lower alignment, keeping its norm (reversible).

    Where the new alignment `m(α)` is below the current `α`, the unit state turns in the
    plane spanned by the concept and its own off-concept part until its alignment is `m(α)`
    (docs/method.md §5, repulsion). Unlike suppression the norm is kept, so later LayerNorms see
    a state of the usual size. States whose `m(α) ≥ α` are returned bit for bit.

    Args:
        target: a float t (states with `α > t` are turned to exactly t; in [-1, 1) for one
            direction, [0, 1) for a subspace), or a callable mapping a float tensor of
            alignments to new alignments of the same shape (checked on a grid before use).
        cfg, concept, layers, direction: as in `suppress`.

    Returns:
        An `InterventionHandle`.
    """
    resolved_target, sites = resolve(model, cfg, concept, direction, layers)
    basis_on, dims = on_device(resolved_target.basis), resolved_target.dims
    m_of = _alignment_map(target, resolved_target.rank)
    fallback_on = on_device(orthogonal_fallback(resolved_target.basis))

    def edit(h: torch.Tensor) -> torch.Tensor:
        basis = basis_on(h.device)
        alpha = alignment(coordinates(h, basis, dims))
        m = m_of(alpha)
        out = rotate_to_alignment(h, basis, m, fallback_on(h.device)).to(h.dtype)
        return torch.where((m < alpha).unsqueeze(-1), out, h)

    return install("repel", resolved_target, model, sites, edit)
