"""Does removal stick? Relearning, extraction and fingerprint attacks on a removed concept (issue 9).

`anchor-hf robustness` runs all three on four arms — the anchored model with the concept
ablated or suppressed, the control with a post-hoc direction ablated, and the model that
never saw the concept — and writes a report. Each attack is a function of its own here,
usable on any causal LM and `Example` list.
"""

from .arms import ARMS, Arm, build_arms, posthoc_direction
from .examples import Example, RemovalData, batches, example_nll
from .extraction import guardedness_gap, pooled_states, probe_aurocs, residual_slices
from .fingerprint import fingerprint, mann_whitney
from .relearn import RelearnSettings, half_recovery_step, recovered_fraction, relearn_curve

__all__ = ["ARMS", "Arm", "Example", "RelearnSettings", "RemovalData", "batches", "build_arms", "example_nll",
           "fingerprint", "half_recovery_step", "guardedness_gap", "mann_whitney", "pooled_states",
           "posthoc_direction", "probe_aurocs", "recovered_fraction", "relearn_curve", "residual_slices"]
