"""Colour-autoencoder recipes: one YAML file per variant of the paper's experiment.

A recipe is flat like the `anchor-hf train` recipes: its own keys (below) plus any
`TrainingArguments` field at the top level. Weights are in this library's units
(METHOD.md §2): attractive terms are label-weighted means and separation is a mean over
pairs, so the paper's separation weight (a sum over the other 63 states of a batch of
64) is about 63× ours.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from anchor_hf.config import AnchorConfig
from anchor_hf.errors import AnchorConfigError
from anchor_hf.train_args import load_mapping

Intervention = Literal["suppress", "ablate"]
OWN_KEYS = ("name", "model_config", "anchor_config", "cube_steps", "intervention", "concept")
# Set by the runner for every run: a recipe may not change where or how a run is recorded.
RUNNER_KEYS = ("output_dir", "seed", "data_seed", "report_to", "save_strategy", "logging_strategy",
               "logging_steps", "disable_tqdm", "use_cpu", "remove_unused_columns", "dataloader_num_workers")


@dataclass
class ColourRecipe:
    """One variant of the colour experiment: model shape, anchors, data and training settings.

    Args:
        name: the variant's name in reports ("anchored", "isolated").
        model_config: `ColourAutoencoderConfig` fields (`hidden_size` = bottleneck width E).
        anchor_config: the `AnchorConfig` (its layers name the `bottleneck_norm` site).
        cube_steps: grid points per RGB channel that training colours are drawn from.
        intervention: which intervention this variant is built for (what the paper reports).
        concept: the anchored concept the interventions act on.
        training: `TrainingArguments` fields.
    """

    name: str
    model_config: dict[str, Any]
    anchor_config: AnchorConfig
    cube_steps: int = 8
    intervention: Intervention = "suppress"
    concept: str = "red"
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise AnchorConfigError(f"`name` must be a non-empty string, got {self.name!r}")
        if isinstance(self.cube_steps, bool) or not isinstance(self.cube_steps, int) or self.cube_steps < 2:
            raise AnchorConfigError(f"`cube_steps` must be an int >= 2, got {self.cube_steps!r}")
        if self.intervention not in ("suppress", "ablate"):
            raise AnchorConfigError(f"`intervention` must be 'suppress' or 'ablate', got {self.intervention!r}")
        concept = self.anchor_config.concept(self.concept)  # raises with the known names
        if self.intervention == "ablate" and (concept.dims is None or len(concept.dims) != 1):
            raise AnchorConfigError(f"`intervention` = 'ablate' zeroes one bottleneck axis, so concept "
                                    f"{self.concept!r} needs `dims` with one axis, got dims={concept.dims!r}")
        if "max_steps" not in self.training or "per_device_train_batch_size" not in self.training:
            raise AnchorConfigError("a colour recipe must set `max_steps` and `per_device_train_batch_size`: "
                                    "they fix how many colours (and so how many labels) a run sees")
        for key in self.training:
            if key in RUNNER_KEYS:
                raise AnchorConfigError(f"`{key}` is set by the runner for every run; remove it from the recipe")


def _training_fields() -> set[str]:
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}


def load_recipe(path: str | os.PathLike) -> ColourRecipe:
    """Read a colour recipe YAML; raises `AnchorConfigError` naming any unknown key."""
    data = load_mapping(os.fspath(path), "recipe")
    known = _training_fields()
    unknown = sorted(k for k in data if k not in OWN_KEYS and k not in known)
    if unknown:
        raise AnchorConfigError(f"{path}: unknown keys {unknown}; allowed: {list(OWN_KEYS)} and TrainingArguments "
                                "fields")
    for key in ("name", "model_config", "anchor_config"):
        if key not in data:
            raise AnchorConfigError(f"{path}: missing `{key}`")
    anchor = data["anchor_config"]
    if not isinstance(anchor, dict):
        raise AnchorConfigError(f"{path}: `anchor_config` must be a mapping, got {type(anchor).__name__}")
    if not isinstance(data["model_config"], dict):
        raise AnchorConfigError(f"{path}: `model_config` must be a mapping, got {type(data['model_config']).__name__}")
    own = {k: data[k] for k in OWN_KEYS if k in data}
    own["anchor_config"] = AnchorConfig(**anchor)
    training = {k: v for k, v in data.items() if k not in OWN_KEYS}
    return ColourRecipe(**own, training=training)
