"""Entanglement: how much suppressing or ablating concept A costs group B (docs/method.md §5–6).

For each intervened concept A and each group B (a concept's examples, or any labelled
group), `E[A, B] = ΔL_B / ΔL_A`: the change in B's held-out loss when A is removed,
normalized by the change in A's own loss. The diagonal is 1 by construction; 0 off the
diagonal means removing A leaves B alone, 1 means B suffers as much as A. A row is NaN
when the intervention did not raise A's own loss above its noise floor (nothing to
normalize by: a ratio over noise is noise), and every ratio comes with a bootstrap interval.
The math takes plain loss tables; `measure_entanglement` runs interventions given as
callables, so it needs no model of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import AnchorDataError
from .uncertainty import NOISE_Z, RESAMPLES, bootstrap_intervals, noise_floor


def entanglement_matrix(base: torch.Tensor, under: torch.Tensor, own: Sequence[int],
                        min_own_change: float = 1e-8) -> dict[str, torch.Tensor]:
    """Normalized loss changes.

    Args:
        base: `[G]` loss of each group without intervention.
        under: `[A, G]` loss of each group while concept A is removed.
        own: for each row A, the column index of A's own group.
        min_own_change: rows whose own change is not above this are NaN.

    Returns:
        `{"matrix": [A, G] ΔL_B / ΔL_A, "delta": [A, G] ΔL_B}`.
    """
    base = base.double().reshape(-1)
    under = under.double()
    if under.dim() != 2 or under.shape[1] != base.numel() or len(own) != under.shape[0]:
        raise AnchorDataError(f"entanglement_matrix: base [G], under [A, G] and own [A] do not fit: "
                              f"{tuple(base.shape)}, {tuple(under.shape)}, {len(own)}")
    delta = under - base.unsqueeze(0)
    own_delta = delta[torch.arange(delta.shape[0]), torch.as_tensor(list(own), dtype=torch.long)]  # [A]
    scale = torch.where(own_delta > min_own_change, own_delta, torch.full_like(own_delta, float("nan")))
    return {"matrix": delta / scale.unsqueeze(-1), "delta": delta}


def entanglement_from_examples(base: torch.Tensor, under: torch.Tensor, masks: torch.Tensor, own: Sequence[int],
                               resamples: int = RESAMPLES, seed: int = 0, z: float = NOISE_Z) -> dict[str, Any]:
    """Entanglement from per-example losses, with bootstrap intervals and the noise floor of each row.

    Row A is reported only when A's own mean loss change is above its noise floor (`z`
    standard errors of A's per-example changes, `uncertainty.noise_floor`); otherwise the
    whole row is NaN and listed in `suppressed`: a ratio over a change that noise could give
    says nothing. Intervals resample the examples jointly (so overlapping groups keep their
    covariance) and recompute every ratio.

    Args:
        base: `[N]` loss of each example without intervention.
        under: `[A, N]` loss of each example while concept A is removed.
        masks: `[G, N]` bool, the examples of each group.
        own: for each row A, the index of A's own group.

    Returns:
        base and under per group (`[G]`, `[A, G]`), delta `[A, G]`, matrix `[A, G]` (NaN rows
        suppressed), interval `[A, G, 2]`, own_change and floor `[A]`, suppressed `[A]` bool.
    """
    base, under, masks = base.double(), under.double(), masks.bool()
    if under.dim() != 2 or under.shape[1] != base.numel() or masks.shape[1] != base.numel() or \
            len(own) != under.shape[0]:
        raise AnchorDataError(f"entanglement_from_examples: base [N], under [A, N], masks [G, N] and own [A] do not "
                              f"fit: {tuple(base.shape)}, {tuple(under.shape)}, {tuple(masks.shape)}, {len(own)}")
    masks = masks & torch.isfinite(base) & torch.isfinite(under).all(0)  # an example without a loss counts nowhere
    changes = (under - base).nan_to_num(0.0)  # [A, N]
    rows = torch.arange(under.shape[0])
    floors = torch.tensor([noise_floor(changes[a][masks[own[a]]], z) for a in rows.tolist()], dtype=torch.float64)
    own_index = torch.as_tensor(list(own), dtype=torch.long)

    def per_group(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:  # [..., n] -> [..., G], NaN for an empty group
        return (x.nan_to_num(0.0) @ m.double().T) / m.double().sum(1).masked_fill(~m.any(1), float("nan"))

    def table(index: torch.Tensor) -> torch.Tensor:  # [A, G] ratios on a resample of the examples
        delta = per_group(changes[:, index], masks[:, index])
        return delta / delta[rows, own_index].unsqueeze(-1)

    delta = per_group(changes, masks)
    own_change = delta[rows, own_index]
    suppressed = ~(own_change > torch.maximum(floors.nan_to_num(float("inf")), torch.tensor(1e-8)))
    nan = torch.full_like(delta, float("nan"))
    matrix = torch.where(suppressed.unsqueeze(-1), nan, delta / own_change.unsqueeze(-1))
    low, high = bootstrap_intervals(table, base.numel(), resamples, seed)
    interval = torch.stack([low, high], -1).masked_fill(suppressed.view(-1, 1, 1), float("nan"))  # [A, G, 2]
    return {"base": per_group(base, masks).tolist(), "under": per_group(under, masks).tolist(), "delta": delta.tolist(),
            "matrix": matrix.tolist(), "interval": interval.tolist(), "own_change": own_change.tolist(),
            "floor": floors.tolist(), "suppressed": suppressed.tolist(), "z": z}


def measure_entanglement(interventions: Mapping[str, Callable[[], AbstractContextManager[Any]]],
                         example_losses: Callable[[], torch.Tensor], masks: Mapping[str, torch.Tensor],
                         progress: bool = True, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Run each intervention, measure every example's loss under it, and normalize per row with intervals.

    Args:
        interventions: concept A -> a factory of a context manager that removes A while open
            (suppress hooks, or an ablation that restores the weights on exit).
        example_losses: `() -> [N]` mean held-out token loss of each example.
        masks: group name -> `[N]` bool, the examples of each group; each intervened concept
            must be one of the groups.
        progress: show a tqdm bar.
        resamples, seed: the bootstrap (`entanglement_from_examples`).

    Returns:
        rows, groups and everything `entanglement_from_examples` returns, as lists.
    """
    groups = list(masks)
    missing = [a for a in interventions if a not in groups]
    if missing:
        raise AnchorDataError(f"intervened concepts {missing} have no group of their own among {groups}; "
                              "the normalization needs each concept's own loss")
    with torch.no_grad():
        base = example_losses().double()
        rows = []
        for factory in tqdm(list(interventions.values()), desc="entanglement", disable=not progress):
            with factory():
                rows.append(example_losses().double())
    under = torch.stack(rows) if rows else base.new_zeros((0, base.numel()))
    names = list(interventions)
    result = entanglement_from_examples(base, under, torch.stack([torch.as_tensor(m).bool() for m in masks.values()]),
                                       [groups.index(a) for a in names], resamples, seed)
    return {"rows": names, "groups": groups, **result}
