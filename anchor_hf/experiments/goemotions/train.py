"""Train one GoEmotions model through the one training driver: anchored, control or never-saw-it.

The three kinds differ in one thing each, so differences between them are attributable:
- `anchored`: the recipe's anchor weights, concept comments labelled at the label rate;
- `control`: the same trainer and data with every anchor weight 0 (the regularizer then
  adds exactly nothing, tests/test_trainer.py), the baseline of task cost and post-hoc;
- `neversaw`: the control on the training split with every concept comment removed
  (`dataset_args.exclude_concept`), the gold standard of removal that efficacy is measured against.
Each is `anchor_hf.commands.train.run` on the run's recipe with `--output_dir`, `--seed`,
the label rate and the kind's anchor config. Finished models are reused (a
`train_summary.json` marks them complete).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from anchor_hf.io import write_json
from .builder import DATA_FILE
from .data import EmotionConcept
from .recipe import RANDOM_SEED

KINDS = ("anchored", "control", "neversaw")
DONE = "train_summary.json"


def anchor_config(template: dict[str, Any], layers: list[Any], concepts: Sequence[EmotionConcept],
                  separation: float, active: bool = True) -> dict[str, Any]:
    """The anchor config mapping of a run: a copy of `template` per concept, each in its own place.

    The k-th concept goes on axis k when the template names axes, or on the random direction
    of seed `RANDOM_SEED + k` when it names a random vector, so every seed and kind shares the
    places. Unless `active`, every weight is 0 (the control and never-saw-it models).
    """
    anchors = []
    for k, concept in enumerate(concepts):
        place = {"dims": [k]} if "dims" in template else {"vector": {"random_seed": RANDOM_SEED + k}}
        anchor = {key: value for key, value in template.items() if key not in ("dims", "vector")}
        anchor.update(name=concept.column, **place)
        if not active:
            anchor.update(attract=0.0, repel=0.0, exclusive=0.0, route=False)
        anchors.append(anchor)
    return {"layers": list(layers), "concepts": anchors, "separation": separation if active else 0.0}


def is_finished(model_dir: str) -> bool:
    return os.path.isfile(os.path.join(model_dir, DONE))


def train_model(recipe_file: str, kind: str, seed: int, label_rate: float, anchor: dict[str, Any], model_dir: str,
                log: Any = print, destination: str | None = None) -> dict[str, Any]:
    """Train one model into `model_dir` (skipped when finished there); returns its train summary.

    Args:
        recipe_file: the run's recipe (overrides applied, tokenizer and model paths resolved).
        kind: `anchored`, `control` or `neversaw`.
        anchor: the kind's anchor config mapping (`anchor_config`).
        destination: a trained destination's label (`dataset_args.destination`), anchored models only;
            controls never get one, so they are the same models with or without it.
    """
    from anchor_hf.commands.train import run

    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    if is_finished(model_dir):
        with open(os.path.join(model_dir, DONE), encoding="utf-8") as f:
            return json.load(f)
    argv = ["--config", recipe_file, "--output_dir", model_dir, "--seed", str(seed),
            "--dataset_args.label_rate", repr(float(label_rate)), "--anchor_config", json.dumps(anchor)]
    if kind == "neversaw":
        argv += ["--dataset_args.exclude_concept", "true"]
    if destination is not None:
        if kind != "anchored":
            raise ValueError(f"only anchored models train a destination, got kind {kind!r}")
        argv += ["--dataset_args.destination", destination]
    log(f"[goemotions] training {kind} seed {seed} (label rate {label_rate}) -> {model_dir}")
    start = time.time()
    trainer = run(argv)
    with open(os.path.join(model_dir, DATA_FILE), encoding="utf-8") as f:
        data = json.load(f)
    history = trainer.state.log_history
    losses = [h for h in history if "loss" in h]
    summary = {"kind": kind, "seed": seed, "label_rate": label_rate, **data, "steps": trainer.state.global_step,
               "train_loss": history[-1]["train_loss"], "final_logged_loss": losses[-1]["loss"] if losses else None,
               "seconds": round(time.time() - start, 1), "log_history": history}
    write_json(os.path.join(model_dir, DONE), summary, indent=1)
    log(f"[goemotions] {kind} seed {seed} trained in {summary['seconds']}s (loss {summary['train_loss']:.3f})")
    return summary
