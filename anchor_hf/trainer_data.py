"""`AnchorDataMixin`: where an anchoring trainer's batches come from, and what is checked before any work.

Overrides, each for one reason:
- `_prepare_dataset`: TRL's `SFTTrainer` tokenizes, truncates and packs its datasets itself;
  the concept labels go along (`sft_data`);
- `_set_signature_columns_if_needed`: keep the concept columns through `remove_unused_columns`;
- `get_eval_dataloader`, `get_test_dataloader`: evaluation weighs labels by their probabilities
  instead of drawing them, so two evaluations of the same weights give the same numbers and
  evaluating never advances the training draws.
The collator is an `AnchorDataCollator`, or TRL's own wrapped in `SFTAnchorCollator` (which
builds the anchor masks from TRL's batches); the datasets are read row by row before the
first step (`rows.check_dataset`). It expects `anchor_config` and `args` set by the trainer.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .collator import AnchorCollatorBase
from .errors import AnchorDataError
from .rows import check_dataset
from .sft_collator import SFTAnchorCollator, is_trl_collator
from .sft_data import prepare_sft_dataset


def check_packing_collator(args: Any, data_collator: Any) -> None:
    """Refuse an anchor collator under TRL packing, whose packed rows only TRL's own collator reads."""
    if isinstance(data_collator, AnchorCollatorBase) and getattr(args, "packing", False):
        raise AnchorDataError("with `packing=True` leave `data_collator` unset: TRL collates packed examples "
                              "itself, and the trainer builds the anchor masks from its batches")


class AnchorDataMixin:
    """The data side of `AnchorTrainerMixin` (see the module docstring)."""

    def _check_collator(self) -> None:
        collator = self.data_collator
        if is_trl_collator(collator):  # SFTTrainer's own: the masks are built from its batches
            collator = self.data_collator = SFTAnchorCollator(collator, self.anchor_config, seed=self.args.seed)
        if not isinstance(collator, AnchorCollatorBase):
            raise AnchorDataError(
                f"`data_collator` is {type(collator).__name__}, but anchoring needs the label masks that "
                "AnchorDataCollator builds; pass data_collator=AnchorDataCollator(tokenizer, anchor_config)")
        mine = [c.column for c in self.anchor_config.concepts]
        theirs = [c.column for c in collator.config.concepts]
        if mine != theirs:
            raise AnchorDataError(f"the collator reads concept columns {theirs}, but the trainer's anchor_config "
                                  f"has {mine}; build both from the same AnchorConfig")

    def _seed_collator_per_process(self) -> None:
        """Offset the label seed by the process index: with one seed, every process would label
        the same positions of its own batch, correlating the draws the method wants independent."""
        self.data_collator.seed_for_process(self.args.process_index)

    def _check_datasets(self) -> None:
        """Every row of the train and eval sets, before any work (`rows.check_dataset`)."""
        check_dataset(getattr(self, "train_dataset", None), self.data_collator, "train_dataset", training=True)
        evaluation = getattr(self, "eval_dataset", None)
        named = evaluation.items() if isinstance(evaluation, dict) else [(None, evaluation)]
        for key, dataset in named:
            if dataset is not None:
                name = "eval_dataset" if key is None else f"eval_dataset[{key!r}]"
                check_dataset(dataset, self.data_collator, name, training=False)

    # SFTTrainer tokenizes, truncates and packs datasets itself; the concept labels must go along.
    def _prepare_dataset(self, *args: Any, **kwargs: Any) -> Any:
        return prepare_sft_dataset(super()._prepare_dataset, self.anchor_config, *args, **kwargs)

    # Concept columns must survive `remove_unused_columns` so the collator can read them.
    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        extra = [c for c in self.data_collator.columns if c not in self._signature_columns]
        self._signature_columns = list(self._signature_columns) + extra

    # Evaluation weighs labels by their probabilities instead of drawing them, so two evaluations of
    # the same weights give the same numbers and evaluating never advances the training draws.
    def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
        with self._expected_labels():
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset: Any) -> Any:
        with self._expected_labels():
            return super().get_test_dataloader(test_dataset)

    @contextlib.contextmanager
    def _expected_labels(self) -> Any:
        collator = self.data_collator
        self.data_collator = collator.expected()
        try:
            yield
        finally:
            self.data_collator = collator
