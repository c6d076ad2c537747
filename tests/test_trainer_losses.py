"""Which loss is which: `loss` is task + anchor term, `anchor/task_loss` is the task alone, evaluation repeats."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import EarlyStoppingCallback

from anchor_hf import AnchorConfig, ConceptAnchor
from tiny import make_model
from trainer_utils import anchor_config, anchored_trainer, exact_rows, sgd_args

RUNTIME_KEYS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


def noisy_rows(n: int = 16) -> list[dict]:
    """Rows whose labels are coin flips (p = 0.5), so every Bernoulli draw differs from the last."""
    return [{**r, "red": 0.5} for r in exact_rows(n=n)]


def test_training_logs_the_task_loss_and_it_adds_up_to_the_logged_loss(tmp_path, tokenizer):
    """Each training log: `loss` = `anchor/task_loss` + `anchor/loss` (both as Trainer scales them)."""
    args = sgd_args(tmp_path, batch=4, accumulation=2, steps=3, learning_rate=0.05)
    trainer = anchored_trainer(make_model("llama"), tokenizer, args, anchor_config(), exact_rows())
    trainer.train()
    entries = [e for e in trainer.state.log_history if "loss" in e and "train_runtime" not in e]
    assert len(entries) == 3
    for entry in entries:
        assert entry["anchor/loss"] > 0.01  # the anchor term is large enough for the sum to tell
        assert entry["loss"] == pytest.approx(entry["anchor/task_loss"] + entry["anchor/loss"], abs=2e-5)


def test_two_evaluations_of_the_same_weights_give_identical_numbers(tmp_path, tokenizer):
    """Evaluation weighs each example by its label probability instead of drawing, and samples separation
    states with a fixed seed, so nothing in it is random."""
    cfg = AnchorConfig(layers=[0, -1], separation=0.5, separation_samples=8,
                       concepts=[ConceptAnchor(name="red", dims=[3], attract=1.0, repel=0.5, tau=0.1)])
    rows = noisy_rows()
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), cfg, rows, draw="bernoulli")
    first = trainer.evaluate(Dataset.from_list(rows))
    second = trainer.evaluate(Dataset.from_list(rows))
    for key in RUNTIME_KEYS:
        first.pop(key), second.pop(key)
    assert first == second
    assert first["eval_anchor/red/labels"] == 8.0  # every example of a batch weighs in with p = 0.5, none drawn out


def test_evaluation_leaves_the_training_label_draws_untouched(tmp_path, tokenizer):
    rows = noisy_rows()
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), rows,
                               draw="bernoulli")
    before = trainer.data_collator.generator.get_state()
    trainer.evaluate(Dataset.from_list(rows))
    assert torch.equal(trainer.data_collator.generator.get_state(), before)
    trainer.data_collator(rows)  # negative control: a training batch does draw
    assert not torch.equal(trainer.data_collator.generator.get_state(), before)


def test_best_model_and_early_stopping_read_the_task_loss_with_one_flag(tmp_path, tokenizer):
    rows = exact_rows()
    args = sgd_args(tmp_path, steps=3, learning_rate=0.05, eval_strategy="steps", eval_steps=1,
                    save_strategy="steps", save_steps=1, load_best_model_at_end=True,
                    metric_for_best_model="eval_anchor/task_loss")
    stopper = EarlyStoppingCallback(early_stopping_patience=5)  # reads the same key: it must be there
    trainer = anchored_trainer(make_model("llama"), tokenizer, args, anchor_config(), rows,
                               eval_dataset=Dataset.from_list(rows), callbacks=[stopper])
    trainer.train()
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    task = [e["eval_anchor/task_loss"] for e in evals]
    assert len(task) == 3 and trainer.state.best_metric == pytest.approx(min(task))
    for e in evals:  # eval_loss is the sum of the two
        assert e["eval_loss"] == pytest.approx(e["eval_anchor/task_loss"] + e["eval_anchor/loss"], abs=2e-5)
    assert trainer.state.best_metric < min(e["eval_loss"] for e in evals)  # not the combined number
