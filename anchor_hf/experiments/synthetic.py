"""Synthetic token data with one concept, so training can be run and tested without downloads.

Each example is a short walk over a small vocabulary: it starts at a random token and
moves by a fixed stride, so the next token is predictable and a tiny model's loss falls
within a few steps. A fraction of examples (`concept_rate`) are "concept" examples: a
run of tokens from a reserved block at the top of the vocabulary is written into them.
The concept column holds each example's label probability (docs/method.md §3): `label_rate`
for concept examples, 0 for the rest, so labels stay sparse and are drawn per visit by
the collator. Everything is a function of `seed`: two calls give the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from anchor_hf.errors import AnchorDataError
from anchor_hf.registry import BuildContext, BuiltData, DatasetBuilder, register_dataset

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)
CONCEPT_BLOCK = 8  # reserved concept tokens at the top of the vocabulary


def synthetic_tokenizer(vocab_size: int = 64):
    """A word-level `PreTrainedTokenizerFast` over `<pad> <eos> <unk> t3 … t{V-1}`, built locally.

    It can be saved and pushed with a model like any HF tokenizer; `pad_token_id` is 0 and
    `eos_token_id` is 1.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    _check_vocab(vocab_size)
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({f"t{i}": i for i in range(len(SPECIAL_TOKENS), vocab_size)})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK)


def synthetic_concept_dataset(num_examples: int = 256, seq_len: int = 32, vocab_size: int = 64,
                              concept: str = "marked", concept_rate: float = 0.25, label_rate: float = 0.5,
                              min_len: int | None = None, seed: int = 0) -> Any:
    """Token walks, some carrying a concept, with an example-level label probability column.

    Args:
        num_examples: number of examples.
        seq_len: maximum length in tokens (including the final `<eos>`).
        vocab_size: vocabulary size of the matching `synthetic_tokenizer`; the top
            `CONCEPT_BLOCK` ids are the concept's tokens and appear only in concept examples.
        concept: name of the label column (the `ConceptAnchor.label_column`).
        concept_rate: fraction of examples that carry the concept.
        label_rate: label probability of a concept example (the column's value); 0 for the rest.
        min_len: shortest example; lengths are drawn in `[min_len, seq_len]` so batches need
            padding (default `seq_len // 2`; set it to `seq_len` for equal lengths).
        seed: seed of everything random here.

    Returns:
        a `datasets.Dataset` with `input_ids` (`list[int]`), `<concept>` (`float`) and
        `is_concept` (`int`, the exact membership, for evaluation).
    """
    from datasets import Dataset

    min_len = check_settings(num_examples, seq_len, vocab_size, concept_rate, label_rate, min_len)
    rng = random.Random(seed)
    first = len(SPECIAL_TOKENS)
    plain = vocab_size - CONCEPT_BLOCK - first  # ids first .. first+plain-1 are ordinary tokens
    rows: dict[str, list] = {"input_ids": [], concept: [], "is_concept": []}
    for _ in range(num_examples):
        n = rng.randint(min_len, seq_len) - 1  # room for <eos>
        stride = rng.choice((1, 2, 3))
        start = rng.randrange(plain)
        ids = [first + (start + stride * t) % plain for t in range(n)]
        is_concept = rng.random() < concept_rate
        if is_concept:  # a run of concept tokens somewhere inside the walk
            width = rng.randint(2, max(2, n // 3))
            at = rng.randrange(0, n - width + 1)
            base = vocab_size - CONCEPT_BLOCK
            ids[at:at + width] = [base + (rng.randrange(CONCEPT_BLOCK) + k) % CONCEPT_BLOCK for k in range(width)]
        rows["input_ids"].append(ids + [1])  # 1 = <eos>
        rows[concept].append(float(label_rate) if is_concept else 0.0)
        rows["is_concept"].append(int(is_concept))
    return Dataset.from_dict(rows)


def check_settings(num_examples: int, seq_len: int, vocab_size: int, concept_rate: float, label_rate: float,
                   min_len: int | None) -> int:
    """Raise `AnchorDataError` naming the first bad setting of `synthetic_concept_dataset`; returns `min_len`."""
    _check_vocab(vocab_size)
    for name, value in (("num_examples", num_examples), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AnchorDataError(f"`{name}` must be an int >= 1, got {value!r}")
    min_len = seq_len // 2 if min_len is None else min_len
    if isinstance(min_len, bool) or not isinstance(min_len, int) or not 4 <= min_len <= seq_len:
        raise AnchorDataError(f"`min_len` must be in 4..seq_len ({seq_len}), got {min_len!r}")
    for name, value in (("concept_rate", concept_rate), ("label_rate", label_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise AnchorDataError(f"`{name}` must be a probability in [0, 1], got {value!r}")
    return min_len


def _check_vocab(vocab_size: int) -> None:
    least = len(SPECIAL_TOKENS) + CONCEPT_BLOCK + 4
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < least:
        raise AnchorDataError(f"`vocab_size` must be an int >= {least} (3 special tokens, {CONCEPT_BLOCK} concept "
                              f"tokens and a few ordinary ones), got {vocab_size!r}")


@dataclass
class SyntheticArgs:
    """`dataset: synthetic` settings (`dataset_args`): see `synthetic_concept_dataset`.

    Args:
        examples: number of walks; seq_len, min_len: longest and shortest walk in tokens;
        vocab_size: size of the local word-level tokenizer; concept: the label column;
        concept_rate: share of walks carrying the concept; label_rate: their label probability;
        seed: the data seed (the training seed does not change the data).
    """

    examples: int = 256
    seq_len: int = 32
    min_len: int | None = None
    vocab_size: int = 64
    concept: str = "marked"
    concept_rate: float = 0.25
    label_rate: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self.examples, self.seq_len, self.vocab_size, self.concept_rate, self.label_rate, self.min_len)
        if not isinstance(self.concept, str) or not self.concept:
            raise AnchorDataError(f"`concept` must be a non-empty column name, got {self.concept!r}")


def build(args: SyntheticArgs, context: BuildContext) -> BuiltData:
    """Walks with the concept column, and the word-level tokenizer unless the recipe names one."""
    tokenizer = context.tokenizer if context.tokenizer is not None else synthetic_tokenizer(args.vocab_size)
    data = synthetic_concept_dataset(args.examples, args.seq_len, args.vocab_size, concept=args.concept,
                                     concept_rate=args.concept_rate, label_rate=args.label_rate,
                                     min_len=args.min_len, seed=args.seed)
    return BuiltData(data, tokenizer=tokenizer)


register_dataset(DatasetBuilder("synthetic", SyntheticArgs, build,
                                summary="token walks with one planted concept, built locally"))
