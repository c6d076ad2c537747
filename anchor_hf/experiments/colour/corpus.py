"""The colour-name corpus: lines `dark pastel green: #56ae57`, a local character tokenizer, held-out names.

Names come from the 949 XKCD survey colours shipped in matplotlib (`xkcd`, the default)
or from the 31,914-name list read in place from `--data-dir` (`colornames`; never
copied into the project). XKCD names are compositional ("bluish purple", "dark pastel
green"), so names held out of training are answerable from their words; held-out names
are chosen only among multi-word names whose every word appears in a training name.

Every line gets the concept's label probability from its hex value
(`colour_target.label_probability`), its similarity to the target, and its exact label,
so the same dataset trains (sparse per-visit labels) and evaluates (exact labels).
Everything is a function of the seed.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from typing import Any, Literal

import torch

from anchor_hf.errors import AnchorDataError
from .target import ColourTarget, exact_labels, hex_to_rgb, label_probability, similarity

Source = Literal["xkcd", "colornames"]
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SEPARATOR = ": #"  # a line is name + SEPARATOR + 6 hex digits
HEX_DIGITS = "0123456789abcdef"
COLORNAMES_FILE = "colornames.csv"


@dataclass(frozen=True)
class ColourName:
    """One named colour: `name` (lower case) and `hex` (`#rrggbb`, lower case)."""

    name: str
    hex: str

    @property
    def rgb(self) -> tuple[float, float, float]:
        return hex_to_rgb(self.hex)

    @property
    def line(self) -> str:
        return f"{self.name}{SEPARATOR}{self.hex[1:]}"

    @property
    def prompt(self) -> str:
        """What the model is given to complete with the six hex digits."""
        return f"{self.name}{SEPARATOR}"


def load_names(source: Source = "xkcd", data_dir: str | None = None, max_names: int | None = None,
               seed: int = 0) -> list[ColourName]:
    """Named colours, sorted by name, duplicates (by lower-cased name) dropped.

    Args:
        source: `xkcd` (matplotlib's `XKCD_COLORS`) or `colornames` (`data_dir/colornames.csv`).
        data_dir: folder holding `colornames.csv` (e.g. `../shared/datasets/colornames`).
        max_names: keep a seeded random subset of this many names (all when None).
        seed: seed of that subset.
    """
    if source == "xkcd":
        from matplotlib.colors import XKCD_COLORS

        pairs = [(key.split(":", 1)[1], value) for key, value in XKCD_COLORS.items()]
    elif source == "colornames":
        if data_dir is None:
            raise AnchorDataError("`corpus` = 'colornames' needs `data_dir`, the folder holding colornames.csv "
                                  "(e.g. ../shared/datasets/colornames)")
        path = os.path.join(data_dir, COLORNAMES_FILE)
        if not os.path.isfile(path):
            raise AnchorDataError(f"`data_dir` = {data_dir!r} has no {COLORNAMES_FILE}")
        with open(path, encoding="utf-8") as f:
            pairs = [(row["name"], row["hex"]) for row in csv.DictReader(f)]
    else:
        raise AnchorDataError(f"`source` must be 'xkcd' or 'colornames', got {source!r}")
    seen: dict[str, ColourName] = {}
    for name, value in pairs:
        key = " ".join(name.lower().split())
        if key and key not in seen and all(ch.isprintable() for ch in key):
            hex_to_rgb(value)  # raises on a malformed entry
            seen[key] = ColourName(key, "#" + value.strip().lstrip("#").lower())
    names = sorted(seen.values(), key=lambda c: c.name)
    if max_names is not None and max_names < len(names):
        names = sorted(random.Random(seed).sample(names, max_names), key=lambda c: c.name)
    return names


def split_heldout(names: list[ColourName], fraction: float = 0.1, seed: int = 0
                  ) -> tuple[list[ColourName], list[ColourName]]:
    """(train, held-out): about `fraction` of the names, each answerable from training words.

    A name is eligible when it has at least two words and each of its words occurs in
    some other name; eligible names are drawn in a seeded order and kept only while every
    word still occurs in a remaining training name.
    """
    if not 0.0 <= fraction < 1.0:
        raise AnchorDataError(f"`heldout_fraction` must be in [0, 1), got {fraction}")
    want = round(fraction * len(names))
    counts: dict[str, int] = {}
    for c in names:
        for word in set(c.name.split()):
            counts[word] = counts.get(word, 0) + 1
    order = list(range(len(names)))
    random.Random(seed).shuffle(order)
    held: set[int] = set()
    for i in order:
        if len(held) >= want:
            break
        words = set(names[i].name.split())
        if len(words) >= 2 and all(counts[w] >= 2 for w in words):
            held.add(i)
            for w in words:
                counts[w] -= 1
    train = [c for i, c in enumerate(names) if i not in held]
    heldout = [c for i, c in enumerate(names) if i in held]
    return train, heldout


def char_tokenizer(texts: list[str]):
    """A character-level `PreTrainedTokenizerFast` over every character in `texts` plus the hex digits.

    Built locally (nothing downloaded) and saved with the model by the Trainer. Special
    tokens: `<pad>` 0, `<bos>` 1, `<eos>` 2, `<unk>` 3. Each character is one token, so the
    six hex digits of a line are six predictions.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("".join(texts)) | set(HEX_DIGITS) | set(SEPARATOR))
    vocab = {tok: i for i, tok in enumerate((PAD, BOS, EOS, UNK))}
    vocab.update({ch: len(vocab) + i for i, ch in enumerate(chars)})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK)


def word_tokenizer(texts: list[str]):
    """A word-level `PreTrainedTokenizerFast`: each name word, `:`, `#` and each hex digit is one token.

    Built locally from the corpus (nothing downloaded) and saved with the model. It reads the
    *spaced* form of a line (`spaced`: `dark pastel green : # 5 6 a e 5 7`), so a name is a
    few word tokens whose colours the model can compose (held-out names reuse training
    words), and the answer is still six one-digit predictions. Memorizes the XKCD names
    several times faster than characters on a CPU budget.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in texts for w in spaced(t).split()} | set(HEX_DIGITS) | {":", "#"})
    vocab = {tok: i for i, tok in enumerate((PAD, BOS, EOS, UNK))}
    vocab.update({w: len(vocab) + i for i, w in enumerate(words)})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                        unk_token=UNK)
    tokenizer.init_kwargs["colour_spaced"] = True  # saved with it: `encode` spaces lines for this tokenizer
    return tokenizer


def spaced(text: str) -> str:
    """A line in the word tokenizer's form: `name : # d d d d d d` (hex digits apart)."""
    if SEPARATOR in text:
        name, digits = text.split(SEPARATOR, 1)
        return f"{name} : # {' '.join(digits)}".strip()
    if text.startswith("#") and ": " in text:  # a reverse line `#rrggbb: name`
        digits, name = text[1:].split(": ", 1)
        return f"# {' '.join(digits)} : {name}"
    return text


def is_spaced(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "init_kwargs", {}).get("colour_spaced"))


def encode(tokenizer: Any, text: str, eos: bool = True) -> list[int]:
    """`<bos>` + the tokens of `text` (+ `<eos>`), as ids; spaced first for a word tokenizer."""
    if is_spaced(tokenizer):
        text = spaced(text)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.bos_token_id, *ids, *([tokenizer.eos_token_id] if eos else [])]


def span_after_bos(input_ids: list[list[int]]) -> list[list[int]]:
    """`concept_span` column: `[1, len)` per line, every position but `<bos>`.

    The `<bos>` state is the same in every line at every layer (it attends only to itself),
    so a pooled pull may latch onto it: one state on the axis then satisfies the pull for
    every labelled line without saying anything about the colour (docs/method.md §8, measured
    here: at ≈2.5% labelled lines the anchored AUROC fell to 0.5).
    """
    return [[1, len(ids)] for ids in input_ids]


def colour_rows(entries: list[tuple[str, tuple[float, float, float]]], target: ColourTarget,
                label_peak: float, label_power: float) -> dict[str, list[Any]]:
    """Label columns for `(text, rgb)` entries: `concept` (label probability), `similarity`, `is_target`."""
    rgb = torch.tensor([e[1] for e in entries], dtype=torch.float32).reshape(-1, 3)
    sim = similarity(rgb, target)
    return {"concept": label_probability(sim, label_peak, label_power).tolist(), "similarity": sim.tolist(),
            "is_target": exact_labels(sim).int().tolist(), "rgb": rgb.tolist()}


def names_dataset(names: list[ColourName], tokenizer: Any, target: ColourTarget, label_peak: float = 0.08,
                  label_power: float = 8.0, reverse: bool = False, answer_only: bool = False):
    """A `datasets.Dataset` of encoded lines with label columns (see `colour_rows`).

    Args:
        reverse: also add the reverse lines `#rrggbb: name` (hex first), a second task
            on the same colours; evaluation reads the forward lines only.
        answer_only: put the language-model loss on the answer only (the six hex digits and
            `<eos>` of forward lines; the name of reverse lines), via a `labels` column with
            -100 elsewhere. The model then spends no capacity on spelling names, which
            memorizes the colours several times faster on a CPU budget.
    """
    from datasets import Dataset

    texts = [c.line for c in names]
    rgbs = [c.rgb for c in names]
    if reverse:
        texts += [f"#{c.hex[1:]}: {c.name}" for c in names]
        rgbs += rgbs
    rows = colour_rows(list(zip(texts, rgbs)), target, label_peak, label_power)
    rows["input_ids"] = [encode(tokenizer, t) for t in texts]
    rows["concept_span"] = span_after_bos(rows["input_ids"])
    rows["text"] = texts
    if answer_only:
        colon = tokenizer.convert_tokens_to_ids(":")
        rows["labels"] = [_answer_labels(ids, colon, reverse_line=i >= len(names))
                          for i, ids in enumerate(rows["input_ids"])]
    return Dataset.from_dict(rows)


def _answer_labels(ids: list[int], colon: int, reverse_line: bool) -> list[int]:
    """`ids` with the prompt (through the `:` before the answer) set to -100.

    The answer of a forward line follows its last `:` (a name may hold one); that of a
    reverse line follows its first.
    """
    where = [i for i, t in enumerate(ids) if t == colon]
    cut = (where[0] if reverse_line else where[-1]) + 1
    return [-100] * cut + ids[cut:]
