"""Probes: measure where a concept sits and what happens when it is moved (docs/method.md §6).

One measurement per module, each pure torch on tensors (testable without a model):
`alignment` (alignment, margin, containment, retention, latch check), `detection`
(AUROC of cos(h, v̂)), `linear_probe`, `posthoc` (difference of means, LEACE direction and
eraser), `steerability` (dose–response), `entanglement` (normalized loss changes),
`selectivity` (contrast ratio with an explicit floor, R² grading), `stats` (medians with a
stated NaN policy), `bootstrap` (percentile intervals). `states` and `scores` read them off a
model; `suite` runs them for `anchor-hf probe`; `plots` and `report` write the results.
"""

from .alignment import (containment, direction_cosine, labelled_alignment, latch_mass, margin, position_profile,
                        retention, token_alignment)
from .bootstrap import bootstrap_interval
from .detection import auroc, detection_auroc, pool_alignment
from .entanglement import entanglement_matrix, measure_entanglement
from .linear_probe import LinearProbe, fit_linear_probe
from .posthoc import fit_leace_eraser, is_leace_available, leace_direction, mean_difference
from .selectivity import r_squared, selectivity_ratio
from .states import LayerStates, collect_states
from .stats import median
from .steerability import dose_response, dose_slopes, monotone_fraction, summarize_dose_response, wrong_way_fraction

__all__ = ["token_alignment", "containment", "labelled_alignment", "margin", "retention", "position_profile",
           "latch_mass", "direction_cosine", "auroc", "pool_alignment", "detection_auroc", "LinearProbe",
           "fit_linear_probe", "mean_difference", "leace_direction", "fit_leace_eraser", "is_leace_available",
           "dose_slopes", "wrong_way_fraction", "monotone_fraction", "summarize_dose_response", "dose_response",
           "entanglement_matrix", "measure_entanglement", "LayerStates", "collect_states", "selectivity_ratio",
           "r_squared", "median", "bootstrap_interval"]
