"""Train one GoEmotions model: anchored, control (same recipe, anchor weights 0) or never-saw-it.

The three kinds differ in one thing each, so differences between them are attributable:
- `anchored`: the recipe's anchor weights, concept comments labelled at the label rate;
- `control`: the same trainer and data with every anchor weight 0 (the regularizer then
  adds exactly nothing, tests/test_trainer.py), the baseline of task cost and post-hoc;
- `neversaw`: the control recipe on the training split with every concept comment removed,
  the gold standard of removal that efficacy is measured against (issue 6).
Finished models are reused (a `train_summary.json` marks them complete).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from typing import Any

import torch

from anchor_hf.config import AnchorConfig, ConceptAnchor
from .data import TEXT_SPAN, Comment, EmotionConcept, build_dataset, has_label, without_concepts
from .recipe import GoEmotionsRecipe

KINDS = ("anchored", "control", "neversaw")
DONE = "train_summary.json"


def anchor_config(recipe: GoEmotionsRecipe, concepts: Sequence[EmotionConcept], hidden_size: int,
                  active: bool = True) -> AnchorConfig:
    """One concept per axis (or seeded random unit vector) at the recipe's layers; weights 0 unless `active`."""
    anchors = []
    for i, concept in enumerate(concepts):
        place: dict[str, Any] = {"dims": [i]}
        if recipe.direction == "random":  # fixed by the concept's index, so every seed and kind shares it
            v = torch.randn(hidden_size, generator=torch.Generator().manual_seed(7_000 + i))
            place = {"vector": (v / v.norm()).tolist()}
        anchors.append(ConceptAnchor(name=concept.column, attract=recipe.attract if active else 0.0,
                                     repel=recipe.repel if active else 0.0, repel_kind=recipe.repel_kind,
                                     tau=recipe.tau, exclusive=recipe.exclusive if active else 0.0,
                                     route=recipe.route and active,
                                     span_column=TEXT_SPAN if recipe.anchor_span == "text" else None, **place))
    return AnchorConfig(layers=list(recipe.anchor_layers), concepts=anchors,
                        separation=recipe.separation if active else 0.0)


def training_comments(comments: Sequence[Comment], recipe: GoEmotionsRecipe, concepts: Sequence[EmotionConcept],
                      kind: str) -> list[Comment]:
    """The training comments of a kind: a fixed subset if the recipe caps them, minus the concept for `neversaw`."""
    comments = list(comments)
    if recipe.max_train_examples is not None and recipe.max_train_examples < len(comments):
        comments = random.Random(0).sample(comments, recipe.max_train_examples)  # same subset for every kind
    return without_concepts(comments, concepts) if kind == "neversaw" else comments


def is_finished(model_dir: str) -> bool:
    return os.path.isfile(os.path.join(model_dir, DONE))


def train_model(kind: str, seed: int, label_rate: float, recipe: GoEmotionsRecipe,
                concepts: Sequence[EmotionConcept], train: Sequence[Comment], tokenizer: Any,
                make_model: Any, model_dir: str, log: Any = print) -> dict[str, Any]:
    """Train one model into `model_dir` (skipped when finished there); returns its train summary.

    Args:
        kind: `anchored`, `control` or `neversaw`.
        make_model: `() -> model`, called after seeding (fresh weights, or pretrained + LoRA).
    """
    from transformers import TrainingArguments, set_seed

    from anchor_hf.collator import AnchorDataCollator
    from anchor_hf.trainer import AnchorTrainer

    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    if is_finished(model_dir):
        with open(os.path.join(model_dir, DONE), encoding="utf-8") as f:
            return json.load(f)
    set_seed(seed)
    model = make_model()
    width = model.config.hidden_size
    cfg = anchor_config(recipe, concepts, width, active=kind == "anchored")
    comments = training_comments(train, recipe, concepts, kind)
    dataset = build_dataset(comments, tokenizer, concepts, label_rate, recipe.max_length, recipe.label_scheme,
                            seed=seed, word_lists=recipe.word_lists, replay=recipe.label_replay)
    use_cpu = not torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=os.path.join(model_dir, "trainer"), max_steps=recipe.max_steps, seed=seed,
        learning_rate=recipe.learning_rate, per_device_train_batch_size=recipe.per_device_train_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps, warmup_steps=recipe.warmup_ratio,  # < 1: a ratio
        weight_decay=recipe.weight_decay, lr_scheduler_type=recipe.lr_scheduler_type,
        logging_steps=recipe.logging_steps, save_strategy="no", report_to=[], use_cpu=use_cpu,
        bf16=recipe.bf16 and not use_cpu, dataloader_num_workers=0, disable_tqdm=True)
    collator = AnchorDataCollator(tokenizer, cfg, seed=seed)
    trainer = AnchorTrainer(model=model, args=args, anchor_config=cfg, train_dataset=dataset, data_collator=collator,
                            processing_class=tokenizer)
    start = time.time()
    log(f"[goemotions] training {kind} seed {seed} (label rate {label_rate}) on {len(dataset)} comments "
        f"-> {model_dir}")
    result = trainer.train()
    trainer.save_model(model_dir)
    history = [h for h in trainer.state.log_history if "loss" in h]
    summary = {"kind": kind, "seed": seed, "label_rate": label_rate, "train_comments": len(dataset),
               "concept_comments": sum(any(c.holds(x) for c in concepts) for x in comments),
               "labelled_comments": sum(any(has_label(p) for p in row) for row in
                                        zip(*[dataset[c.column][:len(comments)] for c in concepts])),
               "rows_with_replay": len(dataset),
               "steps": trainer.state.global_step, "train_loss": result.training_loss,
               "final_logged_loss": history[-1]["loss"] if history else None,
               "seconds": round(time.time() - start, 1), "log_history": trainer.state.log_history}
    with open(os.path.join(model_dir, DONE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    log(f"[goemotions] {kind} seed {seed} trained in {summary['seconds']}s (loss {result.training_loss:.3f})")
    return summary
