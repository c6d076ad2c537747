"""What a removal is tested on: encoded examples, which positions are scored and which are probed.

Every attack in this package reads the same three things from an example, whatever the
corpus: its token ids, the first position whose token the loss scores (`score_from`; a
colour line scores only its hex answer, a comment every token), and the positions whose
hidden states a probe may read (`pool_until`; a colour line's prompt only, since the hex
digits of the answer would hand the colour to any probe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from anchor_hf.errors import AnchorDataError
from anchor_hf.probes.inputs import pad_batches


@dataclass(frozen=True)
class Example:
    """One encoded text.

    Attributes:
        ids: token ids.
        score_from: tokens `ids[score_from:]` are scored (predicted from what precedes them); ≥ 1.
        pool_until: states at positions `< pool_until` are what probes read; ≥ 1.
    """

    ids: tuple[int, ...]
    score_from: int = 1
    pool_until: int | None = None

    def __post_init__(self) -> None:
        if len(self.ids) < 2:
            raise AnchorDataError(f"an example needs at least 2 tokens, got {list(self.ids)}")
        if not 1 <= self.score_from < len(self.ids):
            raise AnchorDataError(f"`score_from` = {self.score_from} must be in 1..{len(self.ids) - 1}")
        if self.pool_until is not None and not 1 <= self.pool_until <= len(self.ids):
            raise AnchorDataError(f"`pool_until` = {self.pool_until} must be in 1..{len(self.ids)}")


@dataclass
class RemovalData:
    """The texts a removal is attacked with, for one concept.

    Attributes:
        concept: the concept's name (as in the anchor config).
        concept_eval: concept texts the removal is judged on (relearning recovery, fingerprint).
        other_eval: texts without the concept (fingerprint, collateral).
        relearn_pool: concept texts an attacker fine-tunes on; disjoint from `concept_eval`.
        probe_fit, probe_test: texts probes are fitted / scored on, with labels `fit_labels`, `test_labels`.
        pad_id: padding token id.
        notes: how the sets were drawn, for the report.
    """

    concept: str
    concept_eval: list[Example]
    other_eval: list[Example]
    relearn_pool: list[Example]
    probe_fit: list[Example]
    fit_labels: torch.Tensor
    probe_test: list[Example]
    test_labels: torch.Tensor
    pad_id: int
    notes: dict[str, str]

    def __post_init__(self) -> None:
        for name in ("concept_eval", "other_eval", "relearn_pool", "probe_fit", "probe_test"):
            if not getattr(self, name):
                raise AnchorDataError(f"`{name}` is empty: the data has too few examples for this attack")
        for name, examples, labels in (("fit", self.probe_fit, self.fit_labels),
                                       ("test", self.probe_test, self.test_labels)):
            if labels.shape != (len(examples),):
                raise AnchorDataError(f"`{name}_labels` must have one label per example, got {tuple(labels.shape)} "
                                      f"for {len(examples)}")
            if int(labels.sum()) in (0, len(labels)):
                raise AnchorDataError(f"probe {name} examples need both concept and non-concept texts")
        overlap = {e.ids for e in self.relearn_pool} & {e.ids for e in self.concept_eval}
        if overlap:
            raise AnchorDataError(f"{len(overlap)} relearning example(s) are also evaluation examples; an attack "
                                  "must be judged on texts it did not train on")


def batches(examples: Sequence[Example], pad_id: int, batch_size: int = 64) -> list[dict[str, torch.Tensor]]:
    """Right-padded batches (`probes.inputs.pad_batches`) plus `score_mask` and `pool_mask` `[B, T]`.

    `score_mask[b, t]` marks tokens that are scored as targets (`t ≥ score_from`);
    `pool_mask[b, t]` the positions whose states probes read.
    """
    out = pad_batches([e.ids for e in examples], pad_id, batch_size)
    for start, batch in zip(range(0, len(examples), batch_size), out):
        score = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
        pool = torch.zeros_like(score)
        for i, e in enumerate(examples[start:start + batch_size]):
            score[i, e.score_from:len(e.ids)] = True
            pool[i, :len(e.ids) if e.pool_until is None else e.pool_until] = True
        batch.update(score_mask=score, pool_mask=pool)
    return out


def batch_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean NLL of each example's scored tokens `[B]` (with gradients, for fine-tuning)."""
    device = next(model.parameters()).device
    ids = batch["input_ids"].to(device)
    logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(device)).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    scored = batch["score_mask"][:, 1:].to(device).float()
    return (nll * scored).sum(-1) / scored.sum(-1).clamp_min(1)


def example_nll(model: nn.Module, examples_batches: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Per-example mean NLL of the scored tokens `[N]`, in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([batch_loss(model, b).cpu() for b in examples_batches])
    finally:
        model.train(was_training)
