"""Dataset builders and packaged models that a recipe names: `dataset: NAME`, `model_name_or_path: NAME`.

The core knows no dataset. A builder registers under a name (the way PEFT registers its
tuner methods) and `anchor-hf train` looks it up; anything else in `dataset` is a local
file, folder or Hub dataset, read by the core's own loader. The experiments register their
builders and packaged models when `anchor_hf.experiments` is imported: the `anchor-hf`
command does that, and so must Python code that runs their recipes:

    import anchor_hf.experiments  # registers synthetic, colour_names, colour_mixing, colour_cube, goemotions
    from anchor_hf.commands.train import run
    trainer = run(["--config", "recipes/tiny_llama_synthetic.yaml", "--max_steps", "2"])

A builder owns one section of the recipe, `dataset_args`, read into its `args` dataclass
(unknown keys refused by name; values checked by the dataclass). An experiment that also
evaluates may declare an `evaluation` dataclass: training never reads that section, but
validates it, so a typo in an evaluation key fails before a step is taken.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AnchorConfigError, AnchorError


@dataclass(frozen=True)
class BuildContext:
    """What a builder may read besides its own settings.

    Attributes:
        model_args: the recipe's `ModelArguments` (a builder that makes its own model reads
            `model_config` here; one that does not must leave it alone).
        training_args: the `TrainingArguments` (seed, batch size, `max_steps`, process count).
        anchor_config: the `AnchorConfig` of the run (label columns to fill).
        tokenizer: the tokenizer the recipe names (`tokenizer_name_or_path` or the model's), or None.
        label_draw, label_seed: how the default collator draws labels; a builder's own collator uses them too.
    """

    model_args: Any
    training_args: Any
    anchor_config: Any
    tokenizer: Any | None
    label_draw: str
    label_seed: int


@dataclass
class BuiltData:
    """A builder's output: the training split, and whatever else of the run it owns.

    Attributes:
        train_dataset: a `datasets.Dataset` (or any torch `Dataset` its collator understands).
        tokenizer: the tokenizer to train with; None keeps `BuildContext.tokenizer`.
        model: a model of the builder's own; None lets the driver build one from `ModelArguments`.
        collator: a collator of its own; None uses `AnchorDataCollator(tokenizer, anchor_config)`.
        files: file name -> text, written beside the saved model (e.g. what evaluation needs
            to rebuild the same data).
    """

    train_dataset: Any
    tokenizer: Any | None = None
    model: Any | None = None
    collator: Any | None = None
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetBuilder:
    """A named way to build training data (and, optionally, its model, collator and files).

    Attributes:
        name: what a recipe's `dataset` says.
        args: dataclass of the builder's settings (the recipe's `dataset_args`).
        build: `(args, context) -> BuiltData`; import heavy modules inside it, so
            registering stays cheap.
        evaluation: dataclass of the experiment's `evaluation` section, or None when it takes none.
        summary: one line for `anchor-hf train --help` and error messages.
    """

    name: str
    args: type
    build: Callable[[Any, BuildContext], BuiltData]
    evaluation: type | None = None
    summary: str = ""

    def read_args(self, mapping: Mapping[str, Any] | None) -> Any:
        """The builder's settings from the recipe's `dataset_args` mapping; raises naming a bad key."""
        return read_section(self.args, mapping, "dataset_args", f"dataset {self.name!r}")

    def read_evaluation(self, mapping: Mapping[str, Any] | None) -> Any | None:
        """The `evaluation` section checked against this experiment's; None when there is none."""
        if self.evaluation is None:
            if mapping:
                raise AnchorConfigError(f"`evaluation` is set, but dataset {self.name!r} has no evaluation settings; "
                                        "remove the section")
            return None
        return read_section(self.evaluation, mapping, "evaluation", f"dataset {self.name!r}")


ModelResolver = Callable[[str], str]  # cache folder -> local model folder

_DATASETS: dict[str, DatasetBuilder] = {}
_MODELS: dict[str, tuple[ModelResolver, str]] = {}


def register_dataset(builder: DatasetBuilder) -> None:
    """Make `builder` available to recipes as `dataset: builder.name`; a name is registered once."""
    if not isinstance(builder, DatasetBuilder):
        raise AnchorConfigError(f"`builder` must be a DatasetBuilder, got {type(builder).__name__}")
    if not dataclasses.is_dataclass(builder.args):
        raise AnchorConfigError(f"dataset {builder.name!r}: `args` must be a dataclass, got {builder.args!r}")
    known = _DATASETS.get(builder.name)
    if known is not None and known != builder:
        raise AnchorConfigError(f"dataset {builder.name!r} is already registered (by {known.build.__module__})")
    _DATASETS[builder.name] = builder


def dataset_builder(name: str) -> DatasetBuilder | None:
    """The builder registered as `name`, or None (then `name` is a file, folder or Hub dataset)."""
    return _DATASETS.get(name)


def registered_datasets() -> dict[str, str]:
    """Registered dataset name -> its one-line summary."""
    return {name: builder.summary for name, builder in sorted(_DATASETS.items())}


def register_model(name: str, resolve: ModelResolver, summary: str = "") -> None:
    """Make a packaged model available as `model_name_or_path: name`.

    `resolve(cache_dir)` returns a local model folder (converting or unpacking into
    `cache_dir` once). Names hold a `:` so they never collide with a Hub id or a folder.
    """
    if ":" not in name:
        raise AnchorConfigError(f"a packaged model's name must contain ':' (e.g. 'packaged:my-model'), got {name!r}")
    known = _MODELS.get(name)
    if known is not None and known[0] is not resolve:
        raise AnchorConfigError(f"packaged model {name!r} is already registered")
    _MODELS[name] = (resolve, summary)


def registered_models() -> dict[str, str]:
    """Registered packaged model name -> its one-line summary."""
    return {name: summary for name, (_, summary) in sorted(_MODELS.items())}


def resolve_model(name_or_path: str, cache_dir: str | None = None) -> str:
    """A packaged model's local folder, or `name_or_path` unchanged when it names no packaged model.

    `cache_dir` defaults to `$ANCHOR_HF_CACHE`, else `~/.cache/anchor_hf`.
    """
    if name_or_path not in _MODELS:
        if name_or_path.startswith("packaged:"):
            raise AnchorConfigError(f"`model_name_or_path` = {name_or_path!r} is no registered packaged model; "
                                    f"registered: {sorted(_MODELS) or 'none'} (the experiments register theirs "
                                    "on `import anchor_hf.experiments`)")
        return name_or_path
    folder = cache_dir or os.environ.get("ANCHOR_HF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                            "anchor_hf")
    return _MODELS[name_or_path][0](folder)


def read_section(cls: type, mapping: Mapping[str, Any] | None, section: str, owner: str) -> Any:
    """An instance of dataclass `cls` from a recipe section; unknown keys are refused with the allowed ones."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise AnchorConfigError(f"`{section}` must be a mapping of names to values, got {type(mapping).__name__}")
    allowed = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise AnchorConfigError(f"`{section}` has unknown keys {unknown} for {owner}; allowed: {allowed}")
    try:
        return cls(**mapping)
    except TypeError as err:  # a required key is missing
        raise AnchorConfigError(f"`{section}` for {owner}: {err}") from err
    except AnchorError as err:  # a value the dataclass refuses: say which section it came from
        raise type(err)(f"`{section}` for {owner}: {err}") from err
