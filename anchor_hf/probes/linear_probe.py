"""A logistic-regression probe per layer, and how its direction compares with the anchor (docs/method.md §6).

The probe is the "search" baseline: given the same states and labels, how well does a
fitted linear readout detect the concept, and does it find the anchored direction? Pure
torch: full-batch L-BFGS on the L2-regularized logistic loss (convex, so deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import AnchorDataError


@dataclass(frozen=True)
class LinearProbe:
    """A fitted logistic-regression readout: `score(x) = x·weight + bias`."""

    weight: torch.Tensor  # [D]
    bias: float

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `[N]` for features `[N, D]`."""
        return x.float() @ self.weight + self.bias

    @property
    def direction(self) -> torch.Tensor:
        """The unit direction the probe reads `[D]`."""
        return self.weight / self.weight.norm().clamp_min(1e-12)


def fit_linear_probe(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-3, max_iter: int = 200) -> LinearProbe:
    """Fit `σ(x·w + b)` to binary labels by minimizing mean log-loss + `l2·‖w‖²`.

    Features are centred before fitting (the bias absorbs the mean), which keeps L-BFGS
    well conditioned when every state shares a large common component.

    Args:
        x: `[N, D]` features (e.g. the mean unit state of each example at one layer).
        y: `[N]` labels; values ≥ 0.5 count as positive.
        l2: ridge penalty; > 0 keeps the solution finite on separable data.
        max_iter: L-BFGS iterations.
    """
    if x.dim() != 2 or y.reshape(-1).numel() != x.shape[0]:
        raise AnchorDataError(f"fit_linear_probe: expected x [N, D] and y [N], got {tuple(x.shape)} and "
                              f"{tuple(y.shape)}")
    target = (y.reshape(-1).float() >= 0.5).float()
    if target.sum() == 0 or target.sum() == target.numel():
        raise AnchorDataError("fit_linear_probe needs both classes in the training examples")
    x = x.detach().float().cpu()
    mean = x.mean(0)
    xc = x - mean
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xc @ w + b, target) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    weight = w.detach()
    return LinearProbe(weight=weight, bias=float(b.detach() - mean @ weight))
