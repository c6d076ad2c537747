"""The state edits behind every reversible intervention, as pure tensor functions (docs/method.md §5).

torch only, no model: each function maps hidden states `h [..., D]` to edited states of the
same shape, in float32 (callers cast back to the model's dtype). `basis` is an orthonormal
`[D, k]` matrix `U` of the concept's place: k = 1 is a direction `v_hat`, k > 1 a subspace.

    project_out           h' = h − g·U Uᵀh            suppression (g = 1: full projection)
    falloff               g(α) = b·((α − a)/(1 − a))^p  the bounded lobe, 0 below α = a
    rotate_to_alignment   ĥ → m·ŝ + √(1 − m²)·û, ‖h‖ kept   repulsion
    add_direction         h' = h + c·‖h‖·v̂              additive steering
    redirect_states       α·v̂ → (1 − s)α·v̂ + sα·d̂, ‖h‖ kept  redirect (d̂ = −v̂: the reflection at s = 1)
"""

from __future__ import annotations

import torch

from ..geometry import EPS


def project_out(h: torch.Tensor, basis: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
    """`h − g·U Uᵀh`: remove (a share `g` of) the component of `h` in the span of `basis`.

    With `g = 1` this is the orthogonal projection onto the complement, so applying it
    twice equals applying it once, and states orthogonal to the span are returned as is.

    Args:
        h: states `[..., D]`, any float dtype.
        basis: orthonormal `[D, k]`.
        gain: share removed per state `[...]` (broadcast), or None for 1 (full projection).

    Returns:
        float32 `[..., D]`.
    """
    h = h.float()
    basis = basis.to(device=h.device, dtype=torch.float32)
    inside = (h @ basis) @ basis.T  # [..., D]: U Uᵀh, the part in the concept's place
    if gain is None:
        return h - inside
    return h - gain.unsqueeze(-1) * inside


def falloff(alpha: torch.Tensor, a: float, b: float, p: float) -> torch.Tensor:
    """The bounded suppression lobe `g(α) = b·((α − a)/(1 − a))^p` for `α ≥ a`, else 0.

    It suppresses states strongly aligned with the concept and leaves weakly aligned ones
    almost alone (docs/method.md §5), instead of the all-or-nothing full projection. For
    `α ≤ 1` it never exceeds `b ≤ 1`, so it never pushes a state past the orthogonal plane.

    Args:
        alpha: alignments `[...]` in [-1, 1].
        a: onset in [0, 1); b: height in (0, 1]; p: sharpness > 0.

    Returns:
        float32 `[...]`, same shape as `alpha`.
    """
    alpha = alpha.float()
    x = ((alpha - a) / (1.0 - a)).clamp(0.0, 1.0)
    return torch.where(alpha >= a, b * x.pow(p), torch.zeros_like(x))


def orthogonal_fallback(basis: torch.Tensor) -> torch.Tensor:
    """A unit vector `[D]` orthogonal to the span of `basis`, used where a state has no part outside it.

    Takes the axis least covered by the span and removes its in-span part; needs k < D.
    """
    basis = basis.float()
    axis = int(basis.pow(2).sum(-1).argmin())  # the row of U with the least mass
    e = torch.zeros(basis.shape[0], device=basis.device)
    e[axis] = 1.0
    w = e - basis @ (basis.T @ e)
    return w / w.norm().clamp_min(EPS)


def rotate_to_alignment(h: torch.Tensor, basis: torch.Tensor, new_alignment: torch.Tensor,
                        fallback: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate each state so its alignment with the concept becomes `m`, keeping its norm.

    Writing `ĥ = α·ŝ + √(1 − α²)·û`, with `ŝ` the unit in-span part (`v̂` itself for k = 1,
    so α is signed there) and `û` the unit part outside, the result is
    `‖h‖·(m·ŝ + √(1 − m²)·û)`: the state turns in the plane of `ŝ` and `û` only
    (docs/method.md §5, repulsion). A state lying wholly in the span has no `û`; it turns toward
    `fallback` (default `orthogonal_fallback(basis)`).

    Args:
        h: states `[..., D]`.
        basis: orthonormal `[D, k]`.
        new_alignment: `m` per state `[...]`, in [-1, 1] (k = 1) or [0, 1] (k > 1).
        fallback: a unit `[D]` orthogonal to the span, or None.

    Returns:
        float32 `[..., D]` with the same norms as `h`.
    """
    h = h.float()
    basis = basis.to(device=h.device, dtype=torch.float32)
    norm = torch.linalg.vector_norm(h, dim=-1, keepdim=True)  # [..., 1]
    coords = h @ basis  # [..., k]
    if basis.shape[1] == 1:
        s_hat = basis[:, 0].expand_as(h)  # signed alignment along v̂
    else:
        inside = coords @ basis.T
        s_hat = inside / torch.linalg.vector_norm(inside, dim=-1, keepdim=True).clamp_min(EPS)
    outside = h - coords @ basis.T
    out_norm = torch.linalg.vector_norm(outside, dim=-1, keepdim=True)
    if fallback is None:
        fallback = orthogonal_fallback(basis)
    fallback = fallback.to(device=h.device, dtype=torch.float32)
    # relative threshold: below it the direction of the outside part is rounding noise
    has_outside = out_norm > 1e-6 * norm.clamp_min(EPS)
    u_hat = torch.where(has_outside, outside / out_norm.clamp_min(EPS), fallback.expand_as(h))
    m = new_alignment.float().clamp(-1.0, 1.0).unsqueeze(-1)
    return norm * (m * s_hat + (1.0 - m * m).clamp_min(0.0).sqrt() * u_hat)


def add_direction(h: torch.Tensor, v_hat: torch.Tensor, dose: float) -> torch.Tensor:
    """`h + c·‖h‖·v̂`: additive steering scaled by each state's own norm (docs/method.md §5).

    Scaling by `‖h‖` makes a dose mean the same at every layer and position, whatever the
    norm of the residual stream there; a negative dose steers away from the concept.

    Args:
        h: states `[..., D]`.
        v_hat: unit direction `[D]`.
        dose: c, any finite number.

    Returns:
        float32 `[..., D]`.
    """
    h = h.float()
    v_hat = v_hat.to(device=h.device, dtype=torch.float32)
    return h + dose * torch.linalg.vector_norm(h, dim=-1, keepdim=True) * v_hat


def redirect_states(h: torch.Tensor, v_hat: torch.Tensor, d_hat: torch.Tensor, strength: torch.Tensor,
                    fallback: torch.Tensor | None = None) -> torch.Tensor:
    """Move a share `s` of each state's concept component to the destination, keeping its norm.

    With `α = h·v̂`, the state's coordinates in the plane `P` of `v̂` and `d̂` (a line when
    `d̂ = −v̂`) move by `s·α·(d̂ − v̂)`: the concept keeps `(1 − s)·α`, the destination gains
    `s·α`. The part outside `P`, `o`, keeps its direction and is rescaled so that `‖h'‖ = ‖h‖`:

        p' = Uᵀh + s·α·Uᵀ(d̂ − v̂),    h' = U p' + o·√(‖h‖² − ‖p'‖²)/‖o‖     (U: basis of P)

    At `s = 1` a state with `α` on the concept and nothing on the destination ends with 0 on
    the concept and `α` on the destination (docs/method.md §10); for `d̂ = −v̂` that is the
    reflection `h − 2(h·v̂)v̂`. `s` in [0, 1] interpolates, norm kept throughout. Where
    `‖p'‖ > ‖h‖` (a state already on the destination gains more than its norm allows) the
    in-plane part is shortened to `‖h‖` and `o` goes to 0; a state with no `o` that must
    grow one turns toward `fallback` (default `orthogonal_fallback(U)`).

    Args:
        h: states `[..., D]`.
        v_hat: the concept's unit direction `[D]`.
        d_hat: the destination's unit direction `[D]`, orthogonal to `v_hat` or equal to `-v_hat`.
        strength: `s` per state `[...]` (broadcast); 0 leaves a state as it is (up to rounding).
        fallback: a unit `[D]` orthogonal to both, or None.

    Returns:
        float32 `[..., D]` with the same norms as `h` (to rounding), differentiable with finite
        gradients everywhere, so the edit can sit inside a training step.
    """
    h = h.float()
    v_hat = v_hat.to(device=h.device, dtype=torch.float32)
    d_hat = d_hat.to(device=h.device, dtype=torch.float32)
    opposite = bool(torch.allclose(d_hat, -v_hat))
    basis = v_hat.unsqueeze(1) if opposite else torch.stack([v_hat, d_hat], 1)  # [D, 1] or [D, 2]
    norm = torch.linalg.vector_norm(h, dim=-1, keepdim=True)  # [..., 1]
    plane = h @ basis  # [..., k]
    alpha = (h @ v_hat).unsqueeze(-1)  # [..., 1]
    shift = basis.T @ (d_hat - v_hat)  # [k]: (d̂ − v̂) in plane coordinates
    moved = plane + strength.float().unsqueeze(-1) * alpha * shift  # [..., k]
    moved_norm = torch.linalg.vector_norm(moved, dim=-1, keepdim=True)
    moved = moved * torch.where(moved_norm > norm, norm / moved_norm.clamp_min(EPS), torch.ones_like(norm))
    outside = h - plane @ basis.T
    out_norm = torch.linalg.vector_norm(outside, dim=-1, keepdim=True)
    if fallback is None:
        fallback = orthogonal_fallback(basis)
    fallback = fallback.to(device=h.device, dtype=torch.float32)
    has_outside = out_norm > 1e-6 * norm.clamp_min(EPS)  # relative: below it the direction is rounding noise
    u_hat = torch.where(has_outside, outside / out_norm.clamp_min(EPS), fallback.expand_as(h))
    # floored above 0 so the gradient stays finite where the in-plane part takes the whole norm (sqrt'(0) = ∞)
    room = (norm.pow(2) - moved.pow(2).sum(-1, keepdim=True)).clamp_min(EPS * EPS).sqrt()
    return moved @ basis.T + room * u_hat
