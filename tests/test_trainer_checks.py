"""AnchorTrainer refuses what would make a run fail silently: non-finite terms, bad rows, no labels."""

from __future__ import annotations

import math
import os
import sys
import warnings

import pytest
import torch

from anchor_hf import AnchorConfig, AnchorDataError, ConceptAnchor
from anchor_hf.errors import AnchorTrainingError
from tiny import make_model
from trainer_utils import anchor_config, anchored_trainer, exact_rows, sgd_args


def test_tiny_tau_trains_to_finite_weights_and_gradient_norms(tmp_path, tokenizer):
    """Padded positions sit outside every span; at τ = 1e-4 their `exp` used to overflow and
    turn the gradient into NaN from the first step while `train()` returned normally."""
    model = make_model("llama")
    trainer = anchored_trainer(model, tokenizer, sgd_args(tmp_path, steps=2, max_grad_norm=1.0, learning_rate=0.05),
                               anchor_config(tau=1e-4), exact_rows())
    trainer.train()
    norms = [e["grad_norm"] for e in trainer.state.log_history if "grad_norm" in e]
    assert norms and all(math.isfinite(n) for n in norms)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_huge_attract_weight_stops_training_naming_concept_layer_and_step(tmp_path, tokenizer):
    """attract = 1e30 moves the weights by ~1e30 at step 1, so step 2's states and anchor term are
    non-finite; the run must stop with an error, never return a NaN model as a success."""
    cfg = AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="red", dims=[3], attract=1e30, repel=0.0)])
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path, steps=4), cfg, exact_rows())
    with pytest.raises(AnchorTrainingError, match=r"concept 'red' at layer 'model.layers.0' became non-finite "
                                                  r"at step 2.*attract = 1e\+30"):
        trainer.train()


def test_a_non_finite_term_is_caught_before_a_checkpoint_is_written(tmp_path, tokenizer):
    cfg = AnchorConfig(layers=[1], concepts=[ConceptAnchor(name="red", dims=[3], attract=1e30)])
    args = sgd_args(tmp_path, steps=4, logging_steps=100, save_strategy="steps", save_steps=2)
    trainer = anchored_trainer(make_model("llama"), tokenizer, args, cfg, exact_rows())
    with pytest.raises(AnchorTrainingError, match=r"concept 'red' at layer 'model.layers.1' became non-finite"):
        trainer.train()
    assert not list(tmp_path.glob("checkpoint-*"))


def test_the_finiteness_check_reads_nothing_back_from_the_device_per_step(tmp_path, tokenizer, monkeypatch):
    """The check keeps a flag on the device and reads it when metrics are logged: anchor_hf's code
    in a training step converts no tensor to a Python value (each would be a host sync on a GPU)."""
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), exact_rows())
    batch = trainer.data_collator(exact_rows()[:4])
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test bypasses
    reads = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **kw):
            caller = sys._getframe(1).f_code.co_filename
            if f"{os.sep}anchor_hf{os.sep}" in caller:  # the model's own forward (transformers) may read masks
                reads.append((_name, caller))
            return _original(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    trainer.compute_loss(trainer.model, batch)
    monkeypatch.undo()
    assert reads == []
    assert trainer._anchor_watch.fault is not None  # control: the check ran


def test_an_exclusivity_only_config_inside_a_reentrant_checkpoint_is_refused(tmp_path, tokenizer):
    """The exclusivity term is 0 until its running means exist, and they never update from states
    without a gradient: the run would train with no anchor gradient at all."""
    args = sgd_args(tmp_path, steps=3, activation_checkpointing=True,
                    activation_checkpointing_kwargs={"use_reentrant": True})
    cfg = AnchorConfig(layers=["model.layers.0.mlp"], concepts=[ConceptAnchor(
        name="red", dims=[3], attract=0.0, repel=0.0, exclusive=1.0, exclusive_momentum=0.5)])
    trainer = anchored_trainer(make_model("llama"), tokenizer, args, cfg, exact_rows())
    with pytest.raises(AnchorTrainingError, match=r"no gradient although its weights are > 0.*'model.layers.0.mlp'"
                                                  r".*use_reentrant': False"):
        trainer.train()


def test_one_bad_row_in_256_is_refused_when_the_trainer_is_built_naming_the_row(tmp_path, tokenizer):
    """It used to pass until the batch holding it was collated (step 2 here), before any checkpoint."""
    rows = exact_rows(n=256)
    rows[200]["red"] = 1.5
    with pytest.raises(AnchorDataError, match=r"`train_dataset` row 200: `red` = 1.5 is not a probability"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), rows)


def token_rows() -> list[dict]:
    return [{"input_ids": r["input_ids"], "red": [r["red"]] * len(r["input_ids"])} for r in exact_rows()]


def with_row(rows: list[dict], index: int, **changes) -> list[dict]:
    rows[index] = {**rows[index], **changes}
    return rows


@pytest.mark.parametrize("rows, match", [
    ([{**r, "red": bool(r["red"])} for r in exact_rows()], r"`train_dataset` row 0: `red` holds booleans"),
    (with_row(token_rows(), 3, red=[0.5, 0.5]),
     r"`train_dataset` row 3: token-level `red` has length 2, but `input_ids` has 6"),
    (with_row(token_rows(), 3, input_ids=[], red=[]), r"`train_dataset` row 3 has empty `input_ids`"),
    (with_row(exact_rows(), 5, input_ids=[3, -1]), r"`train_dataset` row 5: `input_ids` must be a list of token ids"),
])
def test_rows_are_checked_for_types_lengths_and_ranges(tmp_path, tokenizer, rows, match):
    with pytest.raises(AnchorDataError, match=match):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), rows)


def test_an_eval_dataset_is_checked_too(tmp_path, tokenizer):
    from datasets import Dataset

    bad = exact_rows(n=4)
    bad[1]["red"] = -0.5
    with pytest.raises(AnchorDataError, match=r"`eval_dataset` row 1: `red` = -0.5 is not a probability"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), exact_rows(),
                         eval_dataset=Dataset.from_list(bad))


def test_an_empty_dataset_is_refused_before_training(tmp_path, tokenizer):
    from datasets import Dataset

    from anchor_hf import AnchorDataCollator, AnchorTrainer

    empty = Dataset.from_dict({"input_ids": [], "red": []})
    cfg = anchor_config()
    with pytest.raises(AnchorDataError, match=r"`train_dataset` has 0 rows"):
        AnchorTrainer(model=make_model("llama"), args=sgd_args(tmp_path), anchor_config=cfg, train_dataset=empty,
                      data_collator=AnchorDataCollator(tokenizer, cfg))


def test_a_training_set_without_a_single_label_warns_that_only_repel_trains(tmp_path, tokenizer):
    rows = exact_rows(labelled=())
    with pytest.warns(UserWarning, match=r"concept 'red' has no label in `train_dataset` \(column 'red'\): its "
                                         r"attract term never acts"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), rows)
    with warnings.catch_warnings():  # control: a weight-0 concept (a control run) has nothing to warn about
        warnings.simplefilter("error")
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(attract=0.0), rows)


def test_a_concept_named_overweight_logs_its_dose_under_its_own_name(tmp_path, tokenizer):
    rows = [{"input_ids": r["input_ids"], "overweight": r["red"]} for r in exact_rows()]
    cfg = AnchorConfig(layers=[-1], concepts=[ConceptAnchor(name="overweight", dims=[3], attract=1.0)])
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path, steps=2, learning_rate=1e-3),
                               cfg, rows)
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert "anchor/overweight/dose_attract" in logged and "anchor/dose_separation" in logged
    assert not [k for k in logged if "overdose" in k]


def test_building_a_second_trainer_on_the_same_collator_does_not_offset_its_seed_twice(tmp_path, tokenizer,
                                                                                        monkeypatch):
    """Each process offsets the label seed by its index; the offset is applied to the collator's
    own seed, never added again to an already offset one."""
    from transformers import TrainingArguments

    from anchor_hf import AnchorDataCollator, AnchorTrainer
    from anchor_hf.collator import RANK_SEED_STRIDE

    monkeypatch.setattr(TrainingArguments, "process_index", property(lambda self: 1))
    cfg = anchor_config()
    collator = AnchorDataCollator(tokenizer, cfg, seed=5)
    for _ in range(2):
        AnchorTrainer(model=make_model("llama"), args=sgd_args(tmp_path), anchor_config=cfg,
                      train_dataset=exact_rows(), data_collator=collator)
    assert collator.seed == 5
    expected = torch.Generator().manual_seed(5 + RANK_SEED_STRIDE)
    assert torch.equal(collator.generator.get_state(), expected.get_state())
