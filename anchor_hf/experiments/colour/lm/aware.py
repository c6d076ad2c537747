"""Intervention-aware steps: a few more training steps in which redirected concept lines answer the destination.

Redirect moves a concept's states to its destination's place; whether the answer follows
depends on how much the model still reads the concept from elsewhere (the name tokens
themselves). These steps continue an anchored model's training on its own recipe data, with
its anchor term, and add the language-model loss of concept lines answered with the
destination colour while `redirect` is on (docs/method.md §10):

    loss = task + anchor + λ · LM(name: #destination | redirect on)

Concept lines are drawn per step with probability proportional to their label probability
(the same sparse, noisy labels as the anchoring), never from a fixed, seeded share of the
target group that is withheld and reported separately: a model that only learned the trained
names would move those and not the withheld ones. The control gets the same number of steps
with `λ = 0` (`continue_training`), so any cost is paired. A model that learned to recognise
"an edit happened" rather than to read the place would also move its answers under a redirect
along a random direction; the evaluation reports that control for every model.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from anchor_hf.config import AnchorConfig
from anchor_hf.interventions import redirect
from ..corpus import ColourName, names_dataset
from ..spec import load_spec
from ..target import DEFAULT_DESTINATION, exact_labels, parse_target, similarity

AWARE_FILE = "aware.json"


@dataclass(frozen=True)
class AwareSteps:
    """How the extra steps run.

    Args:
        steps: optimizer steps (0: none).
        weight: λ of the redirected lines' loss (0: plain continued training, the control's).
        withheld: share of the target group never used as a redirected line, in [0, 1).
        batch: redirected lines per step.
        learning_rate: the extra steps' peak learning rate.
        schedule: how it moves (`cosine` after a warmup, as the recipes; `linear` or `constant`).
        warmup: share of the steps spent warming up.
        onset: None for the full redirect, or `a`: the graded redirect `falloff=(a, 1, 1)` (states
            with alignment below `a` are not edited), as the evaluation then uses it too.
    """

    steps: int = 150
    weight: float = 1.0
    withheld: float = 0.3
    batch: int = 16
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    warmup: float = 0.1
    onset: float | None = None


def withheld_names(names: list[ColourName], target: Any, share: float, seed: int) -> list[str]:
    """A fixed, seeded share of the target group's names, sorted (`target [N]` bool)."""
    group = [c.name for c, t in zip(names, target.tolist()) if t]
    order = torch.randperm(len(group), generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(group[i] for i in order[:round(share * len(group))])


def settled(cfg: AnchorConfig) -> AnchorConfig:
    """`cfg` with every scheduled weight fixed at its end-of-training value (peak × floor), schedules removed.

    The extra steps come after training: restarting the schedules would bring the early,
    strong repel back.
    """
    out = copy.deepcopy(cfg)
    for c in out.concepts:
        if c.attract_schedule is not None:
            c.attract, c.attract_schedule = c.attract * c.attract_schedule.floor * c.attract_schedule.peak, None
        if c.repel_schedule is not None:
            c.repel, c.repel_schedule = c.repel * c.repel_schedule.floor * c.repel_schedule.peak, None
    return out


def continue_training(model_dir: str, out_dir: str, steps: AwareSteps, seed: int) -> str:
    """Train `model_dir` `steps.steps` more steps into `out_dir` (with redirected lines when `steps.weight > 0`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from anchor_hf import AnchorDataCollator

    spec = load_spec(model_dir)
    if spec is None or spec.corpus == "mixing":
        raise ValueError(f"{model_dir}: intervention-aware steps need a colour-names model (with colour_spec.json)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = settled(AnchorConfig.from_pretrained(model_dir))
    names = spec.names()[0]
    target = exact_labels(similarity(torch.tensor([c.rgb for c in names]), spec.target))
    withheld = withheld_names(names, target, steps.withheld, seed)
    args = TrainingArguments(output_dir=out_dir, max_steps=steps.steps, per_device_train_batch_size=64,
                             learning_rate=steps.learning_rate, lr_scheduler_type=steps.schedule,
                             warmup_steps=steps.warmup,
                             weight_decay=0.01, save_strategy="no", report_to=[], use_cpu=True, seed=seed,
                             logging_steps=max(1, steps.steps // 5), disable_tqdm=True)
    lines = _redirected_lines(spec, tokenizer, names, withheld, seed) if steps.weight > 0 else None
    trainer = _trainer_class()(model=model, args=args, anchor_config=cfg, train_dataset=spec.train_dataset(tokenizer),
                               data_collator=AnchorDataCollator(tokenizer, cfg, seed=seed), processing_class=tokenizer,
                               redirected=lines, weight=steps.weight, batch=steps.batch,
                               falloff=None if steps.onset is None else (steps.onset, 1.0, 1.0))
    trainer.train()
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:  # never save a diverged model as if it had trained
        raise FloatingPointError(f"intervention-aware steps from {model_dir} diverged: non-finite {bad[:3]}")
    trainer.save_model()
    trainer.save_state()
    from ..spec import save_spec

    save_spec(spec, out_dir)
    from anchor_hf.io import write_json

    record = {"from": model_dir, "steps": steps.__dict__, "seed": seed, "withheld": withheld}
    write_json(os.path.join(out_dir, AWARE_FILE), record, indent=1)  # last, atomically: it marks the model finished
    return out_dir


def _redirected_lines(spec: Any, tokenizer: Any, names: list[ColourName], withheld: list[str],
                      seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches source: (name: #destination) lines drawn ∝ label probability, withheld names excluded."""
    destination = parse_target(spec.destination or DEFAULT_DESTINATION).hex
    pool = [c for c in names if c.name not in set(withheld)]
    moved = names_dataset([ColourName(c.name, destination) for c in pool], tokenizer, spec.target,
                          spec.label_peak, spec.label_power, answer_only=True)
    p = torch.tensor(names_dataset(pool, tokenizer, spec.target, spec.label_peak, spec.label_power)["concept"])
    return _Draws(moved, p, seed)


class _Draws:
    """Draws padded batches of rows of `data` with probability ∝ `p`, seeded; `take(n)` gives one."""

    def __init__(self, data: Any, p: torch.Tensor, seed: int) -> None:
        self.data, self.p = data, p
        self.generator = torch.Generator().manual_seed(seed)

    def take(self, n: int, pad_id: int) -> dict[str, torch.Tensor]:
        index = torch.multinomial(self.p, n, replacement=True, generator=self.generator).tolist()
        rows = [self.data[i] for i in index]
        t = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((n, t), pad_id)
        labels = torch.full((n, t), -100)
        mask = torch.zeros((n, t), dtype=torch.long)
        for i, r in enumerate(rows):
            k = len(r["input_ids"])
            ids[i, :k], labels[i, :k], mask[i, :k] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _trainer_class() -> type:
    from anchor_hf import AnchorTrainer

    class RedirectAwareTrainer(AnchorTrainer):
        """`AnchorTrainer` plus, on every training step, λ × the LM loss of redirected concept lines."""

        def __init__(self, *args: Any, redirected: _Draws | None, weight: float, batch: int,
                     falloff: tuple[float, float, float] | None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.redirected, self.weight, self.batch, self.falloff = redirected, weight, batch, falloff

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self.redirected is None or not model.training:
                return result
            loss, outputs = result if return_outputs else (result, None)
            batch = self.redirected.take(self.batch, self.processing_class.pad_token_id)
            with redirect(model, self.anchor_config, self.anchor_config.concepts[0].name, falloff=self.falloff):
                moved = model(**{k: v.to(loss.device) for k, v in batch.items()}).loss
            loss = loss + self.weight * moved
            return (loss, outputs) if return_outputs else loss

    return RedirectAwareTrainer
