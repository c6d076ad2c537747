"""`erase`: apply a fitted affine concept eraser (LEACE) to the hidden states at chosen layers (reversible).

Post-hoc erasure is the baseline every anchored intervention is measured against
(docs/method.md §6, §10): fit an eraser on a model's own states, then let the model run on
the erased states. An eraser here is anything holding LEACE's factors (Belrose et al. 2023,
arXiv 2306.03819; `concept_erasure.LeaceEraser`, or `probes.fit_leace_eraser`):

    h' = h − ((h − b) Rᵀ) Lᵀ        L `proj_left` [D, k], R `proj_right` [k, D], b `bias` [D] or None

which is the oblique projection `I − L R` about the mean `b`. The core does not import
`concept-erasure`: the factors are read off the object, so a user's own rank-k affine
eraser works too.

    eraser = fit_leace_eraser(states, labels)          # [N, D], [N]
    with erase(model, eraser, layers=[2]):
        model.generate(...)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .positions import Positions
from .sites import InterventionHandle, Layers, install, on_device, resolve
from .targets import AnchorInterventionError, AnchorInterventionTypeError


def _factors(eraser: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(L [D, k], R [k, D], b [D] or None) as float32 CPU tensors, checked for matching shapes."""
    try:
        left, right, bias = eraser.proj_left, eraser.proj_right, eraser.bias
    except AttributeError as err:
        raise AnchorInterventionTypeError(
            f"`eraser` must hold LEACE's factors `proj_left` [D, k], `proj_right` [k, D] and `bias` [D] or None "
            f"(e.g. concept_erasure.LeaceEraser or probes.fit_leace_eraser), got {type(eraser).__name__}") from err
    tensors = [left, right] + ([bias] if bias is not None else [])
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise AnchorInterventionTypeError("`eraser.proj_left`, `.proj_right` and `.bias` must be tensors (bias may "
                                          "be None)")
    left, right = left.detach().float().cpu(), right.detach().float().cpu()
    if left.dim() != 2 or right.dim() != 2 or right.shape != (left.shape[1], left.shape[0]):
        raise AnchorInterventionError(f"`eraser` factors must be proj_left [D, k] and proj_right [k, D], got "
                                      f"{list(left.shape)} and {list(right.shape)}")
    if bias is not None:
        bias = bias.detach().float().cpu().reshape(-1)
        if bias.shape[0] != left.shape[0]:
            raise AnchorInterventionError(f"`eraser.bias` has {bias.shape[0]} entries, but proj_left has "
                                          f"{left.shape[0]} rows")
    if not all(torch.isfinite(t).all() for t in [left, right] + ([bias] if bias is not None else [])):
        raise AnchorInterventionError("`eraser` has non-finite entries")
    return left, right, bias


def erase(model: nn.Module, eraser: Any, *, layers: Layers, positions: Positions = "all") -> InterventionHandle:
    """Apply `h' = h − ((h − b) Rᵀ) Lᵀ` to the outputs of `layers` (reversible; removed on exit).

    Every state is edited (LEACE is affine: it moves states on both sides of the concept, and
    moves the class means together rather than zeroing a direction). One eraser per call:
    LEACE is fitted per layer, so nest one `erase` per layer for layer-wise erasers.

    Args:
        model: any `nn.Module` (PEFT/DDP/compile wrappers are seen through).
        eraser: an object with `proj_left` `[D, k]`, `proj_right` `[k, D]` and `bias` `[D]` or None.
        layers: block indices or module-name patterns (required: an eraser knows no config).
        positions: "all", an int k or "generated", as for `redirect`.

    Returns:
        An `InterventionHandle`; use it in `with`, or call `.remove()`.
    """
    left, right, bias = _factors(eraser)
    if layers is None:
        raise AnchorInterventionError("`layers` is required: say where the eraser was fitted (block indices or "
                                      "module-name patterns)")
    target, sites = resolve(model, None, None, left[:, 0] if left.shape[1] == 1 else left, layers)
    left_on, right_on = on_device(left), on_device(right)
    bias_on = on_device(bias) if bias is not None else None

    def edit(h: torch.Tensor) -> torch.Tensor:
        x = h.float()
        delta = x - bias_on(h.device) if bias_on is not None else x
        return (x - (delta @ right_on(h.device).T) @ left_on(h.device).T).to(h.dtype)

    return install("erase", target, model, sites, edit, positions)
