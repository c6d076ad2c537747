"""`AnchorDataCollator`: causal-LM padding plus the concept-label masks the regularizer needs.

Labels are sparse and noisy by design (METHOD.md §3): each example carries a label
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
from typing import Any, Literal

import torch

from .config import AnchorConfig
from .errors import AnchorDataError
from .regularizer import AnchorMasks

SPAN_WEIGHTS = "anchor_span_weights"
SPAN_MASK = "anchor_span_mask"
TOKEN_WEIGHTS = "anchor_token_weights"
SEGMENT_IDS = "anchor_segment_ids"
WINDOW = "anchor_window"  # [C + 1] denominators over the optimizer step, added by the trainer
ANCHOR_KEYS = (SPAN_WEIGHTS, SPAN_MASK, TOKEN_WEIGHTS, SEGMENT_IDS, WINDOW)
MODEL_KEYS = ("input_ids", "attention_mask", "labels", "position_ids", "token_type_ids")


def masks_from_batch(batch: dict[str, Any]) -> AnchorMasks:
    """The regularizer's masks from a collated batch (live = segment id ≥ 0)."""
    return AnchorMasks(live=batch[SEGMENT_IDS] >= 0, span_weights=batch[SPAN_WEIGHTS],
                       span_mask=batch[SPAN_MASK], token_weights=batch[TOKEN_WEIGHTS])


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
        self._worker_seeded = False

    # Concept columns must survive `remove_unused_columns`; the trainer asks for them here.
    @property
    def columns(self) -> list[str]:
        cols = [c.column for c in self.config.concepts]
        cols += [c.span_column for c in self.config.concepts if c.span_column]
        return cols

    def state_dict(self) -> dict[str, Any]:
        """RNG state of the label draws, so a resumed run draws the same labels."""
        return {"generator": self.generator.get_state().tolist(), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))

    def expected(self) -> "AnchorCollatorBase":
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
            self.generator.manual_seed(self.seed + 1000003 * (info.id + 1))


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
        if not features:
            raise AnchorDataError("cannot collate an empty list of examples")
        ids = [self._ids(f, i) for i, f in enumerate(features)]
        lengths = [len(x) for x in ids]
        t = max(lengths)
        if self.pad_to_multiple_of:
            t = math.ceil(t / self.pad_to_multiple_of) * self.pad_to_multiple_of
        b, c = len(features), len(self.config.concepts)
        offsets = [t - n if self.padding_side == "left" else 0 for n in lengths]

        input_ids = torch.full((b, t), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((b, t), dtype=torch.long)
        labels = torch.full((b, t), -100, dtype=torch.long)
        segment = torch.full((b, t), -1, dtype=torch.long)
        span_w = torch.zeros((b, c))
        span_m = torch.zeros((b, c, t), dtype=torch.bool)
        token_p = torch.zeros((b, c, t))
        extra: dict[str, list[Any]] = {}
        for i, (f, x, n, o) in enumerate(zip(features, ids, lengths, offsets)):
            sl = slice(o, o + n)
            input_ids[i, sl] = torch.as_tensor(x, dtype=torch.long)
            mask = torch.as_tensor(f.get("attention_mask", [1] * n), dtype=torch.long)
            if mask.shape != (n,):
                raise AnchorDataError(f"example {i}: `attention_mask` has length {mask.numel()}, "
                                      f"but `input_ids` has {n}")
            attention[i, sl] = mask
            if "labels" in f and f["labels"] is not None:
                lab = torch.as_tensor(f["labels"], dtype=torch.long)
                if lab.shape != (n,):
                    raise AnchorDataError(f"example {i}: `labels` has length {lab.numel()}, but `input_ids` has {n}")
                labels[i, sl] = lab
            else:
                labels[i, sl] = torch.where(mask.bool(), input_ids[i, sl], torch.full_like(mask, -100))
            segment[i, sl] = torch.where(mask.bool(), torch.full_like(mask, i), torch.full_like(mask, -1))
            live = mask.bool()
            for j, concept in enumerate(self.config.concepts):
                value = self._value(f, i, concept.column, n)
                if isinstance(value, float):
                    span_w[i, j] = value
                    span_m[i, j, sl] = live & self._span(f, i, concept.span_column, n)
                else:
                    token_p[i, j, sl] = value
            for key, value in f.items():
                if key not in MODEL_KEYS and key not in self.columns:
                    extra.setdefault(key, []).append(value)

        span_w = self.draw_labels(span_w)
        token_p = self.draw_labels(token_p)
        batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels,
                 SEGMENT_IDS: segment, SPAN_WEIGHTS: span_w, SPAN_MASK: span_m, TOKEN_WEIGHTS: token_p}
        batch.update(self._extra(extra))
        return batch

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _ids(feature: dict[str, Any], index: int) -> list[int]:
        if "input_ids" not in feature:
            raise AnchorDataError(f"example {index} has no `input_ids`; columns present: {sorted(feature)}")
        ids = feature["input_ids"]
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if not ids:
            raise AnchorDataError(f"example {index} has empty `input_ids`")
        return ids

    @staticmethod
    def _value(feature: dict[str, Any], index: int, column: str, n: int) -> float | torch.Tensor:
        if column not in feature:
            raise AnchorDataError(
                f"example {index} has no concept label column {column!r}; columns present: {sorted(feature)}. "
                "Add it (a probability per example or per token), or set `ConceptAnchor.label_column`.")
        value = feature[column]
        if isinstance(value, torch.Tensor) and value.dim() == 0:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            p = float(value)
            if not 0.0 <= p <= 1.0:
                raise AnchorDataError(f"example {index}: `{column}` = {p} is not a probability (allowed 0..1)")
            return p
        try:
            probs = torch.as_tensor(value, dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise AnchorDataError(f"example {index}: `{column}` must be a float or a list of floats, "
                                  f"got {type(value).__name__}") from err
        if probs.dim() != 1 or probs.numel() != n:
            raise AnchorDataError(f"example {index}: token-level `{column}` has length {probs.numel()}, "
                                  f"but `input_ids` has {n}; token labels must align with input_ids")
        if not bool(((probs >= 0) & (probs <= 1)).all()):
            raise AnchorDataError(f"example {index}: `{column}` holds values outside [0, 1] "
                                  f"(min {probs.min().item():.3g}, max {probs.max().item():.3g})")
        return probs

    @staticmethod
    def _span(feature: dict[str, Any], index: int, column: str | None, n: int) -> torch.Tensor:
        if column is None:
            return torch.ones(n, dtype=torch.bool)
        if column not in feature:
            raise AnchorDataError(f"example {index} has no span column {column!r}; columns present: {sorted(feature)}")
        value = feature[column]
        value = value.tolist() if isinstance(value, torch.Tensor) else list(value)
        if len(value) == 2 and n != 2:
            start, end = int(value[0]), int(value[1])
            if not 0 <= start < end <= n:
                raise AnchorDataError(f"example {index}: span `{column}` = [{start}, {end}) is not inside "
                                      f"0..{n} or is empty")
            span = torch.zeros(n, dtype=torch.bool)
            span[start:end] = True
            return span
        if len(value) != n:
            raise AnchorDataError(f"example {index}: span `{column}` has length {len(value)}, but `input_ids` "
                                  f"has {n}; give 0/1 per token or [start, end)")
        return torch.as_tensor(value).bool()

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
