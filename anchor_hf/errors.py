"""Errors raised by anchor_hf.

Every user-facing mistake raises a subclass of `AnchorError`; the specific classes also
subclass `ValueError` or `TypeError` so callers that catch the builtins keep working
(PEFT does the same with `NoMatchingPeftModuleError`).
"""


class AnchorError(Exception):
    """Base class of every error anchor_hf raises on bad input."""


class AnchorConfigError(AnchorError, ValueError):
    """An `AnchorConfig`, `ConceptAnchor` or `Schedule` field has a value that is not allowed."""


class AnchorLayerError(AnchorError, ValueError):
    """The anchored layers cannot be resolved on this model."""


class AnchorDataError(AnchorError, ValueError):
    """A batch or example does not carry the concept labels the config asks for."""


class AnchorCheckpointError(AnchorError, ValueError):
    """A saved `anchor_config.json` is corrupt, too new, or does not fit the model."""


class AnchorTrainingError(AnchorError, RuntimeError):
    """Training cannot go on correctly: the anchor term became non-finite, or lost its gradient."""
