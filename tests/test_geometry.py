"""Loss terms and pooling (docs/method.md §2), on hand-made tensors; no transformers import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from anchor_hf.geometry import (alignment, coordinates, direction_basis, mellowmax_pool, misalignment, repulsion,
                                separation_loss, softmin_weights, unit)


def test_geometry_imports_without_transformers():
    code = ("import sys; import anchor_hf.geometry, anchor_hf.regularizer, anchor_hf.config, anchor_hf.schedules; "
            "assert 'transformers' not in sys.modules, sorted(m for m in sys.modules if 'transformers' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_coordinates_are_cosines_for_an_axis_and_a_vector():
    h = torch.tensor([[3.0, 4.0, 0.0], [0.0, -2.0, 0.0]])
    axis = coordinates(h, direction_basis([0], None, 3), dims=[0])[..., 0]
    assert torch.allclose(axis, torch.tensor([0.6, 0.0]))
    v = direction_basis(None, [0.0, 2.0, 0.0], 3)
    assert torch.allclose(coordinates(h, v)[..., 0], torch.tensor([0.8, -1.0]))


def test_misalignment_and_repulsion_match_the_method_table():
    coords = torch.tensor([[0.6], [-0.5]])  # one axis
    assert torch.allclose(misalignment(coords), torch.tensor([0.4, 1.5]))  # 1 − ĥ·v̂
    assert torch.allclose(repulsion(coords, "square"), torch.tensor([0.36, 0.25]))  # cos²
    assert torch.allclose(repulsion(coords, "hinge"), torch.tensor([0.6, 0.0]))  # max(0, ĥ·v̂)
    sub = torch.tensor([[0.6, 0.8], [0.0, 0.6]])  # two axes of a subspace
    assert torch.allclose(misalignment(sub), torch.tensor([0.0, 0.64]))  # mass outside D
    assert torch.allclose(repulsion(sub), torch.tensor([1.0, 0.36]))  # mass inside D
    assert torch.allclose(alignment(sub), torch.tensor([1.0, 0.6]))


def test_coordinates_of_bf16_states_are_float32_and_exact_for_axes():
    h = torch.randn(2, 5, 8).to(torch.bfloat16)
    coords = coordinates(h, direction_basis([3], None, 8), dims=[3])
    assert coords.dtype == torch.float32
    expected = h[..., 3].float() / h.float().norm(dim=-1)
    assert torch.allclose(coords[..., 0], expected, atol=1e-6)


def test_mellowmax_pool_gradient_is_softmin_weights_summing_to_one():
    x = torch.tensor([[0.2, 0.9, 0.5, 0.3]], requires_grad=True)
    spans = torch.tensor([[True, True, True, False]])
    for tau in (0.05, 0.1, 1.0):
        (grad,) = torch.autograd.grad(mellowmax_pool(x, spans, tau).sum(), x)
        assert torch.allclose(grad.sum(), torch.tensor(1.0), atol=1e-6)
        assert (grad >= 0).all() and grad[0, 3] == 0  # outside the span: no pull
        assert torch.allclose(grad, softmin_weights(x.detach(), spans, tau), atol=1e-6)


def test_mellowmax_pool_limits_are_mean_and_min():
    x = torch.tensor([[0.2, 0.9, 0.5, 7.0]])
    spans = torch.tensor([[True, True, True, False]])
    assert torch.allclose(mellowmax_pool(x, spans, 1e4), torch.tensor([0.5333]), atol=1e-3)  # τ→∞: mean
    assert torch.allclose(mellowmax_pool(x, spans, 1e-3), torch.tensor([0.2]), atol=2e-3)  # τ→0: min
    assert torch.allclose(mellowmax_pool(x, spans, None), torch.tensor([0.5333]), atol=1e-4)


def test_mellowmax_pool_is_stable_at_tiny_tau_and_zero_without_span():
    x = torch.tensor([[50.0, 60.0], [1.0, 2.0]], requires_grad=True)
    spans = torch.tensor([[True, True], [False, False]])
    pooled = mellowmax_pool(x, spans, 1e-4)
    assert torch.isfinite(pooled).all() and pooled[1] == 0
    pooled.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[1] == 0).all()


def test_mellowmax_pool_gradient_is_finite_when_positions_outside_the_span_are_closer():
    """A position outside the span with a smaller misalignment than the span's minimum would
    overflow `exp(-(x - x_min)/τ)` before masking; its gradient must be exactly 0, not NaN."""
    x = torch.tensor([[0.0, 0.95, 1.0]], requires_grad=True)
    spans = torch.tensor([[False, True, True]])
    for tau in (0.01, 1e-4):
        (grad,) = torch.autograd.grad(mellowmax_pool(x, spans, tau).sum(), x)
        assert torch.isfinite(grad).all(), (tau, grad)
        assert grad[0, 0] == 0 and torch.allclose(grad.sum(), torch.tensor(1.0), atol=1e-6)
    assert torch.allclose(mellowmax_pool(x, spans, 1e-4), torch.tensor([0.95]), atol=1e-3)  # the span's minimum


def test_separation_is_negligible_unless_states_nearly_coincide():
    far = unit(torch.eye(4))
    assert separation_loss(far, 100.0) < 1e-20
    near = unit(torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]]))
    assert separation_loss(near, 100.0) > 0.3  # one nearly coinciding pair of three
    assert separation_loss(unit(torch.ones(1, 3)), 100.0) == 0


@pytest.mark.parametrize("dims, vector", [([2], None), ([0, 3], None), (None, [1.0, 1.0, 0.0, 0.0])])
def test_direction_basis_is_orthonormal(dims, vector):
    basis = direction_basis(dims, vector, 4)
    assert torch.allclose(basis.T @ basis, torch.eye(basis.shape[1]))
