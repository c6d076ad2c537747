"""`dataset: colour_cube`: the paper's autoencoder setting as a dataset a recipe names.

It owns more than data: colours drawn from the RGB cube with per-concept label
probabilities (`CubeSamples`), the `ColourAutoencoder` sized by the recipe's `model_config`
(`model_type: colour_autoencoder`), and the `ColourCollator` that draws labels per visit.
A run draws `max_steps × batch × accumulation × processes` colours, so the Trainer's one
pass over them is sampling with replacement. The `evaluation` section names the
intervention the paper measures on the variant and the concept it acts on
(`anchor-hf repro-paper` reads it; training only checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from anchor_hf.errors import AnchorConfigError
from anchor_hf.registry import BuildContext, BuiltData, DatasetBuilder, register_dataset

MODEL_TYPE = "colour_autoencoder"


@dataclass
class ColourCubeArgs:
    """`dataset: colour_cube` settings.

    Args:
        cube_steps: grid points per RGB channel that training colours are drawn from (8: the paper's 8³).
        seed: seed of the colour draw; None uses the training seed.
    """

    cube_steps: int = 8
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cube_steps, bool) or not isinstance(self.cube_steps, int) or self.cube_steps < 2:
            raise AnchorConfigError(f"`cube_steps` must be an int >= 2, got {self.cube_steps!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise AnchorConfigError(f"`seed` must be an int or null, got {self.seed!r}")


@dataclass
class ColourCubeEvaluation:
    """What `anchor-hf repro-paper` measures on a variant.

    Args:
        intervention: `suppress` (the anchored variant) or `ablate` (the isolated one: zero its axis).
        concept: the anchored concept the interventions act on.
    """

    intervention: Literal["suppress", "ablate"] = "suppress"
    concept: str = "red"

    def __post_init__(self) -> None:
        if self.intervention not in ("suppress", "ablate"):
            raise AnchorConfigError(f"`intervention` must be 'suppress' or 'ablate', got {self.intervention!r}")
        if not isinstance(self.concept, str) or not self.concept:
            raise AnchorConfigError(f"`concept` must be a concept name, got {self.concept!r}")


def affinities_for(cfg: Any) -> dict[str, Callable[[Any], Any]]:
    """Label-probability function for each concept's column.

    Columns named in `anchor_hf.experiments.colour.maths.AFFINITIES` ("red", "vibrant") get theirs. A
    concept that only repels (`attract` = 0, e.g. an anti-anchor on the red axis) needs no
    labels, so its column is all zeros. Any other column is an error.
    """
    import torch

    from ..maths import AFFINITIES

    out: dict[str, Callable[[Any], Any]] = {}
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


def build(args: ColourCubeArgs, context: BuildContext) -> BuiltData:
    """The autoencoder (fresh, from `model_config`), the run's colour draws and the label-drawing collator."""
    from anchor_hf.train_args import load_mapping

    from .dataset import ColourCollator, CubeSamples
    from .model import ColourAutoencoder, ColourAutoencoderConfig

    model_args, training = context.model_args, context.training_args
    if model_args.model_name_or_path is not None or model_args.model_type != MODEL_TYPE:
        raise AnchorConfigError(f"dataset 'colour_cube' trains a fresh colour autoencoder: set `model_type: "
                                f"{MODEL_TYPE}` and no `model_name_or_path` (got model_type="
                                f"{model_args.model_type!r}, model_name_or_path={model_args.model_name_or_path!r})")
    if training.max_steps is None or training.max_steps < 1:
        raise AnchorConfigError("dataset 'colour_cube' draws `max_steps` batches of colours: set `max_steps` >= 1, "
                                f"got {training.max_steps!r}")
    shape = load_mapping(model_args.model_config, "model_config") if model_args.model_config is not None else {}
    model = ColourAutoencoder(ColourAutoencoderConfig(**shape))  # first, as the training seed left the RNG
    per_step = training.per_device_train_batch_size * training.gradient_accumulation_steps * training.world_size
    seed = training.seed if args.seed is None else args.seed
    colours = CubeSamples(training.max_steps * per_step, args.cube_steps, affinities_for(context.anchor_config),
                          seed=seed)
    collator = ColourCollator(context.anchor_config, draw=context.label_draw, seed=context.label_seed)
    return BuiltData(colours, model=model, collator=collator)


register_dataset(DatasetBuilder("colour_cube", ColourCubeArgs, build, evaluation=ColourCubeEvaluation,
                                summary="RGB cube samples for the paper's colour autoencoder (model and collator "
                                        "included)"))
