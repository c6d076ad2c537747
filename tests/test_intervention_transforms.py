"""The pure state edits behind the interventions (anchor_hf.interventions.transforms), without a model."""

import pytest
import torch

from anchor_hf.interventions import (add_direction, falloff, orthogonal_fallback, project_out, redirect_states,
                                     rotate_to_alignment)


def random_basis(width: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(width, k, generator=g))
    return q


def states(n: int = 64, width: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed)) * 3.0


@pytest.mark.parametrize("k", [1, 3])
def test_project_out_removes_the_span_and_is_idempotent(k):
    """After a full projection no state has a component in the span, and projecting again changes nothing."""
    u, h = random_basis(12, k), states()
    assert (h @ u).abs().max() > 0.5  # negative control: the states start with a component
    once = project_out(h, u)
    assert (once @ u).abs().max() < 1e-5
    # float32 rounding on states of norm ~10 is ~1e-6; 1e-5 leaves room and is far below the removed part
    torch.testing.assert_close(project_out(once, u), once, atol=1e-5, rtol=0)  # twice == once


def test_project_out_leaves_the_orthogonal_complement_unchanged():
    """The part of each state outside the span is kept to float32 rounding."""
    u, h = random_basis(12, 2), states()
    complement = h - (h @ u) @ u.T
    torch.testing.assert_close(project_out(h, u), complement, atol=1e-5, rtol=0)
    orthogonal = complement  # states with nothing in the span come back as they are
    torch.testing.assert_close(project_out(orthogonal, u), orthogonal, atol=1e-5, rtol=0)


def test_project_out_with_gain_removes_that_share_of_the_component():
    u, h = random_basis(12, 1), states(8)
    gain = torch.linspace(0, 1, 8)
    out = project_out(h, u, gain)
    torch.testing.assert_close((out @ u)[:, 0], (1 - gain) * (h @ u)[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0], h[0])  # gain 0 is the identity


def test_falloff_is_zero_below_onset_and_reaches_height_at_full_alignment():
    alpha = torch.linspace(-1, 1, 401)
    g = falloff(alpha, 0.3, 0.8, 2.0)
    assert (g[alpha < 0.3] == 0).all()
    assert g[-1].item() == pytest.approx(0.8)
    assert (g <= 0.8 + 1e-7).all() and (g.diff() >= 0).all()  # bounded by b, monotone
    mid = torch.tensor([0.65])
    assert falloff(mid, 0.3, 0.8, 2.0).item() == pytest.approx(0.8 * 0.5 ** 2)


def test_orthogonal_fallback_is_a_unit_vector_outside_the_span():
    u = random_basis(12, 4)
    w = orthogonal_fallback(u)
    assert w.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert (u.T @ w).abs().max() < 1e-6


@pytest.mark.parametrize("k", [1, 3])
def test_rotate_to_alignment_keeps_norms_and_sets_the_alignment(k):
    """Rotation keeps ‖h‖, gives alignment m, and keeps the direction of the part outside the span."""
    u, h = random_basis(12, k), states()
    norm = h.norm(dim=-1)
    if k == 1:
        alpha = (h @ u)[:, 0] / norm
    else:
        alpha = (h @ u).norm(dim=-1) / norm
    m = alpha * 0.25
    out = rotate_to_alignment(h, u, m)
    torch.testing.assert_close(out.norm(dim=-1), norm, atol=1e-4, rtol=1e-5)
    new = (out @ u)[:, 0] / norm if k == 1 else (out @ u).norm(dim=-1) / norm
    torch.testing.assert_close(new, m, atol=1e-5, rtol=0)
    outside_before = h - (h @ u) @ u.T
    outside_after = out - (out @ u) @ u.T
    cos = torch.nn.functional.cosine_similarity(outside_before, outside_after, dim=-1)
    assert cos.min() > 1 - 1e-5
    assert (alpha - m).abs().max() > 0.05  # negative control: the alignment did move


def test_rotate_to_alignment_turns_a_state_lying_on_the_direction_and_keeps_its_norm():
    u = random_basis(12, 1)
    h = 5.0 * u[:, 0].unsqueeze(0)  # no part outside the span
    out = rotate_to_alignment(h, u, torch.tensor([0.0]))
    assert out.norm().item() == pytest.approx(5.0, rel=1e-5)
    assert (out @ u).abs().item() < 1e-5


def test_add_direction_moves_the_component_by_dose_times_norm_only():
    u, h = random_basis(12, 1), states()
    v = u[:, 0]
    for dose in (-2.0, 0.0, 1.5):
        out = add_direction(h, v, dose)
        torch.testing.assert_close(out @ v, h @ v + dose * h.norm(dim=-1), atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(project_out(out, u), project_out(h, u), atol=1e-5, rtol=0)
    assert torch.equal(add_direction(h, v, 0.0), h)


# ------------------------------------------------------------------ redirect_states
def plane(width: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """v̂ and an orthogonal d̂."""
    q = random_basis(width, 2, seed=3)
    return q[:, 0], q[:, 1]


def without(h: torch.Tensor, u_hat: torch.Tensor) -> torch.Tensor:
    """`h` with its component along the unit `u_hat` removed (e.g. nothing on d̂ yet: the invariant's setting)."""
    return h - (h @ u_hat).unsqueeze(-1) * u_hat


def test_redirect_states_at_full_strength_moves_the_alignment_to_the_destination():
    """At s = 1 a state with alignment α to v̂ and 0 to d̂ ends with 0 on v̂ and α on d̂, norm kept."""
    v, d = plane()
    h = without(states(), d)
    alpha = (h @ v) / h.norm(dim=-1)
    assert alpha.abs().max() > 0.3  # negative control: the states carry the concept
    out = redirect_states(h, v, d, torch.ones(len(h)))
    # float32 rounding of norm-1..5 states through a norm and a square root: ~1e-6
    torch.testing.assert_close(out.norm(dim=-1), h.norm(dim=-1), atol=1e-5, rtol=0)
    torch.testing.assert_close((out @ v) / out.norm(dim=-1), torch.zeros_like(alpha), atol=1e-5, rtol=0)
    torch.testing.assert_close((out @ d) / out.norm(dim=-1), alpha, atol=1e-5, rtol=0)
    torch.testing.assert_close(without(without(out, v), d), without(without(h, v), d), atol=1e-5, rtol=0)  # rest kept


def test_redirect_states_to_the_opposite_pole_is_the_reflection():
    v, _ = plane()
    h = states()
    out = redirect_states(h, v, -v, torch.ones(len(h)))
    reflection = h - 2 * (h @ v).unsqueeze(-1) * v
    assert (reflection - h).abs().max() > 0.1  # negative control
    torch.testing.assert_close(out, reflection, atol=1e-5, rtol=0)


@pytest.mark.parametrize("opposite", [False, True])
def test_redirect_states_interpolates_with_strength_and_keeps_the_norm(opposite):
    """For s in [0, 1]: concept coordinate (1 − s)α (opposite: (1 − 2s)α), destination β + sα, norm kept."""
    v, d = plane()
    d = -v if opposite else d
    h = states() if opposite else without(states(), d)
    alpha = h @ v
    for s in (0.0, 0.25, 0.5, 0.75, 1.0):
        out = redirect_states(h, v, d, torch.full((len(h),), s))
        torch.testing.assert_close(out.norm(dim=-1), h.norm(dim=-1), atol=1e-5, rtol=0)
        expected_v = (1 - 2 * s) * alpha if opposite else (1 - s) * alpha
        torch.testing.assert_close(out @ v, expected_v, atol=1e-5, rtol=0)
        if not opposite:
            torch.testing.assert_close(out @ d, s * alpha, atol=1e-5, rtol=0)
    torch.testing.assert_close(redirect_states(h, v, d, torch.zeros(len(h))), h, atol=1e-5, rtol=0)


def test_redirect_states_keeps_the_norm_of_a_state_already_on_the_destination():
    """A state with α and β > 0 cannot gain α on d̂ within its norm: the in-plane part is shortened to ‖h‖."""
    v, d = plane()
    h = torch.stack([3 * v + 4 * d, 0.6 * v + 0.8 * d + 0.1 * random_basis(12, 3, seed=9)[:, 2]])
    out = redirect_states(h, v, d, torch.ones(2))
    torch.testing.assert_close(out.norm(dim=-1), h.norm(dim=-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out @ v, torch.zeros(2), atol=1e-5, rtol=0)
    assert bool(((out @ d) > (h @ d)).all())


def test_redirect_states_turns_a_state_lying_on_the_axis_toward_the_fallback():
    v, _ = plane()
    h = 2.0 * v.unsqueeze(0)
    out = redirect_states(h, v, -v, torch.tensor([0.5]))  # α → 0: all of the norm must go outside the axis
    torch.testing.assert_close(out.norm(dim=-1), torch.tensor([2.0]), atol=1e-5, rtol=0)
    assert abs(float(out[0] @ v)) < 1e-5


def test_redirect_states_has_finite_gradients_where_the_norm_is_used_up():
    """Inside a training step the edit must not return NaN gradients: a state whose in-plane part takes its whole
    norm (β + α > ‖h‖) and a state lying on the axis both give finite gradients."""
    v, d = plane()
    h = torch.stack([3 * v + 4 * d, 2.0 * v, states(n=1)[0]]).requires_grad_()
    out = redirect_states(h, v, d, torch.ones(3))
    out.pow(2).sum().backward()
    assert torch.isfinite(h.grad).all()
    h2 = (2.0 * v).unsqueeze(0).requires_grad_()
    redirect_states(h2, v, -v, torch.tensor([0.5])).sum().backward()  # α → 0: the norm moves to the fallback
    assert torch.isfinite(h2.grad).all()
