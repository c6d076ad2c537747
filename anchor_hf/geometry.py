"""Loss terms, pooling and directions of Sparse Concept Anchoring (docs/method.md §2).

torch only, no transformers: every function here can be tested on hand-made tensors.
All terms live on the unit sphere (standard HF models are not normalized, so states are
normalized here) and are computed in float32 whatever the model's dtype.

Notation: `h` a hidden state `[..., D]`, `h_hat = h/‖h‖`, `U` an orthonormal basis `[D, k]`
of the anchored place (k = 1: a direction `v_hat`; k > 1: the subspace of axes `D`),
`coords = h_hat @ U` `[..., k]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

EPS = 1e-8


def direction_basis(dims: Sequence[int] | None, vector: Sequence[float] | None, hidden_size: int) -> torch.Tensor:
    """Orthonormal basis `[D, k]` of an anchored place: one-hot columns for axes, or `v/‖v‖`."""
    if dims is not None:
        basis = torch.zeros(hidden_size, len(dims))
        basis[list(dims), range(len(dims))] = 1.0
        return basis
    v = torch.as_tensor(vector, dtype=torch.float32).reshape(hidden_size, 1)
    return v / v.norm()


def concept_place(concept: Any, hidden_size: int) -> tuple[torch.Tensor, list[int] | None]:
    """`(basis [D, k], dims)` of a concept's place, its `pole` applied (docs/method.md §10).

    `dims` is returned only where gathering those axes gives the coordinates (axes at pole
    +1); a place at the opposite pole (`pole = -1`) is `-e_d` or `-v̂`, whose coordinates
    need the signed basis, so `dims` is None there. `concept` is any object with `dims`,
    `vector` and `pole` (a `ConceptAnchor`); geometry does not import the config.
    """
    basis = direction_basis(concept.dims, concept.vector, hidden_size)
    pole = getattr(concept, "pole", 1)
    if pole == -1:
        return -basis, None
    return basis, (list(concept.dims) if concept.dims is not None else None)


def coordinates(h: torch.Tensor, basis: torch.Tensor, dims: Sequence[int] | None = None) -> torch.Tensor:
    """Coordinates of `h_hat` in `basis`: `[..., D] -> [..., k]`, float32.

    Computes `(h @ U) / ‖h‖` rather than normalizing the whole state first, so only a
    norm and k columns are materialized. For axis concepts (`dims` given) the columns are
    gathered instead of multiplied, which also keeps bf16 states exact.
    """
    norm = torch.linalg.vector_norm(h, dim=-1, keepdim=True, dtype=torch.float32).clamp_min(EPS)
    if dims is not None:
        proj = h[..., list(dims)].float()
    else:
        proj = h.float() @ basis.to(device=h.device, dtype=torch.float32)
    return proj / norm


def misalignment(coords: torch.Tensor) -> torch.Tensor:
    """Attractive term per state `[..., k] -> [...]`.

    k = 1: anchor `1 − ĥ·v̂`. k > 1: subspace `Σ_{i∉D} ĥ_i² = 1 − Σ_{i∈D} ĥ_i²` (mass outside).
    Both are 0 exactly when the state lies in the anchored place.
    """
    if coords.shape[-1] == 1:
        return 1.0 - coords[..., 0]
    return 1.0 - coords.pow(2).sum(-1)


def repulsion(coords: torch.Tensor, kind: str = "square") -> torch.Tensor:
    """Repulsive term per state `[..., k] -> [...]`.

    `square`: anti-subspace `Σ_{i∈D} ĥ_i²` (= cos² for one axis); `hinge`: anti-anchor
    `max(0, ĥ·v̂)` (one direction only).
    """
    if kind == "hinge":
        return coords[..., 0].clamp_min(0.0)
    return coords.pow(2).sum(-1)


def alignment(coords: torch.Tensor) -> torch.Tensor:
    """Cosine with the anchored place `[..., k] -> [...]`: `ĥ·v̂` for k = 1, `‖P_D ĥ‖` for k > 1."""
    if coords.shape[-1] == 1:
        return coords[..., 0]
    return coords.pow(2).sum(-1).clamp_min(0).sqrt()


def mellowmax_pool(x: torch.Tensor, spans: torch.Tensor, tau: float | None) -> torch.Tensor:
    """Pool misalignment over each labelled span: `x [B, T]`, `spans [B, T]` bool → `[B]`.

    `pool = −τ·log(mean_{t∈span} exp(−x_t/τ))` (docs/method.md §2). Unlike an equal pull on every
    token of a span, this pulls hardest on the tokens already closest to the anchor, so a
    concept-blind shift of all tokens cannot satisfy it. Its gradient over a span is
    softmin weights that are non-negative and sum to 1, so λ means the same at every τ.
    τ → ∞ gives the span mean, τ → 0 the hard minimum; `tau=None` is the plain mean.
    Written as a masked log-sum-exp, `−τ·(logsumexp_{t∈span}(−x_t/τ) − log|span|)`: positions
    outside the span enter as −∞, never as an `exp` that overflows and is masked afterwards
    (that gives `0·∞ = NaN` in the backward pass at small τ). Rows without a span give 0.
    """
    spans = spans.bool()
    count = spans.sum(-1)  # [B]
    has_span = count > 0
    if tau is None:
        pooled = (x * spans).sum(-1) / count.clamp_min(1)
        return torch.where(has_span, pooled, torch.zeros_like(pooled))
    logits = torch.where(spans, -x / tau, torch.full_like(x, -float("inf")))  # [B, T]
    logits = torch.where(has_span.unsqueeze(-1), logits, torch.zeros_like(logits))  # spanless rows: dropped below
    pooled = -tau * (torch.logsumexp(logits, -1) - torch.log(count.clamp_min(1).to(x.dtype)))
    return torch.where(has_span, pooled, torch.zeros_like(pooled))


def softmin_weights(x: torch.Tensor, spans: torch.Tensor, tau: float) -> torch.Tensor:
    """The gradient of `mellowmax_pool` w.r.t. `x`: softmin weights per span `[B, T]`, rows sum to 1.

    Used by the latch check (how much of the pull lands on syntax tokens, docs/method.md §6).
    """
    spans = spans.bool()
    logits = torch.where(spans, -x / tau, torch.full_like(x, -float("inf")))
    w = torch.softmax(logits, dim=-1)
    return torch.nan_to_num(w, nan=0.0)


def separation_loss(h_hat: torch.Tensor, power: float) -> torch.Tensor:
    """Mean over pairs i≠j of `((1 + ĥ_i·ĥ_j)/2)^p` for unit states `[S, D]` → scalar.

    With p ≈ 100 the term is negligible unless two states nearly coincide, so it stops
    labelled examples from collapsing onto the anchor (the "compression" of docs/method.md §9)
    without pushing apart states that are merely similar. O(S²): callers sample S states.
    """
    s = h_hat.shape[0]
    if s < 2:
        return h_hat.new_zeros(())
    gram = h_hat @ h_hat.T  # [S, S]
    sim = ((1.0 + gram) / 2.0).clamp(0.0, 1.0).pow(power)
    off_diagonal = sim.sum() - sim.diagonal().sum()
    return off_diagonal / (s * (s - 1))


def off_axis(h_hat: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """The part of unit states `[..., D]` orthogonal to the anchored place `basis [D, k]` → `[..., D]`."""
    basis = basis.to(device=h_hat.device, dtype=h_hat.dtype)
    return h_hat - (h_hat @ basis) @ basis.T


def exclusivity_loss(off: torch.Tensor, labelled: torch.Tensor, unlabelled: torch.Tensor,
                     gap: torch.Tensor) -> torch.Tensor:
    """Surrogate of `½‖μ₁ − μ₀‖²` for the class means of the off-axis states, with a fixed gap.

    Equal class means of the off-anchor part is exactly what makes the concept linearly
    unreadable there (the LEACE theorem, arXiv 2306.03819), so the concept's only linear
    home is the anchored place (docs/method.md §9). At sparse label rates a batch's own class
    means are too noisy to steer by, so the gap `μ₁ − μ₀` comes from running means (`gap`,
    detached, `[D]`) and only the batch's contribution is differentiated:
    `gap · (mean_w(off | labelled) − mean(off | unlabelled))`, whose gradient is that of
    `½‖μ₁ − μ₀‖²` with the batch means standing in for the class means.

    Args:
        off: off-axis unit states `[B, T, D]` (`off_axis`).
        labelled: `[B, T]` label weights (0 = not labelled).
        unlabelled: `[B, T]` bool, live positions without a label.
        gap: `[D]` running `μ₁ − μ₀`.

    Returns:
        scalar; 0 when the batch has no labelled or no unlabelled position (decided on the
        device, so the step never waits for the host: 0 sums give 0 means, then 0).
    """
    w1 = labelled.float()
    w0 = unlabelled.float()
    n1, n0 = w1.sum(), w0.sum()
    mu1 = (w1.unsqueeze(-1) * off).sum((0, 1)) / n1.clamp_min(EPS)
    mu0 = (w0.unsqueeze(-1) * off).sum((0, 1)) / n0.clamp_min(EPS)
    both = ((n1 > 0) & (n0 > 0)).to(off.dtype)
    return both * (gap.to(off.dtype) @ (mu1 - mu0))


def unit(h: torch.Tensor) -> torch.Tensor:
    """`h / ‖h‖` in float32 `[..., D]`."""
    h = h.float()
    return h / torch.linalg.vector_norm(h, dim=-1, keepdim=True).clamp_min(EPS)
