"""What a probe run reads: a model folder, its anchor config, and a table of labelled texts.

Every check here runs before any model is loaded, so a wrong path, a missing
`anchor_config.json`, an unknown concept or a missing label column fails in a second
with a message naming the field, the value and what is allowed.
Data: a JSONL/JSON file, a CSV file, or a folder written by `datasets.save_to_disk`,
with a text column and one column per concept holding label probabilities in [0, 1]
(exact 0/1 labels for evaluation, docs/method.md §3).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config import CONFIG_NAME, AnchorConfig
from ..errors import AnchorCheckpointError, AnchorDataError

MODEL_FILES = ("config.json", "adapter_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


@dataclass
class ProbeData:
    """Texts and their label columns; `labels[column]` is `[N]` float in [0, 1]."""

    texts: list[str]
    labels: dict[str, torch.Tensor]
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def check_model_folder(path: str) -> None:
    """Raise unless `path` is a folder with a model (or adapter) config and a tokenizer."""
    if not os.path.isdir(path):
        raise AnchorCheckpointError(f"model folder {path!r} does not exist (or is not a folder); pass the "
                                    "folder written by AnchorTrainer.save_model")
    if not any(os.path.isfile(os.path.join(path, f)) for f in MODEL_FILES):
        raise AnchorCheckpointError(f"model folder {path!r} has neither config.json nor adapter_config.json; "
                                    "is it a saved model?")
    if not any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise AnchorCheckpointError(f"model folder {path!r} has no tokenizer files (one of {list(TOKENIZER_FILES)}); "
                                    "save the tokenizer beside the model (Trainer(processing_class=tokenizer))")


def load_anchor_config(model_dir: str, path: str | None = None) -> tuple[AnchorConfig, str]:
    """The anchor config at `path` (a folder or file), by default the model folder's `anchor_config.json`."""
    source = path if path is not None else model_dir
    if path is not None and not os.path.exists(path):
        raise AnchorCheckpointError(f"anchor config {path!r} does not exist; pass a folder holding {CONFIG_NAME} "
                                    "or the file itself")
    if path is None and not os.path.isfile(os.path.join(model_dir, CONFIG_NAME)):
        raise AnchorCheckpointError(f"model folder {model_dir!r} has no {CONFIG_NAME}; pass --anchor-config, or "
                                    "save the model with AnchorTrainer.save_model")
    cfg = AnchorConfig.from_pretrained(source)
    file = source if os.path.isfile(source) else os.path.join(source, CONFIG_NAME)
    return cfg, file


def check_concepts(cfg: AnchorConfig, names: Sequence[str] | None) -> list[str]:
    """The concepts to probe (default: all of the config's); raises for unknown names."""
    if not names:
        return [c.name for c in cfg.concepts]
    for name in names:
        cfg.concept(name)  # AnchorConfigError listing the known concepts
    return list(dict.fromkeys(names))


def _read_columns(path: str, split: str | None) -> dict[str, list[Any]]:
    if os.path.isdir(path):
        from datasets import Dataset, DatasetDict, load_from_disk

        try:
            data = load_from_disk(path)
        except FileNotFoundError as err:
            raise AnchorDataError(f"data folder {path!r} is not a dataset saved with `save_to_disk` ({err})") from err
        if isinstance(data, DatasetDict):
            splits = list(data)
            if split is None and len(splits) == 1:
                split = splits[0]
            if split not in data:
                raise AnchorDataError(f"`split` = {split!r} is not in the dataset at {path!r}; splits: {splits}")
            data = data[split]
        if not isinstance(data, Dataset):
            raise AnchorDataError(f"{path!r} holds a {type(data).__name__}, not a Dataset")
        return {c: data[c] for c in data.column_names}
    if not os.path.isfile(path):
        raise AnchorDataError(f"data {path!r} does not exist; pass a .jsonl, .json or .csv file or a "
                              "datasets folder")
    ext = os.path.splitext(path)[1].lower()
    if split is not None:
        raise AnchorDataError(f"`split` = {split!r} only applies to a datasets folder, but {path!r} is a file")
    if ext in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            rows = json.loads(text) if ext == ".json" and text.lstrip().startswith("[") else \
                [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise AnchorDataError(f"{path!r} is not valid JSON lines ({err})") from err
    elif ext == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        raise AnchorDataError(f"data file {path!r} has extension {ext!r}; allowed: .jsonl, .json, .csv, or a "
                              "datasets folder")
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise AnchorDataError(f"{path!r} holds no rows of named columns")
    columns: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        for key in row:
            columns.setdefault(key, [None] * i)
        for key, values in columns.items():
            values.append(row.get(key))
    return columns


def _label(column: str, index: int, value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise AnchorDataError(f"row {index}: label column {column!r} = {value!r} is not a number "
                              "(allowed: a probability in [0, 1])") from None
    if not math.isfinite(p) or not 0.0 <= p <= 1.0:
        raise AnchorDataError(f"row {index}: label column {column!r} = {p} is not a probability (allowed 0..1)")
    return p


def load_probe_data(path: str, text_column: str, label_columns: Sequence[str], split: str | None = None,
                    max_examples: int | None = None) -> ProbeData:
    """Read texts and label columns; raises `AnchorDataError` naming any missing or bad column."""
    columns = _read_columns(path, split)
    missing = [c for c in [text_column, *label_columns] if c not in columns]
    if missing:
        raise AnchorDataError(f"data {path!r} has no column {missing}; columns present: {sorted(columns)}. "
                              "Each concept needs a label column (ConceptAnchor.label_column), and the text "
                              "column is set with --text-column")
    n = len(columns[text_column]) if max_examples is None else min(max_examples, len(columns[text_column]))
    texts = columns[text_column][:n]
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise AnchorDataError(f"row {i}: text column {text_column!r} = {text!r} is not a non-empty string")
    labels = {c: torch.tensor([_label(c, i, v) for i, v in enumerate(columns[c][:n])]) for c in label_columns}
    return ProbeData(texts=list(texts), labels=labels, source=path)


def pad_batches(sequences: Sequence[Sequence[int]], pad_id: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Right-padded `input_ids` + `attention_mask` batches of already-encoded sequences.

    Right padding keeps positions aligned across examples, as `make_batches` does for texts.
    """
    out = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        t = max(len(x) for x in chunk)
        ids = torch.full((len(chunk), t), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), t), dtype=torch.long)
        for i, x in enumerate(chunk):
            ids[i, :len(x)] = torch.as_tensor(list(x), dtype=torch.long)
            mask[i, :len(x)] = 1
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def make_batches(tokenizer: Any, texts: Sequence[str], batch_size: int,
                 max_length: int) -> list[dict[str, torch.Tensor]]:
    """Tokenize into right-padded batches (positions line up across examples, for per-position profiles)."""
    side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "right"
    try:
        return [dict(tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                               max_length=max_length, return_tensors="pt"))
                for i in range(0, len(texts), batch_size)]
    finally:
        tokenizer.padding_side = side


def load_model_and_tokenizer(path: str, device: str) -> tuple[torch.nn.Module, Any]:
    """A causal LM (or a PEFT adapter over its base, unmerged) in eval mode on `device`, and its tokenizer."""
    from ..io import load_model, load_tokenizer

    return load_model(path, device=device), load_tokenizer(path)
