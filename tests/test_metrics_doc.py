"""docs/metrics.md documents every key the trainer logs, and only keys it logs."""

from __future__ import annotations

import os
import re

from datasets import Dataset

from anchor_hf import AnchorConfig, ConceptAnchor
from tiny import make_model
from trainer_utils import anchored_trainer, exact_rows, sgd_args

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "metrics.md")
TRAINER_KEYS = {"epoch", "grad_norm", "learning_rate", "step", "total_flos", "train_loss", "train_runtime",
                "train_samples_per_second", "train_steps_per_second", "eval_runtime", "eval_samples_per_second",
                "eval_steps_per_second"}  # Trainer's own bookkeeping, documented by transformers


def documented_keys() -> set[str]:
    """The backticked keys in the first column of the table."""
    keys = set()
    for line in open(DOC, encoding="utf-8"):
        if line.startswith("| `"):
            keys.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return keys


def test_every_logged_key_is_documented_and_every_documented_key_is_logged(tmp_path, tokenizer):
    """A run with every optional term on (two concepts, example- and token-level labels, exclusivity,
    separation, routing, evaluation) logs exactly the documented keys, concept names written `<c>`."""
    cfg = AnchorConfig(layers=[0, -1], separation=0.1, separation_samples=8, concepts=[
        ConceptAnchor(name="red", dims=[3], exclusive=0.5, exclusive_momentum=0.5, route=True),
        ConceptAnchor(name="joy", dims=[5], tau=None)])
    rows = [{**r, "joy": [float(k % 2) for k in range(len(r["input_ids"]))]} for r in exact_rows()]
    args = sgd_args(tmp_path, steps=3, learning_rate=0.01, eval_strategy="steps", eval_steps=2)
    trainer = anchored_trainer(make_model("llama"), tokenizer, args, cfg, rows, eval_dataset=Dataset.from_list(rows))
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry} - TRAINER_KEYS
    general = {re.sub(r"^(eval_)?anchor/(red|joy)/", r"\1anchor/<c>/", k) for k in logged}
    general = {k.removeprefix("eval_") if k != "eval_loss" else k for k in general}
    documented = documented_keys()
    assert general - documented == set()  # nothing logged goes unexplained
    assert documented - general == set()  # nothing documented is never logged
    assert any(k.startswith("eval_anchor/") for k in logged) and "anchor/<c>/dose_attract" in general
