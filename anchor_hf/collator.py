"""`AnchorDataCollator`: causal-LM padding plus the concept-label masks the regularizer needs.

Labels are sparse and noisy by design (docs/method.md §3): each example carries a label
probability per concept, and each time it is batched it is labelled with that probability
(a Bernoulli draw per visit), so the same example is labelled on some visits and not on
others. `draw="expected"` uses the probabilities as fixed weights instead (exact labels
for evaluation are probabilities of 0 or 1).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .config import MODEL_COLUMNS, AnchorConfig
from .errors import AnchorDataError
from .regularizer import AnchorMasks
from .rows import check_rows, read_ids, read_labels, read_mask, read_span, read_value

SPAN_WEIGHTS = "anchor_span_weights"
SPAN_MASK = "anchor_span_mask"
TOKEN_WEIGHTS = "anchor_token_weights"
SEGMENT_IDS = "anchor_segment_ids"
SPAN_ROWS = "anchor_span_rows"  # [S] batch row of each example when a row holds several (packed batches)
WINDOW = "anchor_window"  # [C + 1] denominators over the optimizer step, added by the trainer
ANCHOR_KEYS = (SPAN_WEIGHTS, SPAN_MASK, TOKEN_WEIGHTS, SEGMENT_IDS, SPAN_ROWS, WINDOW)
RANK_SEED_STRIDE = 7919  # label seeds of processes differ by this, so they draw independently


def masks_from_batch(batch: dict[str, Any]) -> AnchorMasks:
    """The regularizer's masks from a collated batch (live = segment id ≥ 0)."""
    return AnchorMasks(live=batch[SEGMENT_IDS] >= 0, span_weights=batch[SPAN_WEIGHTS],
                       span_mask=batch[SPAN_MASK], token_weights=batch[TOKEN_WEIGHTS], span_rows=batch.get(SPAN_ROWS))


class AnchorCollatorBase:
    """What every anchor collator shares: the config, its columns, and seedable label draws.

    Subclass it for inputs that are not token sequences (the colour autoencoder's RGB
    vectors); the trainer accepts any subclass whose batches carry the `ANCHOR_KEYS` masks.
    """

    def __init__(self, config: AnchorConfig, draw: Literal["bernoulli", "expected"] = "bernoulli",
                 seed: int = 0) -> None:
        if draw not in ("bernoulli", "expected"):
            raise AnchorDataError(f"`draw` must be 'bernoulli' or 'expected', got {draw!r}")
        self.config = config
        self.draw = draw
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._process_seed = seed  # `seed` offset by the process index (`seed_for_process`)
        self._worker_seeded = False

    # Concept columns must survive `remove_unused_columns`; the trainer asks for them here.
    @property
    def columns(self) -> list[str]:
        cols = [c.column for c in self.config.concepts]
        cols += [c.span_column for c in self.config.concepts if c.span_column]
        return cols

    def seed_for_process(self, rank: int) -> None:
        """Restart the label draws from `seed + RANK_SEED_STRIDE·rank` (the trainer calls it per process).

        `seed` itself is left alone, so building a second trainer on this collator gives the
        same offset again rather than adding it twice.
        """
        self._process_seed = self.seed + RANK_SEED_STRIDE * rank
        self.generator.manual_seed(self._process_seed)

    def missing_columns(self, columns: Sequence[str]) -> list[str]:
        """The label columns this collator needs that `columns` lacks."""
        return [c for c in self.columns if c not in columns]

    def state_dict(self) -> dict[str, Any]:
        """RNG state of the label draws, so a resumed run draws the same labels."""
        return {"generator": self.generator.get_state().tolist(), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))

    def expected(self) -> AnchorCollatorBase:
        """A copy that weighs each label by its probability instead of drawing (for evaluation).

        Evaluation with it is deterministic, and it never advances the training draws (the
        generator is shared, but `expected` never reads it).
        """
        view = copy.copy(self)
        view.draw = "expected"
        return view

    def draw_labels(self, probs: torch.Tensor) -> torch.Tensor:
        """Per-visit labels: Bernoulli draws of `probs` (or the probabilities themselves when `expected`)."""
        self._seed_worker()
        if self.draw == "bernoulli":
            return torch.bernoulli(probs, generator=self.generator)
        return probs

    def _seed_worker(self) -> None:
        if self._worker_seeded:
            return
        self._worker_seeded = True
        info = torch.utils.data.get_worker_info()
        if info is not None:  # each worker holds a copy: without this they would all draw alike
            self.generator.manual_seed(self._process_seed + 1000003 * (info.id + 1))


@dataclass
class _Example:
    """One example as read by `AnchorDataCollator._read`: per concept a probability or one per token,
    and, for an example-level label with a span column, the span (None: the whole example)."""

    ids: list[int]
    mask: list[int]
    labels: list[int] | None
    values: list[float | list[float]]
    spans: list[list[bool] | None]


class AnchorDataCollator(AnchorCollatorBase):
    """Pads causal-LM examples and draws per-visit concept labels.

    Each example has `input_ids` (and optionally `attention_mask`, `labels`), and per
    concept a column named by `ConceptAnchor.column` holding either
    - a float `p`: an example-level label probability, pooled over the example's live
      tokens (or over its `span_column`: 0/1 per token, or `[start, end)`), or
    - a list of floats aligned with `input_ids`: token-level label probabilities.
    Labels default to `input_ids` with pads set to -100, as
    `DataCollatorForLanguageModeling(mlm=False)` does.

    Args:
        tokenizer: gives `pad_token_id` (falls back to `eos_token_id`) and `padding_side`.
        config: the anchor config whose concepts' columns are read.
        draw: `"bernoulli"` draws labels per visit; `"expected"` uses the probabilities as weights.
        seed: seed of the label draws (each dataloader worker offsets it by its id).
        pad_to_multiple_of: pad the length up to a multiple of this.
    """

    def __init__(self, tokenizer: Any, config: AnchorConfig, draw: Literal["bernoulli", "expected"] = "bernoulli",
                 seed: int = 0, pad_to_multiple_of: int | None = None) -> None:
        super().__init__(config, draw, seed)
        pad_id = getattr(tokenizer, "pad_token_id", None)
        if pad_id is None:
            pad_id = getattr(tokenizer, "eos_token_id", None)
        if pad_id is None:
            raise AnchorDataError("the tokenizer has neither `pad_token_id` nor `eos_token_id`; set one to pad")
        side = getattr(tokenizer, "padding_side", "right")
        if side not in ("left", "right"):
            raise AnchorDataError(f"`tokenizer.padding_side` must be 'left' or 'right', got {side!r}")
        # Trainer saves `data_collator.tokenizer` beside the model; only keep one that can be saved.
        self.tokenizer = tokenizer if hasattr(tokenizer, "save_pretrained") else None
        self.pad_token_id = int(pad_id)
        self.padding_side = side
        self.pad_to_multiple_of = pad_to_multiple_of
        self._warned_dropped: set[str] = set()

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # Each example is read and checked in Python (`rows`), then every tensor is built once for
        # the whole batch: a few tensor ops per concept instead of a dozen per example and concept.
        if not features:
            raise AnchorDataError("cannot collate an empty list of examples")
        read = [self._read(f, f"example {i} of the batch") for i, f in enumerate(features)]
        t = max(len(r.ids) for r in read)
        if self.pad_to_multiple_of:
            t = math.ceil(t / self.pad_to_multiple_of) * self.pad_to_multiple_of
        b, c = len(read), len(self.config.concepts)
        input_ids = self._pad([r.ids for r in read], t, self.pad_token_id, torch.long)  # [B, T]
        attention = self._pad([r.mask for r in read], t, 0, torch.long)
        live = attention.bool()
        labels = torch.where(live, input_ids, torch.full_like(input_ids, -100))  # labels default to the ids
        if any(r.labels is not None for r in read):  # given labels replace the default in their rows
            given = torch.tensor([r.labels is not None for r in read]).unsqueeze(-1)
            rows = [r.labels if r.labels is not None else r.mask for r in read]
            labels = torch.where(given, self._pad(rows, t, -100, torch.long), labels)
        segment = torch.where(live, torch.arange(b).unsqueeze(-1), torch.full_like(input_ids, -1))
        span_w = torch.tensor([[v if isinstance(v, float) else 0.0 for v in r.values] for r in read],
                              dtype=torch.float32).reshape(b, c)
        span_m = torch.zeros((b, c, t), dtype=torch.bool)
        token_p = torch.zeros((b, c, t))
        for j in range(c):
            whole = torch.tensor([isinstance(r.values[j], float) and r.spans[j] is None for r in read])
            span_m[:, j] = whole.unsqueeze(-1) & live
            if any(r.spans[j] is not None for r in read):  # span columns: their own tokens, live ones only
                spans = [r.spans[j] if r.spans[j] is not None else [False] * len(r.ids) for r in read]
                span_m[:, j] |= self._pad(spans, t, False, torch.bool) & live
            if any(not isinstance(r.values[j], float) for r in read):  # token-level probabilities
                probs = [r.values[j] if not isinstance(r.values[j], float) else [0.0] * len(r.ids) for r in read]
                token_p[:, j] = self._pad(probs, t, 0.0, torch.float32)
        span_w = self.draw_labels(span_w)
        token_p = self.draw_labels(token_p)
        batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels,
                 SEGMENT_IDS: segment, SPAN_WEIGHTS: span_w, SPAN_MASK: span_m, TOKEN_WEIGHTS: token_p}
        extra: dict[str, list[Any]] = {}
        for f in features:
            for key, value in f.items():
                if key not in MODEL_COLUMNS and key not in self.columns:
                    extra.setdefault(key, []).append(value)
        batch.update(self._extra(extra))
        return batch

    def _read(self, feature: dict[str, Any], where: str) -> _Example:
        """One example's columns as checked Python lists (`rows`: the same checks as the dataset's)."""
        ids = read_ids(feature, where)
        n = len(ids)
        values, spans = [], []
        for concept in self.config.concepts:
            value = read_value(feature, where, concept.column, n)
            values.append(value)
            spans.append(read_span(feature, where, concept.span_column, n)
                         if isinstance(value, float) and concept.span_column else None)
        return _Example(ids, read_mask(feature, where, n), read_labels(feature, where, n), values, spans)

    def _pad(self, rows: Sequence[Sequence[Any]], t: int, fill: Any, dtype: torch.dtype) -> torch.Tensor:
        """`[B, T]` tensor of the rows padded to `t` with `fill` on the tokenizer's padding side."""
        if self.padding_side == "left":
            return torch.tensor([[fill] * (t - len(r)) + list(r) for r in rows], dtype=dtype)
        return torch.tensor([list(r) + [fill] * (t - len(r)) for r in rows], dtype=dtype)

    def check_rows(self, dataset: Any, name: str) -> list[float]:
        """Check every row of `dataset` as `__call__` would; returns each concept's label mass (`rows.check_rows`)."""
        return check_rows(dataset, self.config, name)

    # ------------------------------------------------------------------ helpers
    def _extra(self, extra: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
        out = {}
        for key, values in extra.items():
            try:
                out[key] = torch.as_tensor(values)
            except (TypeError, ValueError, RuntimeError):
                if key not in self._warned_dropped:
                    self._warned_dropped.add(key)
                    warnings.warn(f"AnchorDataCollator: column {key!r} is not numeric and was left out of the "
                                  "batch; remove it from the dataset to silence this warning", stacklevel=2)
        return out
