"""Does removal stick? Relearning, extraction and fingerprint attacks on a removed concept.

`anchor-hf robustness` runs all three on five arms — the anchored model with the concept
ablated, redirected to its destination by a weight edit, or suppressed, the control with a
post-hoc direction ablated, and the model that never saw the concept — and writes a report.
Each attack is a function of its own here, usable on any causal LM and `Example` list.
"""

from importlib import import_module
from typing import Any

# name -> module: imported on first use, so registering `anchor-hf robustness` does not import torch.
# (`fingerprint` is imported from its module: a lazy name equal to a submodule's would be the module.)
_LAZY = {**dict.fromkeys(("ARMS", "REMOVALS", "Arm", "build_arms", "posthoc_direction"), "arms"),
         **dict.fromkeys(("Example", "RemovalData", "batches", "example_nll"), "examples"),
         **dict.fromkeys(("guardedness_gap", "pooled_states", "probe_aurocs", "residual_slices"), "extraction"),
         **dict.fromkeys(("RelearnSettings", "half_recovery_step", "recovered_fraction", "relearn_curves",
                          "steps_to_reach"), "relearn"),
         **dict.fromkeys(("auroc_standard_error", "mann_whitney", "median"), "stats")}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
