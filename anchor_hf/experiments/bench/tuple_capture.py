"""The capture the library avoids, kept to measure it: anchored states read from `output_hidden_states=True`.

`AnchorTrainer` records only the anchored blocks with forward hooks (`anchor_hf.capture`).
The obvious alternative asks the model for every block's output and picks the anchored
ones from the tuple. This trainer does that and otherwise the same work per step as
`AnchorTrainerMixin.compute_loss` (the same regularizer, metric records, gradient
check, scaling and dose; gradient routing is not supported here), so the
benchmark can say what the hooks save. Block `i` is read at `hidden_states[i + 1]`
(entry 0 is the embedding output); for the last block of Llama-style models that entry
is after the final norm, which changes the values but not the cost.
"""

from __future__ import annotations

from typing import Any

import torch

from anchor_hf.collator import ANCHOR_KEYS, SEGMENT_IDS
from anchor_hf.errors import AnchorConfigError
from anchor_hf.trainer import DRAW_STATE, AnchorTrainer, AnchorTrainerMixin


class TupleCaptureTrainer(AnchorTrainer):
    """`AnchorTrainer` that takes the anchored states from the model's `hidden_states` tuple."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if any(getattr(c, "route", False) for c in self.anchor_config.concepts):
            raise AnchorConfigError("tuple capture does not support gradient routing (`ConceptAnchor.route`)")
        indices = []
        for name in self._anchor_names:
            tail = name.rsplit(".", 1)[-1]
            if not tail.isdigit():
                raise AnchorConfigError(f"tuple capture needs decoder-block layers, got {name!r}")
            indices.append(int(tail) + 1)
        self._tuple_indices = indices

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        anchor = {k: inputs.pop(k) for k in ANCHOR_KEYS if k in inputs}
        inputs.pop(DRAW_STATE, None)
        if SEGMENT_IDS not in anchor:
            raise AnchorConfigError("the batch has no anchor masks; batches must come from AnchorDataCollator")
        inputs["output_hidden_states"] = True
        # the task loss through Trainer itself (skip the mixin, whose hooks this variant replaces)
        loss, outputs = super(AnchorTrainerMixin, self).compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        states = [outputs.hidden_states[i] for i in self._tuple_indices]
        loss = self.add_anchor_term(model, loss, states, anchor, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss
