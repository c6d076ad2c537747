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


@dataclass
class ModelArguments:
    """Which model to train.

    Args:
        model_name_or_path (`str` or `None`): a local folder or Hub id to fine-tune; `None`
            builds a fresh model of `model_type` from `model_config`.
        model_type (`str`): architecture of a fresh model (`llama`, `gpt2`, `gpt_neox`, `qwen2`, ...).
        model_config (`dict`, `str` or `None`): keyword arguments of the fresh model's config
            (`hidden_size`, `num_hidden_layers`, ...), or a path to a JSON/YAML file of them.
        tokenizer_name_or_path (`str` or `None`): tokenizer; default the model's, or for the
            synthetic dataset a word-level tokenizer built locally.
    """

    model_name_or_path: str | None = field(default=None, metadata={"help": "Local folder or Hub id to fine-tune."})
    model_type: str = field(default="llama", metadata={"help": "Architecture of a model built from scratch."})
    model_config: dict | str | None = field(default=None, metadata={"help": "Config keywords of a fresh model."})
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "Tokenizer (default: the model's)."})


@dataclass
class DataArguments:
    """Which data to train on.

    Args:
        dataset (`str`): `synthetic` (token walks with one concept, see `anchor_hf.experiments.synthetic`),
            `colour_names` / `colour_mixing` (colour corpora with labels from the hex value),
            a local folder saved by `Dataset.save_to_disk`, a `.json`/`.jsonl`/`.csv`/`.parquet`
            file, or a Hub dataset name (online users only).
        dataset_split (`str`): split to read from a Hub dataset or a `DatasetDict` folder.
        text_column (`str`): column tokenized when the data has no `input_ids`.
        max_length (`int`): truncation length when tokenizing.
        max_train_examples (`int` or `None`): keep only the first N examples.
        synthetic_* : size and shape of the synthetic data (ignored for other datasets).
        colour_* : the colour corpora `colour_names` / `colour_mixing` (`anchor_hf.experiments.colour.spec.ColourSpec`).
    """

    dataset: str = field(default="synthetic", metadata={"help": "synthetic, a local path or a Hub dataset."})
    dataset_split: str = field(default="train", metadata={"help": "Split to read."})
    text_column: str = field(default="text", metadata={"help": "Column to tokenize if there is no input_ids."})
    max_length: int = field(default=128, metadata={"help": "Truncation length when tokenizing."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Keep only the first N examples."})
    synthetic_examples: int = field(default=256, metadata={"help": "Synthetic: number of examples."})
    synthetic_seq_len: int = field(default=32, metadata={"help": "Synthetic: longest example in tokens."})
    synthetic_min_len: int | None = field(default=None, metadata={"help": "Synthetic: shortest example."})
    synthetic_vocab_size: int = field(default=64, metadata={"help": "Synthetic: vocabulary size."})
    synthetic_concept: str = field(default="marked", metadata={"help": "Synthetic: concept (label column) name."})
    synthetic_concept_rate: float = field(default=0.25, metadata={"help": "Synthetic: fraction with the concept."})
    synthetic_label_rate: float = field(default=0.5, metadata={"help": "Synthetic: label probability of those."})
    synthetic_seed: int = field(default=0, metadata={"help": "Synthetic: data seed."})
    colour_source: str = field(default="xkcd", metadata={"help": "colour_names: xkcd or colornames."})
    colour_concept: str = field(default="red", metadata={"help": "Colour corpora: target colour (hue, name, #hex)."})
    colour_data_dir: str | None = field(default=None, metadata={"help": "colour_names: folder of colornames.csv."})
    colour_heldout_fraction: float = field(default=0.1, metadata={"help": "Colour corpora: share held out."})
    colour_label_peak: float = field(default=1.0, metadata={"help": "Colour corpora: label peak (p = peak*sim^power)."})
    colour_label_power: float = field(default=8.0, metadata={"help": "Colour corpora: label power."})
    colour_seed: int = field(default=0, metadata={"help": "Colour corpora: seed of the held-out split."})
    colour_max_names: int | None = field(default=None, metadata={"help": "colour_names: keep N random names."})
    colour_reverse: bool = field(default=False, metadata={"help": "colour_names: also train '#hex: name' lines."})
    colour_answer_only: bool = field(default=False, metadata={"help": "colour_names: loss on the answers only."})
    colour_tokenizer: str = field(default="word", metadata={"help": "colour_names: word or char tokens."})
    colour_destination: str | None = field(default=None, metadata={
        "help": "Colour corpora: a redirect destination colour; adds its label column `destination`."})
    colour_destination_peak: float = field(default=1.0, metadata={"help": "Colour corpora: destination label peak."})
    colour_destination_power: float = field(default=3.0, metadata={
        "help": "Colour corpora: destination label power ((1 - saturation)^power for a grey)."})
    colour_exclude_target: bool = field(default=False, metadata={
        "help": "Colour corpora: drop the target colour's training items (the never-saw-it model)."})


@dataclass
class AnchorArguments:
    """What to anchor.

    Args:
        anchor_config (`dict`, `str`): an `AnchorConfig` as a mapping (inline in the recipe or a
            JSON/YAML string), a path to a `.json`/`.yaml` file of one, or a folder holding
            `anchor_config.json` (to continue a run with the same anchors). Required.
        label_draw (`str`): `bernoulli` draws labels per visit (METHOD.md §3); `expected` uses
            the probabilities as fixed weights.
        label_seed (`int` or `None`): seed of the label draws; default the training seed.
    """

    anchor_config: dict | str | None = field(default=None, metadata={"help": "AnchorConfig mapping or path."})
    label_draw: str = field(default="bernoulli", metadata={"help": "bernoulli or expected."})
    label_seed: int | None = field(default=None, metadata={"help": "Seed of the label draws."})

    def to_anchor_config(self) -> AnchorConfig:
        """The `AnchorConfig` this argument describes; raises `AnchorConfigError` naming the problem."""
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
        try:
            return AnchorConfig(**mapping)
        except TypeError as err:  # an unknown key inside a concept or schedule
            raise AnchorConfigError(f"`anchor_config`: {err}") from err


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
    """The top-level keys of a flat YAML recipe; raises on unknown keys or nesting."""
    recipe = load_yaml_mapping(path, "`--config`")
    unknown = sorted(set(recipe) - allowed)
    if unknown:
        raise AnchorConfigError(f"{path}: unknown keys {unknown}; a recipe is flat and its keys are fields of "
                                "ModelArguments, DataArguments, AnchorArguments or TrainingArguments "
                                "(`anchor-hf train --help` lists them)")
    return recipe


def make_parser():
    """`HfArgumentParser` over the model, data, anchor and training argument groups."""
    from transformers import HfArgumentParser, TrainingArguments

    return HfArgumentParser((*ARGUMENT_CLASSES, TrainingArguments))


def parse_train_args(argv: Sequence[str]) -> tuple[ModelArguments, DataArguments, AnchorArguments, Any]:
    """Parse `[--config RECIPE.yaml] [--key value ...]`: the recipe sets defaults, flags override.

    Returns `(model_args, data_args, anchor_args, training_args)`.
    """
    argv = list(argv)
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
    if config_path is not None:
        allowed = {f.name for cls in parser.dataclass_types for f in fields(cls) if f.init}
        parser.set_defaults(**read_recipe(config_path, allowed))
    model_args, data_args, anchor_args, training_args, rest = parser.parse_args_into_dataclasses(
        argv, return_remaining_strings=True, look_for_args_file=False)
    if rest:
        raise AnchorConfigError(f"unknown arguments {rest}; `anchor-hf train --help` lists the allowed ones")
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
