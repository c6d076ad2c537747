"""`anchor-hf train --config RECIPE [--key value ...]`: the one training entry point.

Every recipe goes through here, under `python`, `accelerate launch -m anchor_hf.cli train`
and `torchrun` alike (launchers run it from the installed package), and so do the
experiments' drivers (`anchor-hf colour`, `goemotions`, `repro-paper`), which call `run`
with their recipe and a few overrides. It parses the recipe (`anchor_hf.train_args`), asks
the registered dataset builder (`anchor_hf.registry`) for the data and whatever else it
owns, builds the rest (tokenizer, model, LoRA adapters, collator) and the `AnchorTrainer`,
trains (resuming if asked), saves the model with `anchor_config.json` and the builder's
files, pushes to the Hub if asked, and always releases the process group in the order that
lets a multi-process run exit cleanly (`anchor_hf.teardown`, docs/multiprocess.md). An FSDP
launch on CPU processes gets accelerate's FSDP2 code (`anchor_hf.cpu_fsdp`) instead of its
silent fallback to DDP.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from ..errors import AnchorConfigError, AnchorDataError
from ..io import load_tokenizer, with_pad_token, write_text
from ..registry import BuildContext, BuiltData, DatasetBuilder, dataset_builder, registered_datasets, resolve_model
from ..train_args import (DataArguments, ModelArguments, find_resume_checkpoint, load_mapping, make_parser,
                          parse_train_args)

HELP = "Train with anchoring from a YAML recipe (`--config FILE` or a shipped recipe's name) plus overrides."


def register(subparsers: Any) -> None:
    # Prefix '+' makes every `--flag` a plain string, so HfArgumentParser sees them all.
    parser = subparsers.add_parser("train", help=HELP, description=HELP, add_help=False, prefix_chars="+")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if "-h" in argv or "--help" in argv:
        make_parser().print_help()
        print("\nregistered datasets (`dataset: NAME`, settings under `dataset_args`, one key with "
              "`--dataset_args.KEY VALUE`):")
        for name, summary in registered_datasets().items():
            print(f"  {name:14s} {summary}")
        return 0
    return launch(argv)


def launch(argv: Sequence[str]) -> int:
    """Train as the entry point of a process (`anchor-hf train`, `-m anchor_hf.cli train`); returns 0."""
    run(argv)
    return 0


def run(argv: Sequence[str], callbacks: Sequence[Any] | None = None, quiet: bool = False) -> Any:
    """Train as the recipe and flags in `argv` say; returns the trainer.

    A registered `dataset` (`anchor_hf.registry`) builds the data and may bring its own
    tokenizer, model, collator and files; the experiments register theirs on
    `import anchor_hf.experiments` (the `anchor-hf` command does it). Everything is checked
    before anything is built.

    Args:
        argv: `[--config RECIPE] [--key value ...] [--dataset_args.KEY value ...]`.
        callbacks: extra `TrainerCallback`s (tests use one to kill a run mid-way).
        quiet: print neither a progress bar nor logged metrics (drivers that train many small models).
    """
    from ..teardown import release_process_group

    trainer, finished = None, False
    try:
        trainer, resume, files = build_trainer(argv, callbacks, quiet)
        trainer.train(resume_from_checkpoint=resume)
        trainer.save_model()
        trainer.save_state()  # trainer_state.json: the log history beside the model
        trainer.create_model_card()  # README.md listing the anchors (anchor_hf.hub)
        if trainer.is_world_process_zero():
            for name, text in files.items():  # what evaluation needs to rebuild the data
                write_text(os.path.join(trainer.args.output_dir, name), text)
        if trainer.args.push_to_hub:
            trainer.push_to_hub()
        finished = True
        return trainer
    finally:
        # after an error the other processes may never reach a barrier, so only a finished run waits for them
        release_process_group(*([trainer] if trainer is not None else []), synchronize=finished)


def build_trainer(argv: Sequence[str], callbacks: Sequence[Any] | None = None, quiet: bool = False
                  ) -> tuple[Any, str | None, dict[str, str]]:
    """The `AnchorTrainer` of a recipe, the checkpoint to resume from, and the files to write beside the model.

    The order keeps runs reproducible: everything is checked, then the seed is set, the data
    built (builders draw from their own generators), and only then the model initialized.
    """
    from transformers import set_seed

    from ..collator import AnchorDataCollator
    from ..cpu_fsdp import enable_fsdp_on_cpu
    from ..trainer import AnchorTrainer

    model_args, data_args, anchor_args, training_args = parse_train_args(argv)
    builder, builder_args = resolve_dataset(data_args)
    if model_args.model_name_or_path is not None:
        model_args.model_name_or_path = resolve_model(model_args.model_name_or_path)
    width = model_width(model_args) if anchor_args.needs_hidden_size() else None
    anchor_config = anchor_args.to_anchor_config(hidden_size=width)
    resume = find_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    set_seed(training_args.seed)
    seed = training_args.seed if anchor_args.label_seed is None else anchor_args.label_seed
    tokenizer = named_tokenizer(model_args)
    if builder is None:
        if tokenizer is None:
            raise AnchorConfigError(f"`dataset` = {data_args.dataset!r} needs a tokenizer: set "
                                    "`tokenizer_name_or_path` or `model_name_or_path`")
        built = BuiltData(build_dataset(data_args, tokenizer))
    else:
        context = BuildContext(model_args, training_args, anchor_config, tokenizer, anchor_args.label_draw, seed)
        built = builder.build(builder_args, context)
    if built.tokenizer is not None:
        tokenizer = with_pad_token(built.tokenizer, f"the tokenizer of dataset {data_args.dataset!r}")
    model = with_lora(built.model if built.model is not None else build_model(model_args, tokenizer),
                      model_args.lora_config)
    collator = built.collator
    if collator is None:
        collator = AnchorDataCollator(tokenizer, anchor_config, draw=anchor_args.label_draw, seed=seed)
    enable_fsdp_on_cpu(training_args)
    trainer = AnchorTrainer(model=model, args=training_args, anchor_config=anchor_config,
                            train_dataset=built.train_dataset, data_collator=collator, processing_class=tokenizer,
                            callbacks=list(callbacks or []))
    if quiet:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for callback in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(callback)
    return trainer, resume, built.files


# Fields of `DataArguments` read by the file / Hub loader only (a registered builder has its own).
FILE_LOADER_FIELDS = ("dataset_split", "text_column", "max_length", "max_train_examples")


def resolve_dataset(data_args: DataArguments) -> tuple[DatasetBuilder | None, Any]:
    """The registered builder `dataset` names and its checked settings, or `(None, None)` for a file or Hub dataset.

    Checks before anything is built: the builder's `dataset_args` and `evaluation` sections
    (unknown keys, bad values), and that no setting meant for the other kind of dataset is set.
    """
    name = data_args.dataset
    if not name:
        raise AnchorConfigError("`dataset` is required: a registered dataset "
                                f"({', '.join(registered_datasets()) or 'none registered'}), a local file or folder, "
                                "or a Hub dataset")
    builder = dataset_builder(name)
    if builder is None:
        for section in ("dataset_args", "evaluation"):
            if getattr(data_args, section):
                raise AnchorConfigError(f"`{section}` is set, but `dataset` = {name!r} is a file, folder or Hub "
                                        f"dataset, which takes none (clear it with `--{section} null`); registered "
                                        f"datasets: {', '.join(registered_datasets()) or 'none'} (the experiments "
                                        "register theirs on `import anchor_hf.experiments`)")
        return None, None
    defaults = DataArguments()
    changed = [f for f in FILE_LOADER_FIELDS if getattr(data_args, f) != getattr(defaults, f)]
    if changed:
        raise AnchorConfigError(f"{changed} apply to a file or Hub dataset; dataset {name!r} takes its settings "
                                f"under `dataset_args` (allowed: {[f.name for f in fields(builder.args)]})")
    args = builder.read_args(load_section(data_args.dataset_args, "dataset_args"))
    builder.read_evaluation(load_section(data_args.evaluation, "evaluation"))
    return builder, args


def load_section(value: dict | str | None, name: str) -> dict[str, Any] | None:
    return None if value is None else load_mapping(value, name)


def named_tokenizer(model_args: ModelArguments) -> Any | None:
    """The tokenizer the recipe names (`tokenizer_name_or_path`, else the model's), or None."""
    name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    return None if name is None else load_tokenizer(name)


def model_width(model_args: ModelArguments) -> int:
    """The hidden size of the model the recipe describes, read from its config without building it."""
    from transformers import AutoConfig

    if model_args.model_name_or_path is not None:
        config = AutoConfig.from_pretrained(model_args.model_name_or_path)
        values = vars(config)
    else:
        values = load_mapping(model_args.model_config, "model_config") if model_args.model_config is not None else {}
        if not any(k in values for k in ("hidden_size", "n_embd", "d_model")):
            values = vars(AutoConfig.for_model(model_args.model_type))
    for key in ("hidden_size", "n_embd", "d_model"):
        if isinstance(values.get(key), int):
            return values[key]
    raise AnchorConfigError("cannot tell the model's width (no `hidden_size`, `n_embd` or `d_model` in its config) "
                            "to draw a random `vector`; give the vector as a list")


def with_lora(model: Any, lora_config: dict | str | None) -> Any:
    """`model` wrapped with PEFT LoRA adapters built from `lora_config` (a `LoraConfig`'s keywords), or unchanged."""
    if lora_config is None:
        return model
    from peft import LoraConfig, get_peft_model

    kwargs = {"task_type": "CAUSAL_LM", **load_mapping(lora_config, "lora_config")}
    try:
        return get_peft_model(model, LoraConfig(**kwargs))
    except (TypeError, ValueError) as err:
        raise AnchorConfigError(f"`lora_config` = {kwargs}: {err}") from err


def build_dataset(data_args: DataArguments, tokenizer: Any) -> Any:
    """The training split of a file, folder or Hub dataset, tokenized if it has no `input_ids`."""
    name = data_args.dataset
    ds = load_path(name, data_args.dataset_split)
    if data_args.max_train_examples is not None:
        ds = ds.select(range(min(data_args.max_train_examples, len(ds))))
    if len(ds) == 0:
        raise AnchorDataError(f"`dataset` = {name!r} has 0 rows; there is nothing to train on")
    if "input_ids" not in ds.column_names:
        column = data_args.text_column
        if column not in ds.column_names:
            raise AnchorDataError(f"`dataset` {name!r} has neither `input_ids` nor the text column {column!r}; "
                                  f"columns: {ds.column_names}")
        ds = ds.map(lambda batch: tokenizer(batch[column], truncation=True, max_length=data_args.max_length),
                    batched=True)
    return ds


DATA_FILES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_path(name: str, split: str) -> Any:
    """A dataset from a `save_to_disk` folder, a data file, or (anything else) the Hub.

    A name that can only be a path (absolute, `./`, a trailing `/`, more than one `/`, a data-file
    extension) and does not exist is refused here; sent to the Hub it came back as a raw
    `FileNotFoundError`.
    """
    import datasets

    if os.path.isdir(name):
        ds = datasets.load_from_disk(name)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise AnchorDataError(f"`dataset_split` = {split!r} is not in {name!r}; splits: {list(ds)}")
            ds = ds[split]
        return ds
    extension = os.path.splitext(name)[1].lower()
    if os.path.isfile(name):
        if extension not in DATA_FILES:
            raise AnchorDataError(f"`dataset` = {name!r}: allowed files are {', '.join(DATA_FILES)}")
        if os.path.getsize(name) == 0:
            raise AnchorDataError(f"`dataset` = {name!r} has 0 rows (an empty file); there is nothing to train on")
        try:
            return datasets.load_dataset(DATA_FILES[extension], data_files=name, split="train")
        except Exception as err:  # datasets raises a bare StopIteration or ValueError on files without rows
            raise AnchorDataError(f"`dataset` = {name!r} could not be read as {DATA_FILES[extension]} "
                                  f"({type(err).__name__}: {err}); a file without rows cannot be read") from err
    if name.startswith((os.sep, ".", "~")) or name.endswith(os.sep) or name.count("/") > 1 or extension in DATA_FILES:
        raise AnchorDataError(f"`dataset` = {name!r} is not a file or folder, nor a registered dataset "
                              f"({', '.join(registered_datasets()) or 'none registered'}); give an existing path, "
                              "a registered name or a Hub dataset id")
    try:  # a Hub dataset: the real path for users online
        return datasets.load_dataset(name, split=split)
    except Exception as err:  # offline, missing repo, missing split: say which
        raise AnchorDataError(f"could not load the Hub dataset {name!r} (split {split!r}): "
                              f"{type(err).__name__}: {err}") from err


def build_model(model_args: ModelArguments, tokenizer: Any) -> Any:
    """The model to fine-tune, or a fresh one of `model_type` sized by `model_config`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if model_args.model_name_or_path is not None:
        if model_args.model_config is not None:
            raise AnchorConfigError("`model_config` builds a fresh model and cannot be combined with "
                                    f"`model_name_or_path` = {model_args.model_name_or_path!r}; drop one")
        return AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path)
    overrides = load_mapping(model_args.model_config, "model_config") if model_args.model_config is not None else {}
    special = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
               "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.bos_token_id}
    try:
        config = AutoConfig.for_model(model_args.model_type, **{**special, **overrides})
    except ValueError as err:
        raise AnchorConfigError(f"`model_type` = {model_args.model_type!r}: {err}") from err
    return AutoModelForCausalLM.from_config(config)
