"""Extraction: can a linear probe still read the concept from a model after removal, at any layer?

Removal along one direction guarantees nothing about the others: if the concept is also
written elsewhere, a probe fitted on the edited model's states finds it there. So probes
are fitted afresh on each arm's own states, at every residual slice (the token-embedding
output and every block output), and scored by AUROC on held-out texts. Removal that
sticks leaves no layer more readable than in the model that never learned the concept.

Guardedness, the LEACE view (Belrose et al. 2023): a representation is linearly guarded
exactly when its class-conditional means are equal, which is what LEACE's edit enforces.
`guardedness_gap` measures how far each layer is from that: the whitened distance between
the class means, above what shuffled labels give.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..capture import HiddenStateCapture
from ..layers import resolve_layers, unwrap_model
from ..probes.detection import auroc
from ..probes.linear_probe import fit_linear_probe


def residual_slices(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of the token-embedding output and of every block output, in depth order."""
    base = unwrap_model(model)
    n_blocks = int(base.config.num_hidden_layers)
    embedding = base.get_input_embeddings()
    return [("embedding", embedding), *resolve_layers(base, list(range(n_blocks)))]


def pooled_states(model: nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> tuple[list[str], list[torch.Tensor]]:
    """Each example's mean state over its `pool_mask` positions, per residual slice: names, `[N, D]` each.

    States are read after any intervention hooks on the model (ours run first), so a
    suppressed model is probed as it computes.
    """
    slices = residual_slices(model)
    device = next(model.parameters()).device
    pooled: list[list[torch.Tensor]] = [[] for _ in slices]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                with HiddenStateCapture([m for _, m in slices]) as capture:
                    model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
                mask = batch["pool_mask"].unsqueeze(-1).float()
                for i, h in enumerate(capture.states):
                    h = h.detach().float().cpu()
                    pooled[i].append((h * mask).sum(1) / mask.sum(1).clamp_min(1))
    finally:
        model.train(was_training)
    return [name for name, _ in slices], [torch.cat(chunks) for chunks in pooled]


def _standardize(fit: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = fit.mean(0), fit.std(0).clamp_min(1e-6)
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
    a, b = x[y], x[~y]
    diff = a.mean(0) - b.mean(0)
    centred = torch.cat([a - a.mean(0), b - b.mean(0)])
    cov = centred.T @ centred / max(len(x) - 2, 1)
    cov = cov + 1e-3 * cov.trace() / len(cov) * torch.eye(len(cov), dtype=cov.dtype)
    return float(diff @ torch.linalg.solve(cov, diff)) ** 0.5
