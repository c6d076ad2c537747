"""Relearning: fine-tune an edited model on a few concept examples and watch the concept come back.

The attack that exposes unlearning that only hides (Lynch et al. 2024; Deeb & Roger 2024):
if the knowledge is still in the weights, a few steps on a handful of related examples
restore it on *other* concept texts far faster than a model that never learned it could
learn it. The recovery curve is the loss on held-out concept texts after each step; its
summary is the number of steps to regain half of what the removal took away,
`loss ≤ reference + (loss₀ − reference)/2`, where `reference` is the loss of the model
before removal (for the never-saw model: the control's, i.e. what learning the concept
is worth). That relative measure depends on each arm's own reference, so the report also
gives an absolute one: the steps each arm needs to reach the never-saw model's half-gap
level (`steps_to_reach`), and where each curve ends relative to the never-saw model's.
Hooks on the model (a suppressed arm) stay on while it trains.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from anchor_hf.errors import AnchorConfigError
from .examples import Example, batch_loss, batches, example_nll


@dataclass(frozen=True)
class RelearnSettings:
    """The attacker's budget.

    Args:
        ks: numbers of concept examples fine-tuned on (each gets its own curves).
        steps: optimizer steps per curve.
        learning_rate: AdamW learning rate (no weight decay, constant).
        batch_size: examples per step (fewer when k is smaller).
        repeats: independent draws of the k examples per arm; half-steps are their median.
        eval_every: measure the held-out loss every this many steps (it must divide `steps`);
            half-steps are then resolved to this many steps.
    """

    ks: tuple[int, ...] = (10, 100)
    steps: int = 100
    learning_rate: float = 1e-3
    batch_size: int = 10
    repeats: int = 3
    eval_every: int = 1

    def __post_init__(self) -> None:
        if not self.ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.ks):
            raise AnchorConfigError(f"`ks` must be positive ints, got {self.ks!r}")
        for name in ("steps", "batch_size", "repeats", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AnchorConfigError(f"`{name}` must be an int >= 1, got {value!r}")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise AnchorConfigError(f"`learning_rate` must be a finite number > 0, got {self.learning_rate!r}")
        if self.steps % self.eval_every:
            raise AnchorConfigError(f"`eval_every` = {self.eval_every} must divide `steps` = {self.steps}")


def relearn_curves(model: nn.Module, train: Sequence[Example],
                   eval_sets: Mapping[str, Sequence[dict[str, torch.Tensor]]], pad_id: int, steps: int,
                   learning_rate: float, batch_size: int, seed: int = 0, eval_every: int = 1) -> dict[str, list[float]]:
    """Fine-tune `model` in place on `train`; per eval set, its loss at steps 0, e, 2e, ... (`steps // e + 1`).

    The loss of a set is the mean over its texts of each text's mean NLL (every text counts
    the same, whatever its length). Batches cycle through `train` in a seeded order,
    reshuffled each pass. Watching a set without the concept beside the concept texts shows
    how much of a "recovery" is the fine-tuning repairing general damage instead.

    Raises:
        FloatingPointError: when a loss stops being finite (the learning rate is too high).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    rng = random.Random(seed)
    order: list[int] = []
    curves: dict[str, list[float]] = {name: [] for name in eval_sets}

    def measure(step: int) -> None:
        for name, data in eval_sets.items():
            loss = float(example_nll(model, data).mean())
            if not math.isfinite(loss):
                raise FloatingPointError(f"relearning diverged: the {name} loss is {loss} at step {step}; "
                                         f"lower the learning rate (now {learning_rate:g})")
            curves[name].append(loss)

    measure(0)
    for step in range(1, steps + 1):
        if len(order) < min(batch_size, len(train)):
            order = rng.sample(range(len(train)), len(train))
        take, order = order[:batch_size], order[batch_size:]
        (batch,) = batches([train[i] for i in take], pad_id, batch_size=len(take))
        model.train()
        optimizer.zero_grad(set_to_none=True)
        batch_loss(model, batch).mean().backward()
        optimizer.step()
        if step % eval_every == 0:
            measure(step)
    model.eval()
    return curves


def steps_to_reach(curve: Sequence[float], level: float, eval_every: int = 1) -> float:
    """First step at which `curve` (measured every `eval_every` steps) is at or below `level`; `inf` if never."""
    for i, loss in enumerate(curve):
        if loss <= level:
            return float(i * eval_every)
    return math.inf


def half_recovery_step(curve: Sequence[float], reference: float, eval_every: int = 1) -> float:
    """First step at which `curve` (measured every `eval_every` steps) has regained half of its gap above `reference`.

    0 when there is no gap to regain (`curve[0] ≤ reference`); `inf` when the budget ends first.
    """
    gap = curve[0] - reference
    if gap <= 0:
        return 0.0
    return steps_to_reach(curve, reference + gap / 2, eval_every)


def recovered_fraction(curve: Sequence[float], reference: float) -> float:
    """Share of the gap regained by the end of the budget (1 = back to the reference; NaN without a gap)."""
    gap = curve[0] - reference
    return (curve[0] - curve[-1]) / gap if gap > 0 else math.nan
