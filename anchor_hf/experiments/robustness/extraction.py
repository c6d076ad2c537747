"""Extraction: can a linear probe still read the concept from a model after removal, at any layer?

Removal along one direction guarantees nothing about the others: if the concept is also
written elsewhere, a probe fitted on the edited model's states finds it there. So probes
are fitted afresh on each arm's own states, at every residual slice (the token-embedding
output and every block output), and scored by AUROC on held-out texts. Removal that
sticks leaves no layer more readable than in the model that never learned the concept.

Guardedness, the LEACE view (Belrose et al. 2023): a representation is linearly guarded
exactly when its class-conditional means are equal, which is what LEACE's edit enforces.
`guardedness_gap` measures how far each layer is from that: the whitened distance between
the class means, above what shuffled labels give. It is computed here in torch (the
quantity LEACE would erase), so it needs no optional package; LEACE itself (from
`concept-erasure`) is the post-hoc baseline in `probes.posthoc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from anchor_hf.capture import HiddenStateCapture
from anchor_hf.layers import resolve_layers, unwrap_model
from anchor_hf.probes.detection import auroc
from anchor_hf.probes.linear_probe import fit_linear_probe


def residual_slices(model: nn.Module) -> tuple[nn.Module, list[tuple[str, nn.Module]]]:
    """The first block (whose *input* is the embedding output) and (name, module) of every block.

    The embedding slice is read as the first block's input rather than the token-embedding
    module's output: that is the state every family actually feeds the stack (GPT-2 adds
    position embeddings and dropout first), and where an intervention on the embedding
    output (e.g. `transformer.drop`) has already acted.
    """
    base = unwrap_model(model)
    blocks = resolve_layers(base, list(range(int(base.config.num_hidden_layers))))
    return blocks[0][1], blocks


class _BlockInput:
    """Records the hidden-state input of one module (its first positional or `hidden_states` argument)."""

    def __init__(self, module: nn.Module) -> None:
        self.state: torch.Tensor | None = None
        self.handle = module.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.state is None:
            self.state = args[0] if args else kwargs["hidden_states"]


def pooled_states(model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> tuple[list[str], list[torch.Tensor]]:
    """Each example's mean state over its `pool_mask` positions, per residual slice: names, `[N, D]` each.

    Slices: `embedding` (the input of the first block), then every block output. States are
    read after any intervention hooks on the model (ours run first), so a suppressed model is
    probed as it computes.
    """
    first, blocks = residual_slices(model)
    device = next(model.parameters()).device
    pooled: list[list[torch.Tensor]] = [[] for _ in range(len(blocks) + 1)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                entry = _BlockInput(first)
                try:
                    with HiddenStateCapture([m for _, m in blocks]) as capture:
                        model(input_ids=batch["input_ids"].to(device),
                              attention_mask=batch["attention_mask"].to(device))
                finally:
                    entry.handle.remove()
                mask = batch["pool_mask"].unsqueeze(-1).float()
                for i, h in enumerate([entry.state, *capture.states]):
                    h = h.detach().float().cpu()
                    pooled[i].append((h * mask).sum(1) / mask.sum(1).clamp_min(1))
    finally:
        model.train(was_training)
    return ["embedding", *[name for name, _ in blocks]], [torch.cat(chunks) for chunks in pooled]


def _standardize(fit: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-score both sets with the fit set's statistics (L-BFGS converges on comparable scales).

    A feature with almost no spread (e.g. an ablated axis, float noise only) is not blown up
    to unit variance: spreads are floored at 1e-3 of the median spread.
    """
    mean, std = fit.mean(0), fit.std(0)
    std = std.clamp_min(1e-3 * float(std.median()) + 1e-12)
    return (fit - mean) / std, (test - mean) / std


def probe_aurocs(fit: Sequence[torch.Tensor], fit_labels: torch.Tensor, test: Sequence[torch.Tensor],
                 test_labels: torch.Tensor, l2: float = 1e-3) -> list[float]:
    """Held-out AUROC of a logistic probe fitted per layer (features standardized on the fit set)."""
    out = []
    for x_fit, x_test in zip(fit, test):
        x_fit, x_test = _standardize(x_fit, x_test)
        probe = fit_linear_probe(x_fit, fit_labels, l2=l2)
        out.append(auroc(probe.scores(x_test), test_labels.bool()))
    return out


def guardedness_gap(states: Sequence[torch.Tensor], labels: torch.Tensor, permutations: int = 5,
                    seed: int = 0) -> list[float]:
    """Per layer, the Mahalanobis distance between the class means, minus its value under shuffled labels.

    By the LEACE theorem a layer is linearly guarded (no linear classifier beats a constant)
    exactly when its class-conditional means are equal; the whitened mean difference
    `sqrt(Δμᵀ Σ_w⁻¹ Δμ)` (pooled within-class covariance, small ridge) is what LEACE would
    have to erase. A finite sample never gives exactly 0, so the mean over `permutations`
    label shuffles (same sizes) is subtracted: about 0 for a guarded layer, larger the more
    linearly available concept information is left.
    """
    y = labels.reshape(-1).bool()
    g = torch.Generator().manual_seed(seed)
    out = []
    for x in states:
        x = x.double()
        observed = _mahalanobis(x, y)
        null = [_mahalanobis(x, y[torch.randperm(len(y), generator=g)]) for _ in range(permutations)]
        out.append(observed - sum(null) / len(null))
    return out


def _mahalanobis(x: torch.Tensor, y: torch.Tensor) -> float:
    """`sqrt(Δμᵀ Σ_w⁻¹ Δμ)` with the pooled within-class covariance plus a 1e-3·mean-variance ridge."""
    a, b = x[y], x[~y]
    diff = a.mean(0) - b.mean(0)
    centred = torch.cat([a - a.mean(0), b - b.mean(0)])
    cov = centred.T @ centred / max(len(x) - 2, 1)
    cov = cov + 1e-3 * cov.trace() / len(cov) * torch.eye(len(cov), dtype=cov.dtype)
    return float(diff @ torch.linalg.solve(cov, diff)) ** 0.5
