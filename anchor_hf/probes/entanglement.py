"""Entanglement: how much suppressing or ablating concept A costs group B (METHOD.md §5–6).

For each intervened concept A and each group B (a concept's examples, or any labelled
group), `E[A, B] = ΔL_B / ΔL_A`: the change in B's held-out loss when A is removed,
normalized by the change in A's own loss. The diagonal is 1 by construction; 0 off the
diagonal means removing A leaves B alone, 1 means B suffers as much as A. A row is NaN
when the intervention did not raise A's own loss (nothing to normalize by).
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


def measure_entanglement(interventions: Mapping[str, Callable[[], AbstractContextManager[Any]]],
                         group_losses: Callable[[], torch.Tensor], groups: Sequence[str],
                         progress: bool = True) -> dict[str, Any]:
    """Run each intervention, measure every group's loss under it, and normalize.

    Args:
        interventions: concept A -> a factory of a context manager that removes A while open
            (suppress hooks, or an ablation that restores the weights on exit).
        group_losses: `() -> [G]` mean held-out loss of each group in `groups` order.
        groups: the group names; each intervened concept must be one of them.
        progress: show a tqdm bar.

    Returns:
        rows, groups, base `[G]`, under `[A, G]`, delta and matrix `[A, G]` as lists.
    """
    groups = list(groups)
    missing = [a for a in interventions if a not in groups]
    if missing:
        raise AnchorDataError(f"intervened concepts {missing} have no group of their own among {groups}; "
                              "the normalization needs each concept's own loss")
    with torch.no_grad():
        base = group_losses().double()
        rows = []
        for factory in tqdm(list(interventions.values()), desc="entanglement", disable=not progress):
            with factory():
                rows.append(group_losses().double())
    under = torch.stack(rows) if rows else base.new_zeros((0, len(groups)))
    names = list(interventions)
    result = entanglement_matrix(base, under, [groups.index(a) for a in names])
    return {"rows": names, "groups": groups, "base": base.tolist(), "under": under.tolist(),
            "delta": result["delta"].tolist(), "matrix": result["matrix"].tolist()}
