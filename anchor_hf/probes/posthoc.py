"""Post-hoc concept directions for models trained without anchoring (docs/method.md §6 baselines).

Anchored and post-hoc directions are compared on the same states and labels: the
difference of class means (the simplest found direction), and LEACE (Belrose et al. 2023,
arXiv 2306.03819) from EleutherAI's `concept-erasure` package when it is installed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from ..errors import AnchorDataError


def _binary(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() != 2 or y.reshape(-1).numel() != x.shape[0]:
        raise AnchorDataError(f"expected x [N, D] and y [N], got {tuple(x.shape)} and {tuple(y.shape)}")
    positive = y.reshape(-1).float() >= 0.5
    if not bool(positive.any()) or bool(positive.all()):
        raise AnchorDataError("a post-hoc direction needs both concept and non-concept examples")
    return x.detach().float().cpu(), positive.cpu()


def mean_difference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unit vector along `mean(x | concept) − mean(x | not concept)` `[D]`."""
    x, positive = _binary(x, y)
    d = x[positive].mean(0) - x[~positive].mean(0)
    return d / d.norm().clamp_min(1e-12)


def is_leace_available() -> bool:
    """Whether the optional `concept-erasure` package is installed."""
    return importlib.util.find_spec("concept_erasure") is not None


def leace_direction(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The unit linear functional that LEACE erases for a binary concept `[D]`.

    For one binary concept the LEACE edit is rank 1: `x ← x − l (r·(x − μ))`. The left factor
    `l` is parallel to the cross-covariance (the mean difference), the right factor
    `r ∝ Σ⁻¹ Δμ` is the whitened readout that carries all linearly available information
    about the concept; that readout is returned. Fitted without the trace constraint, so
    the factors are exactly the closed form.
    """
    if not is_leace_available():
        raise ImportError("LEACE needs the optional `concept-erasure` package: pip install concept-erasure")
    from concept_erasure import LeaceFitter

    x, positive = _binary(x, y)
    fitter = LeaceFitter.fit(x.double(), positive.double().unsqueeze(-1), constrain_cov_trace=False)
    r = fitter.eraser.proj_right.reshape(-1).float()  # [D] (rank 1)
    r = r / r.norm().clamp_min(1e-12)
    # Sign it so that concept examples score higher, like the other directions.
    if float((x[positive].mean(0) - x[~positive].mean(0)) @ r) < 0:
        r = -r
    return r


def fit_leace_eraser(x: torch.Tensor, y: torch.Tensor) -> Any:
    """The LEACE eraser of a binary concept fitted on states `x` `[N, D]` with labels `y` `[N]`.

    `concept-erasure`'s defaults (affine, trace-constrained, shrinkage covariance), so the
    erased states keep the unconditional mean and do not grow in spread when they are fed
    back into a model (`interventions.erase` applies it). After the edit no linear
    classifier separates the two classes of the fitting states better than a constant
    (the LEACE theorem: the class-conditional means coincide).
    """
    if not is_leace_available():
        raise ImportError("LEACE needs the optional `concept-erasure` package: pip install concept-erasure")
    from concept_erasure import LeaceFitter

    x, positive = _binary(x, y)
    return LeaceFitter.fit(x.double(), positive.double().unsqueeze(-1)).eraser  # float64: a covariance inverse
