"""A colour-autoencoder variant: its `anchor-hf train` recipe and what `anchor-hf repro-paper` measures on it.

Each variant (`recipes/colour_ae_anchored.yaml`, `recipes/colour_ae_isolated.yaml`) is an
ordinary recipe with `dataset: colour_cube`; its `evaluation` section names the
intervention the paper reports on it and the concept it acts on. Weights are in this
library's units (docs/method.md §2): attractive terms are label-weighted means and separation is
a mean over pairs, so the paper's separation weight (a sum over the other 63 states of a
batch of 64) is about 63× ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from anchor_hf.config import AnchorConfig
from anchor_hf.errors import AnchorConfigError

Intervention = Literal["suppress", "ablate"]


@dataclass(frozen=True)
class Variant:
    """One variant of the colour experiment, checked as a whole before any training.

    Args:
        path: the recipe file.
        intervention, concept: the `evaluation` section.
        anchor_config: the recipe's `AnchorConfig`.
        max_steps, batch_size: the training budget (they fix how many colours, and so labels, a run sees).
    """

    path: str
    intervention: Intervention
    concept: str
    anchor_config: AnchorConfig
    max_steps: int
    batch_size: int


def load_variant(path: str | os.PathLike) -> Variant:
    """Read and check a variant's recipe; raises `AnchorConfigError` naming what is wrong."""
    from anchor_hf.commands.train import load_section, resolve_dataset
    from anchor_hf.train_args import parse_train_args

    from .builder import MODEL_TYPE  # registers `colour_cube`

    path = os.fspath(path)
    model_args, data_args, anchor_args, training_args = parse_train_args(["--config", path])
    if data_args.dataset != "colour_cube" or model_args.model_type != MODEL_TYPE:
        raise AnchorConfigError(f"{path}: a colour-autoencoder recipe has `dataset: colour_cube` and `model_type: "
                                f"{MODEL_TYPE}`, got {data_args.dataset!r} and {model_args.model_type!r}")
    builder, _ = resolve_dataset(data_args)
    evaluation = builder.read_evaluation(load_section(data_args.evaluation, "evaluation") or {})
    cfg = anchor_args.to_anchor_config()
    concept = cfg.concept(evaluation.concept)  # raises with the known names
    if evaluation.intervention == "ablate" and (concept.dims is None or len(concept.dims) != 1):
        raise AnchorConfigError(f"{path}: `evaluation.intervention` = 'ablate' zeroes one bottleneck axis, so concept "
                                f"{evaluation.concept!r} needs `dims` with one axis, got dims={concept.dims!r}")
    if training_args.max_steps < 1:
        raise AnchorConfigError(f"{path}: a colour recipe must set `max_steps`: it fixes how many colours (and so "
                                "how many labels) a run sees")
    return Variant(path, evaluation.intervention, evaluation.concept, cfg, training_args.max_steps,
                   training_args.per_device_train_batch_size)
