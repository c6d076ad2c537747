"""Does removal stick? Relearning, extraction and fingerprint attacks on a removed concept.

`anchor-hf robustness` runs all three on four arms — the anchored model with the concept
ablated or suppressed, the control with a post-hoc direction ablated, and the model that
never saw the concept — and writes a report. Each attack is a function of its own here,
usable on any causal LM and `Example` list.
"""

from .arms import ARMS, Arm, build_arms, posthoc_direction
from .examples import Example, RemovalData, batches, example_nll
from .extraction import guardedness_gap, pooled_states, probe_aurocs, residual_slices
from .fingerprint import fingerprint
from .relearn import RelearnSettings, half_recovery_step, recovered_fraction, relearn_curves, steps_to_reach
from .stats import auroc_standard_error, mann_whitney, median

__all__ = ["ARMS", "Arm", "Example", "RelearnSettings", "RemovalData", "auroc_standard_error", "batches", "build_arms",
           "example_nll", "fingerprint", "guardedness_gap", "half_recovery_step", "mann_whitney", "median",
           "pooled_states", "posthoc_direction", "probe_aurocs", "recovered_fraction", "relearn_curves",
           "residual_slices", "steps_to_reach"]
