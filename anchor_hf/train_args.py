"""Arguments of `anchor-hf train`: model, data and anchor groups beside `TrainingArguments`.

A recipe is a flat YAML file whose top-level keys are fields of these four dataclasses
(TRL's convention: the file sets the defaults, `--key value` flags override it). Two
fields take a mapping, inline in the YAML, as a JSON/YAML string on the command line, or
as a path: `anchor_config` (an `AnchorConfig`) and `model_config` (config keywords of a
model built from scratch). Every mistake is reported before anything is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from .config import CONFIG_NAME, AnchorConfig
from .errors import AnchorCheckpointError, AnchorConfigError
from .overrides import MAPPING_FIELDS, apply_key_overrides, split_key_overrides


@dataclass
class ModelArguments:
    """Which model to train.

    Args:
        model_name_or_path (`str` or `None`): a local folder, a Hub id, or a packaged model
            registered by name (`packaged:...`, `anchor_hf.registry.registered_models()`) to
            fine-tune; `None` builds a fresh model of `model_type` from `model_config`.
        model_type (`str`): architecture of a fresh model (`llama`, `gpt2`, `gpt_neox`, `qwen2`, ...).
        model_config (`dict`, `str` or `None`): keyword arguments of the fresh model's config
            (`hidden_size`, `num_hidden_layers`, ...), or a path to a JSON/YAML file of them.
        tokenizer_name_or_path (`str` or `None`): tokenizer; default the model's, or one the
            dataset builder makes (the synthetic, colour and GoEmotions datasets build theirs).
        lora_config (`dict`, `str` or `None`): keyword arguments of a PEFT `LoraConfig` (`r`,
            `lora_alpha`, `target_modules`, ...); set, the model trains LoRA adapters only and
            the output folder holds the adapter. `None` trains every weight.
    """

    model_name_or_path: str | None = field(default=None, metadata={
        "help": "Local folder, Hub id or packaged model (packaged:NAME) to fine-tune."})
    model_type: str = field(default="llama", metadata={"help": "Architecture of a model built from scratch."})
    model_config: dict | str | None = field(default=None, metadata={"help": "Config keywords of a fresh model."})
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "Tokenizer (default: the model's)."})
    lora_config: dict | str | None = field(default=None, metadata={"help": "PEFT LoraConfig keywords (None: full)."})


@dataclass
class DataArguments:
    """Which data to train on.

    Args:
        dataset (`str`): a registered dataset builder (`anchor_hf.registry.registered_datasets()`;
            the experiments register `synthetic`, `colour_names`, `colour_mixing`, `colour_cube`
            and `goemotions`), a local folder saved by `Dataset.save_to_disk`, a
            `.json`/`.jsonl`/`.csv`/`.parquet` file, or a Hub dataset name (online users only).
        dataset_args (`dict`, `str` or `None`): the registered builder's settings, checked by it
            (unknown keys refused). One key is overridden with `--dataset_args.KEY VALUE`.
        evaluation (`dict`, `str` or `None`): the experiment's evaluation settings. Training does
            not use them but checks them against the builder's, so a typo fails before training.
        dataset_split (`str`): split to read from a Hub dataset or a `DatasetDict` folder.
        text_column (`str`): column tokenized when a file or Hub dataset has no `input_ids`.
        max_length (`int`): truncation length when tokenizing a file or Hub dataset.
        max_train_examples (`int` or `None`): keep only the first N examples of a file or Hub dataset.
    """

    dataset: str | None = field(default=None, metadata={
        "help": "Registered dataset builder, local file/folder, or Hub dataset."})
    dataset_args: dict | str | None = field(default=None, metadata={"help": "Settings of a registered builder."})
    evaluation: dict | str | None = field(default=None, metadata={"help": "The experiment's evaluation settings."})
    dataset_split: str = field(default="train", metadata={"help": "Split to read."})
    text_column: str = field(default="text", metadata={"help": "Column to tokenize if there is no input_ids."})
    max_length: int = field(default=128, metadata={"help": "Truncation length when tokenizing."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Keep only the first N examples."})


@dataclass
class AnchorArguments:
    """What to anchor.

    Args:
        anchor_config (`dict`, `str`): an `AnchorConfig` as a mapping (inline in the recipe or a
            JSON/YAML string), a path to a `.json`/`.yaml` file of one, or a folder holding
            `anchor_config.json` (to continue a run with the same anchors). Required.
        label_draw (`str`): `bernoulli` draws labels per visit (docs/method.md §3); `expected` uses
            the probabilities as fixed weights.
        label_seed (`int` or `None`): seed of the label draws; default the training seed.
    """

    anchor_config: dict | str | None = field(default=None, metadata={"help": "AnchorConfig mapping or path."})
    label_draw: str = field(default="bernoulli", metadata={"help": "bernoulli or expected."})
    label_seed: int | None = field(default=None, metadata={"help": "Seed of the label draws."})

    def to_anchor_config(self, hidden_size: int | None = None) -> AnchorConfig:
        """The `AnchorConfig` this argument describes; raises `AnchorConfigError` naming the problem.

        Args:
            hidden_size: the model's width, needed only when a concept's `vector` is a seeded
                random direction (`{random_seed: N}`, see `places.random_direction`).
        """
        value = self.anchor_config
        if value is None:
            raise AnchorConfigError("`anchor_config` is required: give a mapping (layers, concepts, ...), a path "
                                    "to a .json/.yaml file, or a folder holding anchor_config.json")
        if isinstance(value, str) and os.path.isdir(value):
            if not os.path.isfile(os.path.join(value, CONFIG_NAME)):
                raise AnchorConfigError(f"`anchor_config` = {value!r} is a folder without {CONFIG_NAME}")
            return AnchorConfig.from_pretrained(value)
        mapping = load_mapping(value, "anchor_config")
        if "format_version" in mapping:  # a saved anchor_config.json
            return AnchorConfig.from_dict(mapping, source="anchor_config")
        known = {f.name for f in fields(AnchorConfig)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise AnchorConfigError(f"`anchor_config` has unknown keys {unknown}; allowed {sorted(known)}")
        mapping = _with_random_vectors(mapping, hidden_size)
        try:
            return AnchorConfig(**mapping)
        except TypeError as err:  # an unknown key inside a concept or schedule
            raise AnchorConfigError(f"`anchor_config`: {err}") from err

    def needs_hidden_size(self) -> bool:
        """Whether a concept's direction is a seeded random vector, drawn at the model's width."""
        value = self.anchor_config
        if value is None or (isinstance(value, str) and os.path.isdir(value)):
            return False
        concepts = load_mapping(value, "anchor_config").get("concepts") or []
        return any(isinstance(c, dict) and isinstance(c.get("vector"), dict) for c in concepts)


def _with_random_vectors(mapping: dict[str, Any], hidden_size: int | None) -> dict[str, Any]:
    """`mapping` with every concept `vector: {random_seed: N}` replaced by `places.random_direction(hidden_size, N)`.

    A seeded N(0, I) direction, the same on every run and process. On a pretrained model it
    still leans on the outlier axes and the mean state (docs/reports/steering_smollm2/); a
    direction measured clear of them is `places.pretrained_direction`, passed as a list.
    """
    from .places import random_direction  # torch only when a random direction is asked for

    concepts = mapping.get("concepts")
    if not isinstance(concepts, list):
        return mapping
    out = []
    for i, concept in enumerate(concepts):
        vector = concept.get("vector") if isinstance(concept, dict) else None
        if isinstance(vector, dict):
            seed = vector.get("random_seed")
            if set(vector) != {"random_seed"} or isinstance(seed, bool) or not isinstance(seed, int):
                raise AnchorConfigError(f"`anchor_config.concepts[{i}].vector` must be a list of numbers or "
                                        f"{{random_seed: INT}}, got {vector!r}")
            if hidden_size is None:
                raise AnchorConfigError(f"`anchor_config.concepts[{i}].vector` = {{random_seed: {seed}}} is drawn at "
                                        "the model's width, which is not known here")
            concept = {**concept, "vector": random_direction(hidden_size, seed)}
        out.append(concept)
    return {**mapping, "concepts": out}


ARGUMENT_CLASSES = (ModelArguments, DataArguments, AnchorArguments)


def load_mapping(value: dict | str, name: str) -> dict[str, Any]:
    """A mapping given inline (dict or JSON/YAML text) or as a path to a JSON/YAML file."""
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise AnchorConfigError(f"`{name}` must be a mapping or a string, got {type(value).__name__}")
    text = value
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            text = f.read()
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise AnchorConfigError(f"`{name}` is neither a readable file nor valid JSON/YAML ({err})") from err
    if not isinstance(mapping, dict):
        raise AnchorConfigError(f"`{name}` must be a mapping, a path to a JSON/YAML file of one, or a folder; "
                                f"got {value!r}")
    return mapping


def load_yaml_mapping(path: str, label: str) -> dict[str, Any]:
    """The mapping a YAML file holds; `label` names the file in errors (e.g. "`--config`")."""
    if not os.path.isfile(path):
        raise AnchorConfigError(f"{label} = {path!r} is not a file")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise AnchorConfigError(f"{path} is not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise AnchorConfigError(f"{path} must hold a mapping of names to values, got {type(data).__name__}")
    return data


def read_recipe(path: str, allowed: set[str]) -> dict[str, Any]:
    """The top-level keys of a YAML recipe; raises on unknown keys."""
    return check_recipe_keys(load_yaml_mapping(path, "`--config`"), allowed, path)


def check_recipe_keys(recipe: dict[str, Any], allowed: set[str], source: str) -> dict[str, Any]:
    """`recipe` itself when every top-level key is `allowed`; raises naming the unknown ones."""
    unknown = sorted(set(recipe) - allowed)
    if unknown:
        raise AnchorConfigError(f"{source}: unknown keys {unknown}; a recipe's top-level keys are fields of "
                                "ModelArguments, DataArguments, AnchorArguments or TrainingArguments "
                                "(`anchor-hf train --help` lists them); a dataset's own settings go under "
                                "`dataset_args`, an experiment's evaluation settings under `evaluation`")
    return recipe


def recipe_file(value: str) -> str:
    """The recipe `--config` names: a YAML file (relative to the working folder), or a shipped recipe's name."""
    if os.path.isfile(value):
        return value
    if os.sep not in value and "/" not in value:
        from .resources import recipe_path

        return str(recipe_path(value))  # raises listing the shipped recipes
    raise AnchorConfigError(f"`--config` = {value!r} is not a file (paths are relative to {os.getcwd()})")


def make_parser():
    """`HfArgumentParser` over the model, data, anchor and training argument groups."""
    from transformers import HfArgumentParser, TrainingArguments

    return HfArgumentParser((*ARGUMENT_CLASSES, TrainingArguments))


def parse_train_args(argv: Sequence[str], recipe: dict[str, Any] | None = None
                     ) -> tuple[ModelArguments, DataArguments, AnchorArguments, Any]:
    """Parse `[--config RECIPE] [--key value ...] [--dataset_args.KEY value ...]`: the recipe sets defaults.

    `RECIPE` is a YAML file or a shipped recipe's name. Flags override the recipe's keys;
    `--FIELD.KEY value` sets one key inside a mapping-valued field (`MAPPING_FIELDS`).
    Returns `(model_args, data_args, anchor_args, training_args)`.

    Args:
        argv: the command-line arguments.
        recipe: a recipe already read into a mapping, used as `--config` would be (drivers
            check the recipe they are about to write before anything runs).
    """
    argv, key_overrides = split_key_overrides(argv)
    config_path = None
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise AnchorConfigError("`--config` needs a path to a YAML recipe")
        config_path = argv[i + 1]
        del argv[i:i + 2]
    else:
        for i, arg in enumerate(argv):
            if arg.startswith("--config="):
                config_path = arg.split("=", 1)[1]
                del argv[i]
                break
    parser = make_parser()
    allowed = {f.name for cls in parser.dataclass_types for f in fields(cls) if f.init}
    if config_path is not None and recipe is not None:
        raise AnchorConfigError("give the recipe either as `--config` or as a mapping, not both")
    if config_path is not None:
        parser.set_defaults(**read_recipe(recipe_file(config_path), allowed))
    elif recipe is not None:
        parser.set_defaults(**check_recipe_keys(recipe, allowed, "the recipe"))
    model_args, data_args, anchor_args, training_args, rest = parser.parse_args_into_dataclasses(
        argv, return_remaining_strings=True, look_for_args_file=False)
    if rest:
        raise AnchorConfigError(f"unknown arguments {rest}; `anchor-hf train --help` lists the allowed ones")
    for name in MAPPING_FIELDS:  # `--dataset_args null` clears a recipe's section
        group = model_args if hasattr(model_args, name) else data_args
        value = getattr(group, name)
        if isinstance(value, str) and value.strip().lower() in ("null", "none", "~"):
            setattr(group, name, None)
        if name in key_overrides:
            base = getattr(group, name)
            mapping = load_mapping(base, name) if base is not None else {}
            setattr(group, name, apply_key_overrides(mapping, key_overrides[name], name))
    limit = data_args.max_train_examples
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise AnchorConfigError(f"`max_train_examples` must be None or an int >= 1, got {limit!r}")
    if anchor_args.label_draw not in ("bernoulli", "expected"):
        raise AnchorConfigError(f"`label_draw` must be 'bernoulli' or 'expected', got {anchor_args.label_draw!r}")
    return model_args, data_args, anchor_args, training_args


def find_resume_checkpoint(value: str | None, output_dir: str) -> str | None:
    """The checkpoint folder `resume_from_checkpoint` names: a path, or `last`/`true` for the newest.

    Checkpoints are written to a staging folder and renamed when complete (see
    `AnchorTrainerMixin._save_checkpoint`), so every `checkpoint-N` folder is whole.
    """
    if value is None or str(value).lower() in ("", "false", "none"):
        return None
    if str(value).lower() not in ("last", "true"):
        if not os.path.isdir(value):
            raise AnchorCheckpointError(f"`resume_from_checkpoint` = {value!r} is not a folder")
        return value
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if last is None:
        raise AnchorCheckpointError(f"`resume_from_checkpoint` = {value!r}, but {output_dir!r} holds no "
                                    "checkpoint-N folder")
    return last
