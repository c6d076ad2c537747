"""Train one seed of one colour recipe through `AnchorTrainer` (METHOD.md §2-§4).

Everything goes through the plugin: the model is a `PreTrainedModel`, the anchored site is
resolved by name, labels are drawn per visit by an `AnchorCollatorBase` subclass, and the
loss terms and schedules are the trainer's. Nothing here computes a loss.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from anchor_hf.config import AnchorConfig
from ..maths import AFFINITIES
from .dataset import ColourCollator, CubeSamples
from anchor_hf.errors import AnchorConfigError
from .model import ColourAutoencoder, ColourAutoencoderConfig
from .recipe import ColourRecipe


@dataclass
class TrainedRun:
    """A trained model with the config it was bound to, and what its training saw."""

    model: ColourAutoencoder
    anchor_config: AnchorConfig
    labels_drawn: dict[str, int]
    examples_seen: int
    seconds: float


def affinities_for(cfg: AnchorConfig) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Label-probability function for each concept's column.

    Columns named in `anchor_hf.experiments.colour.maths.AFFINITIES` ("red", "vibrant") get theirs. A
    concept that only repels (`attract` = 0, e.g. an anti-anchor on the red axis) needs no
    labels, so its column is all zeros. Any other column is an error.
    """
    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for i, concept in enumerate(cfg.concepts):
        if concept.column in AFFINITIES:
            out[concept.column] = AFFINITIES[concept.column]
        elif concept.attract == 0:
            out[concept.column] = lambda rgb: torch.zeros(rgb.shape[:-1])
        else:
            raise AnchorConfigError(f"`concepts[{i}]` ({concept.name!r}) reads label column {concept.column!r}, "
                                    f"but colour labels exist only for {sorted(AFFINITIES)}; set `label_column` "
                                    "to one of them, or `attract: 0` for a repel-only concept")
    return out


def train_run(recipe: ColourRecipe, seed: int, max_steps: int | None = None) -> TrainedRun:
    """Train `recipe` with `seed` (weights, colour draws and label draws all follow it).

    Args:
        recipe: the variant to train.
        seed: the run's seed.
        max_steps: override of the recipe's `max_steps` (the smoke test uses a few).
    """
    from transformers import TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from anchor_hf.trainer import AnchorTrainer

    cfg = copy.deepcopy(recipe.anchor_config)  # the trainer writes the resolved layers into it
    training = dict(recipe.training)
    if max_steps is not None:
        training["max_steps"] = max_steps
    steps = int(training["max_steps"])
    per_step = int(training["per_device_train_batch_size"]) * int(training.get("gradient_accumulation_steps", 1))
    set_seed(seed)
    model = ColourAutoencoder(ColourAutoencoderConfig(**recipe.model_config))
    dataset = CubeSamples(steps * per_step, recipe.cube_steps, affinities_for(cfg), seed=seed)
    collator = ColourCollator(cfg, draw="bernoulli", seed=seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="colour-ae-") as workdir:
        args = TrainingArguments(output_dir=workdir, seed=seed, report_to=[], save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, use_cpu=True,
                                 remove_unused_columns=False, dataloader_num_workers=0, **training)
        trainer = AnchorTrainer(model=model, args=args, anchor_config=cfg, train_dataset=dataset,
                                data_collator=collator)
        for callback in (PrinterCallback, ProgressCallback):  # one line per run is enough
            trainer.remove_callback(callback)
        trainer.train()
    seconds = time.perf_counter() - start
    model.eval()
    return TrainedRun(model=model, anchor_config=cfg, labels_drawn=dict(collator.labels_drawn),
                      examples_seen=collator.examples_seen, seconds=seconds)
