"""The colour-mixing language: `f06 + 30c = 909`-style lines over the 216-colour grid, one token per colour.

The grid is the 6³ web-safe cube: each channel takes one of the levels 0, 0x33, …, 0xff,
and each colour is one word token named by its three web-safe hex digits (`f00` is
red, `00f` blue). Mixing averages two colours channel by channel. A pair is *closed*
when the average lands on the grid (per channel the two levels have the same parity),
so its answer is a colour of the language; only closed pairs of distinct colours are
used, and they are split by unordered pair into train and held-out (docs/method.md §7 row 3:
the published transformer work trained on such a language). Training lines list both
orders of a pair, so held-out pairs are unseen in either order.

Labels come from the answer's colour (`colour_target`), like the names corpus.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from anchor_hf.errors import AnchorDataError
from .corpus import BOS, EOS, PAD, UNK, colour_rows
from .target import ColourTarget

LEVELS = 6
DIGITS = "0369cf"  # web-safe hex digit of each level


def grid_words() -> list[str]:
    """The 216 colour words, `000` … `fff`, in level order (r slowest)."""
    return ["".join(DIGITS[i] for i in levels) for levels in itertools.product(range(LEVELS), repeat=3)]


def word_rgb(word: str) -> tuple[float, float, float]:
    """RGB in [0, 1] of a colour word."""
    if len(word) != 3 or any(ch not in DIGITS for ch in word):
        raise AnchorDataError(f"{word!r} is not a colour word of the mixing language (3 of {DIGITS!r})")
    return tuple(DIGITS.index(ch) / (LEVELS - 1) for ch in word)  # type: ignore[return-value]


def mix(a: str, b: str) -> str | None:
    """The word of the channel-wise average of `a` and `b`, or None when it is off the grid."""
    out = []
    for x, y in zip(a, b):
        total = DIGITS.index(x) + DIGITS.index(y)
        if total % 2:
            return None
        out.append(DIGITS[total // 2])
    return "".join(out)


def closed_pairs() -> list[tuple[str, str, str]]:
    """Every unordered closed pair of distinct colours with its mix: `(a, b, a+b)`, a < b."""
    words = grid_words()
    return [(a, b, m) for a, b in itertools.combinations(words, 2) if (m := mix(a, b)) is not None]


def split_pairs(fraction: float = 0.1, seed: int = 0) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(train, held-out) closed pairs; about `fraction` of them held out, seeded."""
    if not 0.0 <= fraction < 1.0:
        raise AnchorDataError(f"`heldout_fraction` must be in [0, 1), got {fraction}")
    pairs = closed_pairs()
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[:round(fraction * len(pairs))])
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


def line(a: str, b: str, m: str) -> str:
    return f"{a} + {b} = {m}"


def mixing_tokenizer():
    """A word-level `PreTrainedTokenizerFast`: specials, `+`, `=` and the 216 colour words, built locally."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate((PAD, BOS, EOS, UNK, "+", "="))}
    vocab.update({w: len(vocab) + i for i, w in enumerate(grid_words())})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK)


def mixing_dataset(pairs: list[tuple[str, str, str]], tokenizer: Any, target: ColourTarget,
                   label_peak: float = 0.08, label_power: float = 8.0, both_orders: bool = True):
    """A `datasets.Dataset` of encoded mixing lines, labelled by the answer's colour (see `colour_rows`)."""
    from datasets import Dataset

    from .corpus import encode, span_after_bos

    triples = [t for a, b, m in pairs for t in ([(a, b, m), (b, a, m)] if both_orders else [(a, b, m)])]
    texts = [line(*t) for t in triples]
    rows = colour_rows([(text, word_rgb(t[2])) for text, t in zip(texts, triples)], target, label_peak,
                       label_power)
    rows["input_ids"] = [encode(tokenizer, t) for t in texts]
    rows["concept_span"] = span_after_bos(rows["input_ids"])
    rows["text"] = texts
    return Dataset.from_dict(rows)
