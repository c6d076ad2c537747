"""Faults a training step shows only at run time, caught without slowing the step down.

- A non-finite anchor term: a weight so large that one update throws the weights out of
  range, or a diverging model. `NonFiniteWatch.update` keeps the first such step as a flag
  on the device (reading the term every step would be a host sync); the trainer reads it
  where it syncs anyway (logging, saving) and raises `nonfinite_error`, naming the concept,
  the layer and the step, so no NaN model is ever saved as a result.
- Anchored states without a gradient while a term is on (`check_gradient`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .config import AnchorConfig
from .errors import AnchorTrainingError
from .regularizer import AnchorWeights


class NonFiniteWatch:
    """The first step whose weighted anchor terms were non-finite, kept on the device.

    `fault` is `[step, term index, is_eval]` (long), all -1 until a non-finite term is seen;
    the term index counts `[C + 1, L]` row-major (concepts, then separation; layers).
    """

    def __init__(self) -> None:
        self.fault: torch.Tensor | None = None

    def update(self, terms: torch.Tensor, step: int, evaluating: bool) -> None:
        """Record `terms` `[C + 1, L]` of `step`, on their device, without reading them back."""
        bad = ~torch.isfinite(terms).flatten()  # [(C + 1)·L]
        first = bad.int().argmax()
        found = torch.stack([torch.full_like(first, step), first, torch.full_like(first, int(evaluating))])
        if self.fault is None:
            self.fault = torch.full_like(found, -1)
        elif self.fault.device != found.device:
            self.fault = self.fault.to(found.device)
        self.fault = torch.where(bad.any() & (self.fault[0] < 0), found, self.fault)

    def first(self, accelerator: Any) -> tuple[int, int, bool] | None:
        """`(step, term index, is_eval)` of the earliest fault on any process, or None; a collective call."""
        if self.fault is None:
            return None
        fault = self.fault.to(accelerator.device)
        if accelerator.num_processes > 1:  # every process must raise, or the others hang in the next collective
            every = accelerator.gather(fault).reshape(accelerator.num_processes, -1)
            seen = every[every[:, 0] >= 0]
            fault = seen[seen[:, 0].argmin()] if len(seen) else every[0]
        step, index, evaluating = fault.tolist()
        return None if step < 0 else (step, index, bool(evaluating))


def nonfinite_error(step: int, index: int, evaluating: bool, cfg: AnchorConfig,
                    names: Sequence[str]) -> AnchorTrainingError:
    """The error for a non-finite term at `index` of `[C + 1, L]` (`NonFiniteWatch`), naming what to change."""
    row, layer = divmod(index, len(names))
    if row < len(cfg.concepts):
        c = cfg.concepts[row]
        what = f"concept {c.name!r}"
        weights = f"`concepts[{row}]` has attract = {c.attract:g}, repel = {c.repel:g}, exclusive = {c.exclusive:g}"
    else:
        what, weights = "the separation term", f"`separation` = {cfg.separation:g}"
    return AnchorTrainingError(
        f"the anchor term of {what} at layer {names[layer]!r} became non-finite at step {step}"
        f"{' (evaluation)' if evaluating else ''}; {weights}. A weight so large that one update throws the weights "
        "out of range, or a learning rate that makes the model diverge, gives non-finite hidden states; lower it. "
        "Stopped so that no NaN model is saved as a result.")


def check_gradient(names: Sequence[str], states: Sequence[torch.Tensor], weights: AnchorWeights) -> None:
    """Refuse a training step whose anchored states carry no gradient while a term is on.

    Checked on the states, not on the term: the exclusivity term is legitimately 0 until
    its running means exist, and those only update from states with a gradient, so a
    term-based check would let an exclusivity-only config train with no anchor gradient.
    """
    active = any(w > 0 for w in (*weights.attract, *weights.repel, *weights.exclusive, weights.separation))
    dead = [name for name, h in zip(names, states) if not h.requires_grad]
    if active and dead:
        raise AnchorTrainingError(
            f"the anchor term has no gradient although its weights are > 0: the states of {dead} were computed "
            "without autograd. Reentrant activation checkpointing does this; enable it with "
            "activation_checkpointing_kwargs={'use_reentrant': False}. (Or no trainable parameter comes "
            "before that layer, e.g. LoRA only on later blocks.)")
