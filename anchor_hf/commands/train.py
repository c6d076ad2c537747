"""`anchor-hf train --config RECIPE.yaml [--key value ...]`: the one training entry point.

Every recipe goes through here, under `python`, `accelerate launch` and `torchrun` alike
(launchers run it as `-m anchor_hf.cli train`, from the installed package). It
parses the recipe (`anchor_hf.train_args`), builds the tokenizer, data, model and
`AnchorTrainer`, trains (resuming if asked), saves the model with `anchor_config.json`,
pushes to the Hub if asked, and always tears the process group down. A launched
multi-process run then leaves without running C++ destructors (`exit_launched_process`),
which is what makes it exit cleanly every time (docs/multiprocess.md).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ..errors import AnchorConfigError, AnchorDataError
from ..train_args import (DataArguments, ModelArguments, find_resume_checkpoint, load_mapping, make_parser,
                          parse_train_args)

HELP = "Train with anchoring from a flat YAML recipe (`--config`) plus `--key value` overrides."


def register(subparsers: Any) -> None:
    # Prefix '+' makes every `--flag` a plain string, so HfArgumentParser sees them all.
    parser = subparsers.add_parser("train", help=HELP, description=HELP, add_help=False, prefix_chars="+")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if "-h" in argv or "--help" in argv:
        make_parser().print_help()
        return 0
    return launch(argv)


def launch(argv: Sequence[str]) -> int:
    """Train as the entry point of a process (`anchor-hf train`, `-m anchor_hf.cli train`); returns 0.

    After a multi-process run the process ends through `exit_launched_process`, with the
    trainer still referenced, so the process group is never destroyed by the garbage collector.
    """
    trainer = run(argv)
    if trainer.args.world_size > 1:
        exit_launched_process(0)
    return 0


def exit_launched_process(code: int) -> NoReturn:
    """End a finished multi-process training process without its C++ teardown.

    Why: when the DDP model (and with it gloo's ProcessGroup) is freed, the ProcessGroup
    destructor joins its worker threads while holding the GIL; a worker that is just freeing
    a tensor from a recent collective needs the GIL, so the process hangs (measured: 1 run
    in 16 with gloo on CPU) or aborts at interpreter exit. Everything is written by now, so
    run the `atexit` handlers (loggers such as W&B finish there), flush, and `os._exit`.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def run(argv: Sequence[str], callbacks: Sequence[Any] | None = None) -> Any:
    """Train as the recipe and flags in `argv` say; returns the trainer.

    Args:
        argv: `[--config RECIPE.yaml] [--key value ...]`.
        callbacks: extra `TrainerCallback`s (tests use one to kill a run mid-way).
    """
    import torch.distributed as dist
    from transformers import set_seed

    from ..collator import AnchorDataCollator
    from ..trainer import AnchorTrainer

    try:
        model_args, data_args, anchor_args, training_args = parse_train_args(argv)
        anchor_config = anchor_args.to_anchor_config()
        resume = find_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
        set_seed(training_args.seed)
        tokenizer = build_tokenizer(model_args, data_args)
        dataset = build_dataset(data_args, tokenizer)
        model = build_model(model_args, tokenizer)
        seed = training_args.seed if anchor_args.label_seed is None else anchor_args.label_seed
        collator = AnchorDataCollator(tokenizer, anchor_config, draw=anchor_args.label_draw, seed=seed)
        trainer = AnchorTrainer(model=model, args=training_args, anchor_config=anchor_config, train_dataset=dataset,
                                data_collator=collator, processing_class=tokenizer, callbacks=list(callbacks or []))
        trainer.train(resume_from_checkpoint=resume)
        trainer.save_model()
        trainer.save_state()  # trainer_state.json: the log history beside the model
        trainer.create_model_card()  # README.md listing the anchors (anchor_hf.hub)
        if data_args.dataset in ("colour_names", "colour_mixing") and trainer.is_world_process_zero():
            from anchor_hf.experiments.colour.spec import save_spec, spec_from_data_args

            save_spec(spec_from_data_args(data_args), training_args.output_dir)  # evaluation rebuilds the corpus
        if training_args.push_to_hub:
            trainer.push_to_hub()
        return trainer
    finally:
        # Without this about 1 run in 10 aborts at exit under gloo (measured: docs/multiprocess.md).
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def build_tokenizer(model_args: ModelArguments, data_args: DataArguments) -> Any:
    """The named tokenizer, the model's, or a local word-level one for synthetic data."""
    name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    if name is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
    elif data_args.dataset in ("colour_names", "colour_mixing"):  # built locally from the corpus
        from anchor_hf.experiments.colour.spec import spec_from_data_args

        tokenizer = spec_from_data_args(data_args).tokenizer()
    elif data_args.dataset == "synthetic":
        from anchor_hf.experiments.synthetic import synthetic_tokenizer

        tokenizer = synthetic_tokenizer(data_args.synthetic_vocab_size)
    else:
        raise AnchorConfigError(f"`dataset` = {data_args.dataset!r} needs a tokenizer: set `tokenizer_name_or_path` "
                                "or `model_name_or_path`")
    if tokenizer.pad_token is None:  # causal LMs often ship without one; the collator needs it
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_dataset(data_args: DataArguments, tokenizer: Any) -> Any:
    """The training split, tokenized if it has no `input_ids`."""
    import datasets

    name = data_args.dataset
    if name == "synthetic":
        from anchor_hf.experiments.synthetic import synthetic_concept_dataset

        ds = synthetic_concept_dataset(
            data_args.synthetic_examples, data_args.synthetic_seq_len, data_args.synthetic_vocab_size,
            concept=data_args.synthetic_concept, concept_rate=data_args.synthetic_concept_rate,
            label_rate=data_args.synthetic_label_rate, min_len=data_args.synthetic_min_len,
            seed=data_args.synthetic_seed)
    elif name in ("colour_names", "colour_mixing"):
        from anchor_hf.experiments.colour.spec import spec_from_data_args

        ds = spec_from_data_args(data_args).train_dataset(tokenizer)
    elif os.path.isdir(name):
        ds = datasets.load_from_disk(name)
        if isinstance(ds, datasets.DatasetDict):
            if data_args.dataset_split not in ds:
                raise AnchorDataError(f"`dataset_split` = {data_args.dataset_split!r} is not in {name!r}; "
                                      f"splits: {list(ds)}")
            ds = ds[data_args.dataset_split]
    elif os.path.isfile(name):
        kind = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}.get(
            os.path.splitext(name)[1].lower())
        if kind is None:
            raise AnchorDataError(f"`dataset` = {name!r}: allowed files are .json, .jsonl, .csv, .parquet")
        ds = datasets.load_dataset(kind, data_files=name, split="train")
    else:  # a Hub dataset: the real path for users online
        ds = datasets.load_dataset(name, split=data_args.dataset_split)
    if data_args.max_train_examples is not None:
        ds = ds.select(range(min(data_args.max_train_examples, len(ds))))
    if "input_ids" not in ds.column_names:
        column = data_args.text_column
        if column not in ds.column_names:
            raise AnchorDataError(f"`dataset` {name!r} has neither `input_ids` nor the text column {column!r}; "
                                  f"columns: {ds.column_names}")
        ds = ds.map(lambda batch: tokenizer(batch[column], truncation=True, max_length=data_args.max_length),
                    batched=True)
    return ds


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
