"""A colour corpus and its labels as one object: the spec, its tokenizer, its splits.

`dataset: colour_names` (XKCD or the colornames list) and `dataset: colour_mixing` read a
recipe's `dataset_args` into a `ColourSpec` (`builders.py`), so training and evaluation
(`anchor_hf.experiments.colour.lm`) rebuild exactly the same splits from the same spec,
saved beside each trained model as `colour_spec.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from anchor_hf.errors import AnchorDataError
from anchor_hf.io import write_text
from .corpus import ColourName, char_tokenizer, load_names, names_dataset, split_heldout, word_tokenizer
from .mixing import mixing_dataset, mixing_tokenizer, split_pairs, word_rgb
from .target import ColourTarget, destination_probability, exact_labels, parse_target, similarity

Corpus = Literal["xkcd", "colornames", "mixing"]
SPEC_FILE = "colour_spec.json"


@dataclass(frozen=True)
class ColourSpec:
    """A colour corpus and its concept labels.

    Args:
        corpus: `xkcd` (949 names), `colornames` (the 31,914-name list in `data_dir`) or
            `mixing` (the 216-colour mixing language).
        concept: target colour (`red`, any hue/XKCD name, or `#rrggbb`).
        data_dir: folder holding `colornames.csv` (only for `colornames`).
        heldout_fraction: share of names / closed pairs held out of training.
        label_peak, label_power: label probability `peak · similarity^power` (docs/method.md §3).
        seed: seed of the held-out split (and of the name subset).
        max_names: keep a random subset of this many names (`colornames` is large).
        reverse: also train on `#rrggbb: name` lines.
        answer_only: language-model loss on the answers only (names corpora).
        tokenizer_kind: `word` (name words, `:`, `#`, hex digits) or `char` (one token per character).
        exclude_target: drop every training item of the target colour (exact label, similarity ≥ 0.5):
            the never-saw-it model that removal is measured against. The tokenizer and the
            held-out split stay those of the full corpus, so models compare item for item.
        destination: a redirect destination colour (`#808080`, a hue or XKCD name), or None. When
            set, the training split gets a `destination` column of its label probabilities
            (`target.destination_probability`: achromatic labels for a grey), for a destination
            concept to be pulled by (docs/method.md §10).
        destination_peak, destination_power: the destination labels' peak and power.
    """

    corpus: Corpus = "xkcd"
    concept: str = "red"
    data_dir: str | None = None
    heldout_fraction: float = 0.1
    label_peak: float = 1.0
    label_power: float = 8.0
    seed: int = 0
    max_names: int | None = None
    reverse: bool = False
    answer_only: bool = False
    tokenizer_kind: Literal["word", "char"] = "word"
    exclude_target: bool = False
    destination: str | None = None
    destination_peak: float = 1.0
    destination_power: float = 3.0

    def __post_init__(self) -> None:
        if self.corpus not in ("xkcd", "colornames", "mixing"):
            raise AnchorDataError(f"`corpus` must be 'xkcd', 'colornames' or 'mixing', got {self.corpus!r}")
        if self.tokenizer_kind not in ("word", "char"):
            raise AnchorDataError(f"`tokenizer` must be 'word' or 'char', got {self.tokenizer_kind!r}")
        parse_target(self.concept)  # raises with the allowed colours
        if self.destination is not None:
            if parse_target(self.destination).rgb == self.target.rgb:
                raise AnchorDataError(f"`destination` = {self.destination!r} is the target colour itself; a "
                                      "redirect destination must be another colour")
            destination_probability(torch.zeros(1, 3), parse_target(self.destination), self.destination_peak,
                                    self.destination_power)  # raises on a bad peak or power

    @property
    def target(self) -> ColourTarget:
        return parse_target(self.concept)

    @property
    def dataset(self) -> str:
        return "colour_mixing" if self.corpus == "mixing" else "colour_names"

    def names(self) -> tuple[list[ColourName], list[ColourName]]:
        """(train, held-out) names of a names corpus."""
        names = load_names(self.corpus, self.data_dir, self.max_names, self.seed)  # type: ignore[arg-type]
        return split_heldout(names, self.heldout_fraction, self.seed)

    def pairs(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        """(train, held-out) closed pairs of the mixing language."""
        return split_pairs(self.heldout_fraction, self.seed)

    def tokenizer(self) -> Any:
        """The corpus tokenizer, built locally from every name (or the mixing words)."""
        if self.corpus == "mixing":
            return mixing_tokenizer()
        train, heldout = self.names()
        build = word_tokenizer if self.tokenizer_kind == "word" else char_tokenizer
        return build([c.line for c in train + heldout])

    def train_dataset(self, tokenizer: Any) -> Any:
        """The training split with `concept` (label probability), `similarity`, `is_target`, `rgb`,
        and `destination` (the destination's label probability) when a destination is set."""
        dataset = self._split(tokenizer)
        if self.destination is None:
            return dataset
        p = destination_probability(torch.tensor(dataset["rgb"]), parse_target(self.destination),
                                    self.destination_peak, self.destination_power)
        return dataset.add_column("destination", p.tolist())

    def _split(self, tokenizer: Any) -> Any:
        if self.corpus == "mixing":
            pairs = self.pairs()[0]
            if self.exclude_target:
                keep = ~exact_labels(similarity(torch.tensor([word_rgb(m) for _, _, m in pairs]), self.target))
                pairs = [p for p, k in zip(pairs, keep.tolist()) if k]
            return mixing_dataset(pairs, tokenizer, self.target, self.label_peak, self.label_power)
        names = self.names()[0]
        if self.exclude_target:
            keep = ~exact_labels(similarity(torch.tensor([c.rgb for c in names]), self.target))
            names = [c for c, k in zip(names, keep.tolist()) if k]
        return names_dataset(names, tokenizer, self.target, self.label_peak, self.label_power,
                             reverse=self.reverse, answer_only=self.answer_only)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """The text of `colour_spec.json`."""
        return json.dumps(self.to_dict(), indent=1) + "\n"


def save_spec(spec: ColourSpec, folder: str) -> str:
    """Write `colour_spec.json` beside a trained model (atomically), so its corpus can be rebuilt exactly later."""
    return write_text(os.path.join(folder, SPEC_FILE), spec.to_json())


def load_spec(folder: str) -> ColourSpec | None:
    """The `ColourSpec` saved beside a model by `anchor-hf train`, or None if there is none."""
    path = os.path.join(folder, SPEC_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            fields = json.load(f)
        return ColourSpec(**fields)
    except (ValueError, TypeError) as err:
        raise AnchorDataError(f"{path} is not a colour spec ({err}); allowed fields: "
                              f"{sorted(ColourSpec.__dataclass_fields__)}") from err
