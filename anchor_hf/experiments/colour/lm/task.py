"""One evaluation interface over both colour corpora: items, their colours, and the model's answers.

A `ColourTask` holds the memorized (training) and held-out items of a corpus — names
(`name: #rrggbb`) or closed mixing pairs (`a + b = m`) — with each item's true colour,
similarity to the target and exact label (`similarity ≥ 0.5`). `answer` reads the
model's colour for any items, under whatever intervention hooks are active, so every
measurement below (task error, suppression, ablation) goes through one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..corpus import encode
from ..mixing import line as mixing_line, word_rgb
from ..spec import ColourSpec
from ..target import exact_labels, similarity
from .decode import mix_rgb, predict_mix, predict_rgb

MAX_STATE_LINES = 2000  # lines whose hidden states are measured (the mixing corpus has 5k)


@dataclass
class ItemSet:
    """Items of one split: `items` (names or pairs), `rgb [N, 3]`, `sim [N]`, `target [N]` bool."""

    items: list[Any]
    rgb: torch.Tensor
    sim: torch.Tensor
    target: torch.Tensor


class ColourTask:
    """The items of a `ColourSpec`'s corpus and how to read a model's answers to them."""

    def __init__(self, spec: ColourSpec) -> None:
        self.spec = spec
        self.is_mixing = spec.corpus == "mixing"
        train, heldout = spec.pairs() if self.is_mixing else spec.names()
        self.train, self.heldout = self._set(train), self._set(heldout)

    def _set(self, items: list[Any]) -> ItemSet:
        if self.is_mixing:
            rgb = torch.tensor([word_rgb(m) for _, _, m in items], dtype=torch.float32).reshape(-1, 3)
        else:
            rgb = torch.tensor([c.rgb for c in items], dtype=torch.float32).reshape(-1, 3)
        sim = similarity(rgb, self.spec.target)
        return ItemSet(list(items), rgb, sim, exact_labels(sim))

    def answer(self, model: nn.Module, tokenizer: Any, items: list[Any]) -> tuple[torch.Tensor, list[str] | None]:
        """(colour `[N, 3]` the model answers, the answer words for mixing or None)."""
        if self.is_mixing:
            words = predict_mix(model, tokenizer, items)
            return mix_rgb(words), words
        return predict_rgb(model, tokenizer, items), None

    def exact_match(self, words: list[str] | None, items: list[Any]) -> float | None:
        """Share of mixing answers that are exactly right (None for names)."""
        if words is None:
            return None
        return sum(w == m for w, (_, _, m) in zip(words, items)) / max(1, len(items))

    def state_lines(self, tokenizer: Any) -> tuple[list[list[int]], ItemSet]:
        """Encoded full training lines (at most `MAX_STATE_LINES`, evenly spaced) and their item set."""
        step = max(1, len(self.train.items) // MAX_STATE_LINES)
        keep = list(range(0, len(self.train.items), step))[:MAX_STATE_LINES]
        items = [self.train.items[i] for i in keep]
        texts = [mixing_line(*p) for p in items] if self.is_mixing else [c.line for c in items]
        subset = ItemSet(items, self.train.rgb[keep], self.train.sim[keep], self.train.target[keep])
        return [encode(tokenizer, t) for t in texts], subset
