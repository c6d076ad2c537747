"""Carry concept labels through the dataset preparation of TRL's `SFTTrainer`: tokenize, truncate, pack.

`SFTTrainer._prepare_dataset` tokenizes text, builds `labels` (the prompt masked out for
completion-only loss), cuts `input_ids` and `labels` — only those — to `max_length`, and for
packing keeps only those two columns before concatenating examples into rows. Concept labels
would be dropped or misaligned. So `AnchorTrainerMixin` routes that step through here:
- per-token label columns (token-level labels, 0/1 span columns) are cut like `input_ids`;
- with packing, TRL prepares the examples unpacked and uncut, each example-level label becomes
  a per-token column `anchor_example_<concept>` (the label probability p on the tokens its pull
  pools over, 0 elsewhere), and TRL's own `pack_dataset` packs the label columns with the
  tokens, so labels follow their tokens and `seq_lengths` keeps every example's boundaries.
`SFTAnchorCollator` turns those columns into the anchor masks of each batch TRL collates.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

from .config import AnchorConfig
from .errors import AnchorDataError
from .rows import read_span, read_value

EXAMPLE_PREFIX = "anchor_example_"
PROCESSED = ("input_ids", "labels")


def example_label_column(concept: Any) -> str:
    """The per-token column an example-level label of `concept` becomes when examples are packed."""
    return f"{EXAMPLE_PREFIX}{concept.name}"


def prepare_sft_dataset(prepare: Callable[..., Any], config: AnchorConfig, *args: Any, **kwargs: Any) -> Any:
    """`SFTTrainer._prepare_dataset` (bound as `prepare`, called with `*args, **kwargs`), labels carried along.

    Refuses, before any work, what cannot be carried: a missing label column, token-level
    labels or spans on text that is not tokenized yet, and example-level labels under
    `packing_strategy='wrapped'` (which cuts examples anywhere and keeps no boundaries).
    """
    call = inspect.signature(prepare).bind(*args, **kwargs)
    if "packing" not in call.arguments or "args" not in call.arguments:  # not SFTTrainer's: nothing to carry
        return prepare(*args, **kwargs)
    dataset, sft_args, packing = call.arguments["dataset"], call.arguments["args"], call.arguments["packing"]
    dataset = per_token_spans(dataset, config)
    call.arguments["dataset"] = dataset
    if not packing:
        prepared = prepare(*call.args, **call.kwargs)
        cut = [c for c in token_columns(config, prepared) if c not in PROCESSED]
        if sft_args.max_length is None or not cut:
            return prepared
        return prepared.map(_cut, fn_kwargs={"columns": cut, "keep_end": sft_args.truncation_mode == "keep_end"},
                            **_map_kwargs(prepared, sft_args))
    example_level = [c.name for c in config.concepts if not _is_list(_first(dataset, c.column))]
    if example_level and sft_args.packing_strategy == "wrapped":
        raise AnchorDataError(
            f"`packing_strategy` = 'wrapped' cuts examples anywhere and keeps no boundaries, so the example-level "
            f"labels of {example_level} cannot follow their examples; use packing_strategy='bfd' (the default) or "
            "'bfd_split', or give token-level labels")
    unpacked = copy.copy(sft_args)
    unpacked.max_length, unpacked.shuffle_dataset = None, False  # packing below cuts to max_length itself
    call.arguments.update(args=unpacked, packing=False)
    prepared = prepare(*call.args, **call.kwargs)
    return pack(prepared, config, sft_args)


def pack(dataset: Any, config: AnchorConfig, sft_args: Any) -> Any:
    """Example-level labels to per-token columns, then TRL's packing with every label column alongside."""
    from trl.data_utils import pack_dataset

    map_kwargs = _map_kwargs(dataset, sft_args)
    dataset = dataset.map(_example_labels_per_token, fn_kwargs={"concepts": config.concepts}, **map_kwargs)
    keep = [*PROCESSED, *(c for c in token_columns(config, dataset) if c not in PROCESSED)]
    dataset = dataset.select_columns(keep)
    if sft_args.shuffle_dataset:  # as TRL does: before packing, so examples packed together are unrelated
        dataset = dataset.shuffle(seed=sft_args.seed)
    dataset = pack_dataset(dataset, sft_args.max_length, sft_args.packing_strategy, map_kwargs)
    return dataset.shuffle(seed=sft_args.seed) if sft_args.shuffle_dataset else dataset


def per_token_spans(dataset: Any, config: AnchorConfig) -> Any:
    """Check the label columns; span columns become 0/1 per token (so cutting and packing can follow them).

    Token-level labels and spans count tokens, so they need a dataset that is tokenized
    already (`input_ids`); their lengths must match it.
    """
    columns = list(_first(dataset) or {})
    for c in config.concepts:
        if c.column not in columns:
            raise AnchorDataError(f"the dataset has no concept label column {c.column!r}; columns present: {columns}")
    token_level = [c.column for c in config.concepts if _is_list(_first(dataset, c.column))]
    spans = [c.span_column for c in config.concepts if c.span_column]
    if (token_level or spans) and "input_ids" not in columns:
        raise AnchorDataError(f"token-level labels {token_level} and spans {spans} count tokens, but the dataset has "
                              "no `input_ids`: tokenize it first and give one value per token")
    if not (token_level or spans):
        return dataset
    concepts = [c for c in config.concepts if c.span_column]
    return dataset.map(_spans_per_token, with_indices=True,
                       fn_kwargs={"token_level": token_level, "concepts": concepts})


def token_columns(config: AnchorConfig, dataset: Any) -> list[str]:
    """The columns of `dataset` that hold one value per token and are label columns of `config`."""
    first = _first(dataset) or {}
    names = [c.column for c in config.concepts] + [c.span_column for c in config.concepts if c.span_column]
    names += [example_label_column(c) for c in config.concepts]
    return [n for n in dict.fromkeys(names) if n in first and _is_list(first[n])]


# ---------------------------------------------------------------------- row functions (dataset.map)
def _spans_per_token(example: dict[str, Any], index: int, token_level: list[str], concepts: list[Any]) -> dict:
    n = len(example["input_ids"])
    for column in token_level:
        read_value(example, f"row {index}", column, n)  # one probability per token
    return {c.span_column: [int(x) for x in read_span(example, f"row {index}", c.span_column, n)] for c in concepts}


def _cut(example: dict[str, Any], columns: list[str], keep_end: bool) -> dict:
    n = len(example["input_ids"])
    return {c: (example[c][len(example[c]) - n:] if keep_end else example[c][:n]) for c in columns}


def _example_labels_per_token(example: dict[str, Any], concepts: list[Any]) -> dict:
    n = len(example["input_ids"])
    out = {}
    for c in concepts:
        value = example[c.column]
        if _is_list(value):
            continue
        span = example[c.span_column] if c.span_column else [1] * n
        out[example_label_column(c)] = [float(value) * float(s) for s in span]
    return out


# ---------------------------------------------------------------------- helpers
def _first(dataset: Any, column: str | None = None) -> Any:
    """The first example of `dataset` (or its value in `column`); None when empty."""
    try:
        example = next(iter(dataset))
    except StopIteration:
        return None
    return example if column is None else example.get(column)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (hasattr(value, "dim") and value.dim() > 0)


def _map_kwargs(dataset: Any, sft_args: Any) -> dict[str, Any]:
    from datasets import Dataset

    return {"num_proc": sft_args.dataset_num_proc} if isinstance(dataset, Dataset) else {}
