"""anchor_hf: Sparse Concept Anchoring for Hugging Face transformers.

Train concepts into directions chosen in advance (`AnchorTrainer`, `AnchorDataCollator`,
`AnchorConfig`), then detect, suppress, steer, redirect and ablate them without searching.
Trainer and intervention classes import lazily, so the math (`anchor_hf.geometry`,
`anchor_hf.regularizer`, `anchor_hf.config`) stays importable without transformers.
"""

from importlib import import_module
from typing import Any

from .config import AnchorConfig, ConceptAnchor, Schedule
from .errors import (AnchorCheckpointError, AnchorConfigError, AnchorDataError, AnchorError, AnchorLayerError,
                     AnchorTrainingError)

__version__ = "0.1.0"

_LAZY = {
    "AnchorTrainer": "trainer",
    "AnchorTrainerMixin": "trainer",
    "AnchorDataCollator": "collator",
    "HiddenStateCapture": "capture",
    "resolve_layers": "layers",
    "detect": "interventions",
    "ConceptMonitor": "interventions",
    "suppress": "interventions",
    "steer": "interventions",
    "repel": "interventions",
    "ablate": "interventions",
    "ablate_axes": "interventions",
    "ablated": "interventions",
    "redirect": "interventions",
    "redirect_weights": "interventions",
    "InterventionHandle": "interventions",
    "push_anchored": "hub",
}

__all__ = ["AnchorConfig", "ConceptAnchor", "Schedule", "AnchorError", "AnchorConfigError", "AnchorLayerError",
           "AnchorDataError", "AnchorCheckpointError", "AnchorTrainingError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'anchor_hf' has no attribute {name!r}")
