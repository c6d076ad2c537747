"""`SFTAnchorCollator`: anchor masks for the batches TRL's own collator builds (padded, packed, padding-free).

TRL refuses a custom collator under padding-free training, and its
`DataCollatorForLanguageModeling` reads only `input_ids`, `labels` and `seq_lengths`. So
the trainer wraps it: TRL builds the batch exactly as it would, then each example is found
in it (its own row, right-padded; or, padding-free, one after another in a single row; the
ids are checked), split into its sequences (`seq_lengths`, written by packing), and the
masks are built from the label columns that `sft_data` carried through. Each sequence is a
span row of its own (`AnchorMasks.span_rows`), so an example-level label pools over its own
sequence's tokens wherever packing put them, and the anchor term of a packed batch is the
term of the same sequences padded one per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from .collator import SEGMENT_IDS, SPAN_MASK, SPAN_ROWS, SPAN_WEIGHTS, TOKEN_WEIGHTS, AnchorCollatorBase
from .config import AnchorConfig
from .errors import AnchorDataError
from .rows import read_span, read_value
from .sft_data import example_label_column


def is_trl_collator(collator: Any) -> bool:
    """Whether `collator` is TRL's `DataCollatorForLanguageModeling`, whose layout `SFTAnchorCollator` knows."""
    try:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    except ImportError:
        return False
    return isinstance(collator, DataCollatorForLanguageModeling)


class SFTAnchorCollator(AnchorCollatorBase):
    """TRL's collator, plus the anchor masks of every batch it builds.

    Args:
        collator: TRL's `DataCollatorForLanguageModeling` (as `SFTTrainer` builds it).
        config: the anchor config whose label columns are read.
        draw, seed: as `AnchorDataCollator` (labels drawn per visit, per sequence).
    """

    def __init__(self, collator: Any, config: AnchorConfig, draw: Literal["bernoulli", "expected"] = "bernoulli",
                 seed: int = 0) -> None:
        super().__init__(config, draw, seed)
        self.collator = collator
        self.padding_free = bool(getattr(collator, "padding_free", False))

    @property
    def columns(self) -> list[str]:
        return super().columns + [example_label_column(c) for c in self.config.concepts]

    def missing_columns(self, columns: Sequence[str]) -> list[str]:
        # packed examples carry a concept's example-level label as its per-token column instead
        return [c.column for c in self.config.concepts
                if c.column not in columns and example_label_column(c) not in columns]

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if not features:
            raise AnchorDataError("cannot collate an empty list of examples")
        batch = self.collator([{k: v for k, v in f.items() if k not in self.columns} for f in features])
        ids = batch["input_ids"]
        b, t = ids.shape
        c = len(self.config.concepts)
        segment = torch.full((b, t), -1, dtype=torch.long)
        token_p = torch.zeros((b, c, t))
        span_w: list[torch.Tensor] = []  # one [C] per sequence
        span_m: list[torch.Tensor] = []  # one [C, T] per sequence
        rows: list[int] = []
        offset = 0
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            row, start = (0, offset) if self.padding_free else (i, 0)
            self._check_placement(ids, f["input_ids"], i, row, start)
            for j, concept in enumerate(self.config.concepts):
                value = read_value(f, f"example {i} of the batch", concept.column, n) if concept.column in f else None
                if isinstance(value, list):  # token-level labels: one probability per token
                    token_p[row, j, start:start + n] = torch.tensor(value)
            for a, length in self._sequences(f, i, n):
                segment[row, start + a:start + a + length] = len(rows)
                weights, spans = self._example_labels(f, i, n, a, length)  # [C], [C, length]
                mask = torch.zeros((c, t), dtype=torch.bool)
                mask[:, start + a:start + a + length] = spans
                span_w.append(weights)
                span_m.append(mask)
                rows.append(row)
            offset += n
        batch.update({SEGMENT_IDS: segment, SPAN_WEIGHTS: self.draw_labels(torch.stack(span_w)),
                      SPAN_MASK: torch.stack(span_m), TOKEN_WEIGHTS: self.draw_labels(token_p),
                      SPAN_ROWS: torch.tensor(rows, dtype=torch.long)})
        return batch

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_placement(ids: torch.Tensor, example_ids: Any, index: int, row: int, start: int) -> None:
        placed = ids[row, start:start + len(example_ids)]
        if placed.tolist() != list(example_ids):
            raise AnchorDataError(
                f"example {index} is not where TRL's collator is expected to put it (row {row}, from position "
                f"{start}); this TRL version lays out batches differently, so concept labels cannot be placed")

    @staticmethod
    def _sequences(feature: dict[str, Any], index: int, n: int) -> list[tuple[int, int]]:
        """`(start, length)` of each sequence packed into the example (one when it was not packed)."""
        lengths = [int(x) for x in feature.get("seq_lengths") or [n]]
        if sum(lengths) != n or min(lengths) <= 0:
            raise AnchorDataError(f"example {index}: `seq_lengths` {lengths} do not add up to its {n} tokens")
        starts = [sum(lengths[:k]) for k in range(len(lengths))]
        return list(zip(starts, lengths))

    def _example_labels(self, feature: dict[str, Any], index: int, n: int, a: int,
                        length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Example-level label weight `[C]` and pooling span `[C, length]` of the sequence at `[a, a + length)`."""
        where = f"example {index} of the batch"
        weights = torch.zeros(len(self.config.concepts))
        spans = torch.zeros((len(self.config.concepts), length), dtype=torch.bool)
        for j, concept in enumerate(self.config.concepts):
            packed = example_label_column(concept)
            if packed in feature:  # p on the tokens the label pools over, 0 elsewhere
                values = torch.tensor(read_value(feature, where, packed, n))[a:a + length]
                weights[j], spans[j] = values.max(), values > 0
                continue
            value = read_value(feature, where, concept.column, n)
            if not isinstance(value, float):
                continue  # token-level: placed by the caller
            if length != n:
                raise AnchorDataError(f"{where} packs several sequences but `{concept.column}` holds one label for "
                                      f"all of them; prepare the dataset through SFTTrainer (it carries labels into "
                                      f"`{packed}`)")
            weights[j] = value
            spans[j] = torch.tensor(read_span(feature, where, concept.span_column, n))
        return weights, spans
