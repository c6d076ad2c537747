"""AnchorTrainer: the properties of DESIGN.md "Tests and CI" that belong to the foundation."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorForLanguageModeling, Trainer

from anchor_hf import (AnchorCheckpointError, AnchorConfig, AnchorDataError, AnchorTrainer,
                       ConceptAnchor)
from anchor_hf.capture import HiddenStateCapture
from anchor_hf.layers import resolve_layers
from tiny import make_model, make_tokenizer
from trainer_utils import anchor_config, anchored_trainer, exact_rows, max_diff, params, sgd_args


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_zero_weights_give_the_plain_trainer_loss_and_gradients(tmp_path, tokenizer, family):
    """With every λ = 0 the anchored step equals a plain Trainer step bit for bit (up to float noise)."""
    rows = exact_rows()
    plain_model, anchored_model = make_model(family), make_model(family)
    plain = Trainer(model=plain_model, args=sgd_args(tmp_path / "p"), train_dataset=Dataset.from_list(
        [{"input_ids": r["input_ids"]} for r in rows]), data_collator=DataCollatorForLanguageModeling(tokenizer,
                                                                                                    mlm=False))
    plain_loss = plain.train().training_loss
    anchored = anchored_trainer(anchored_model, tokenizer, sgd_args(tmp_path / "a"),
                                anchor_config(attract=0.0, repel=0.0), rows)
    anchored_loss = anchored.train().training_loss
    assert anchored_loss == pytest.approx(plain_loss, abs=1e-6)
    assert max_diff(params(plain_model), params(anchored_model)) < 1e-6
    # negative control: a positive weight changes the step
    control = make_model(family)
    anchored_trainer(control, tokenizer, sgd_args(tmp_path / "c"), anchor_config(), rows).train()
    assert max_diff(params(plain_model), params(control)) > 1e-4


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_accumulation_two_half_batches_equals_one_full_batch(tmp_path, tokenizer, family):
    """2 × (b/2) with accumulation gives the gradients of 1 × b, labels sparse and uneven across halves."""
    rows = exact_rows(n=16, labelled=(0, 1, 2))
    cfg = anchor_config(attract=2.0, repel=1.0)
    one, two = make_model(family), make_model(family)
    anchored_trainer(one, tokenizer, sgd_args(tmp_path / "1", batch=8), cfg, rows).train()
    anchored_trainer(two, tokenizer, sgd_args(tmp_path / "2", batch=4, accumulation=2), anchor_config(2.0, 1.0),
                     rows).train()
    assert max_diff(params(one), params(two)) < 2e-6  # float32 summation order differs between the splits
    plain = make_model(family)
    anchored_trainer(plain, tokenizer, sgd_args(tmp_path / "0", batch=8), anchor_config(0.0, 0.0), rows).train()
    assert max_diff(params(one), params(plain)) > 1e-4  # negative control: the anchor term did act


@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing_gives_the_same_gradients(tmp_path, tokenizer, reentrant):
    """transformers 5 checkpoints a block's `forward`, so hooks on the block see a graph either way."""
    rows = exact_rows()
    plain, ckpt = make_model("llama"), make_model("llama")
    anchored_trainer(plain, tokenizer, sgd_args(tmp_path / "a"), anchor_config(), rows).train()
    args = sgd_args(tmp_path / "b", activation_checkpointing=True,
                    activation_checkpointing_kwargs={"use_reentrant": reentrant})
    anchored_trainer(ckpt, tokenizer, args, anchor_config(), rows).train()
    assert max_diff(params(plain), params(ckpt)) < 1e-6


def test_site_inside_a_reentrant_checkpoint_is_refused_with_the_fix(tmp_path, tokenizer):
    """A module inside the checkpointed forward runs without autograd under reentrant checkpointing."""
    args = sgd_args(tmp_path, activation_checkpointing=True, activation_checkpointing_kwargs={"use_reentrant": True})
    cfg = anchor_config(layers=("model.layers.0.mlp",))
    trainer = anchored_trainer(make_model("llama"), tokenizer, args, cfg, exact_rows())
    with pytest.raises(RuntimeError, match=r"anchor term has no gradient.*use_reentrant': False"):
        trainer.train()


def anchor_term(model, tokenizer, cfg, rows) -> torch.Tensor:
    """The anchor loss of one batch, computed through the trainer's own compute_loss path."""
    trainer = anchored_trainer(model, tokenizer, sgd_args("/tmp/unused"), cfg, rows)
    batch = trainer.data_collator(rows)
    model.eval()
    with HiddenStateCapture(trainer._anchor_modules) as capture:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    from anchor_hf.collator import masks_from_batch

    loss, _ = trainer._anchor_regularizer(capture.states, masks_from_batch(batch), trainer.anchor_weights())
    return loss


def test_peft_wrapped_model_gets_the_same_anchor_term(tokenizer):
    from peft import LoraConfig, get_peft_model

    rows = exact_rows(n=6)
    plain = anchor_term(make_model("llama"), tokenizer, anchor_config(), rows)
    wrapped = get_peft_model(make_model("llama"), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert torch.allclose(anchor_term(wrapped, tokenizer, anchor_config(), rows), plain, atol=1e-6)
    assert plain > 0


def test_left_and_right_padding_give_the_same_anchor_term():
    rows = exact_rows(n=6, labelled=(0, 4))
    right = anchor_term(make_model("llama"), make_tokenizer("right"), anchor_config(), rows)
    left = anchor_term(make_model("llama"), make_tokenizer("left"), anchor_config(), rows)
    assert torch.allclose(left, right, atol=1e-5) and right > 0


def test_save_model_writes_anchor_config_and_reloads_to_identical_outputs(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM

    model = make_model("llama")
    cfg = anchor_config()
    trainer = anchored_trainer(model, tokenizer, sgd_args(tmp_path / "run", steps=2), cfg, exact_rows())
    trainer.train()
    trainer.save_model(tmp_path / "final")
    loaded_cfg = AnchorConfig.from_pretrained(tmp_path / "final")
    assert loaded_cfg.resolved_layers == ["model.layers.0", "model.layers.1"] and loaded_cfg.hidden_size == 32
    assert not (tmp_path / "final" / "config.json").read_text().count("concepts")  # never inside config.json
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    ids = torch.randint(2, 60, (2, 5))
    model.eval()
    assert torch.equal(model(ids).logits, reloaded.eval()(ids).logits)
    assert [n for n, _ in resolve_layers(reloaded, loaded_cfg.layers)] == loaded_cfg.resolved_layers


def test_loading_a_config_saved_for_another_width_is_refused(tmp_path, tokenizer):
    cfg = anchor_config()
    cfg.hidden_size = 64
    with pytest.raises(AnchorCheckpointError, match=r"saved for hidden size 64, but this model's is 32"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), cfg, exact_rows())


def test_loading_a_config_saved_for_other_layers_is_refused(tmp_path, tokenizer):
    cfg = anchor_config()
    cfg.resolved_layers = ["transformer.h.0", "transformer.h.1"]
    with pytest.raises(AnchorCheckpointError, match=r"saved with layers \['transformer.h.0'"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), cfg, exact_rows())


def test_trainer_refuses_axis_beyond_hidden_size_before_training(tmp_path, tokenizer):
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[32])])
    with pytest.raises(ValueError, match=r"`concepts\[0\].dims\[0\]` = 32 is out of range for hidden size 32"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), cfg, exact_rows())


def test_trainer_refuses_dataset_without_the_label_column_before_training(tmp_path, tokenizer):
    rows = [{"input_ids": r["input_ids"]} for r in exact_rows()]
    with pytest.raises(AnchorDataError, match=r"`train_dataset` has no column \['red'\]"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), rows)


def test_trainer_refuses_a_collator_without_anchor_masks(tmp_path, tokenizer):
    with pytest.raises(AnchorDataError,
                       match=r"`data_collator` is DataCollatorForLanguageModeling.*AnchorDataCollator"):
        AnchorTrainer(model=make_model("llama"), args=sgd_args(tmp_path), anchor_config=anchor_config(),
                      train_dataset=Dataset.from_list(exact_rows()),
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))


def test_trainer_refuses_a_missing_anchor_config(tmp_path, tokenizer):
    with pytest.raises(ValueError, match=r"`anchor_config` must be an AnchorConfig, got NoneType"):
        AnchorTrainer(model=make_model("llama"), args=sgd_args(tmp_path))


def test_concept_columns_survive_remove_unused_columns_and_metrics_are_logged(tmp_path, tokenizer):
    rows = [{**r, "note": "x"} for r in exact_rows()]
    args = sgd_args(tmp_path, steps=2, remove_unused_columns=True)
    trainer = anchored_trainer(make_model("llama"), tokenizer, args, anchor_config(), rows)
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    for key in ("anchor/loss", "anchor/red/attract", "anchor/red/repel", "anchor/red/cos_labelled",
                "anchor/red/cos_unlabelled", "anchor/red/weight_attract", "anchor/red/dose_attract"):
        assert key in logged, key
    metrics = trainer.evaluate(Dataset.from_list(rows))
    assert "eval_anchor/red/cos_labelled" in metrics and "eval_loss" in metrics


def test_schedules_drive_the_logged_weights(tmp_path, tokenizer):
    from anchor_hf import Schedule

    cfg = AnchorConfig(layers=[-1], concepts=[ConceptAnchor(
        name="red", dims=[3], attract=1.0, repel=2.5, repel_relative=True,
        attract_schedule=Schedule(ramp_end=0.5, shape="linear"),
        repel_schedule=Schedule(ramp_end=0.0, start=1.0, anneal_start=0.5, anneal_end=1.0, floor=0.2,
                                shape="linear"))])
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path, steps=4, learning_rate=1e-3),
                               cfg, exact_rows())
    trainer.train()
    history = [e for e in trainer.state.log_history if "anchor/red/weight_attract" in e]
    attract = [e["anchor/red/weight_attract"] for e in history]
    repel = [e["anchor/red/weight_repel"] for e in history]
    assert attract == pytest.approx([0.0, 0.5, 1.0, 1.0])  # progress 0, .25, .5, .75
    assert repel == pytest.approx([2.5, 2.5, 2.5, 1.5])  # relative to attract's peak; anneals after 0.5


def test_a_site_wider_than_the_model_width_is_refused_when_the_trainer_is_built(tmp_path, tokenizer):
    cfg = anchor_config(layers=("model.layers.0.mlp.gate_proj",))  # outputs intermediate_size = 64, not 32
    with pytest.raises(AnchorCheckpointError, match=r"'model.layers.0.mlp.gate_proj' outputs states of width 64, "
                                                    r"but the model's hidden size is 32"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), cfg, exact_rows())


def test_trainer_refuses_a_text_dataset_with_the_line_that_tokenizes_it(tmp_path, tokenizer):
    rows = [{"comment": "w2 w3 w4", "red": 1.0}, {"comment": "w5 w6", "red": 0.0}]
    with pytest.raises(AnchorDataError, match=r"`train_dataset` has no `input_ids` column; columns present: "
                                              r"\['comment', 'red'\]\. .*tokenize the text first.*"
                                              r"`dataset = dataset.map\(lambda batch: tokenizer\(batch\['comment'\]\), "
                                              r"batched=True\)`"):
        anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), rows)
    fixed = Dataset.from_list(rows).map(lambda batch: tokenizer(batch["comment"]), batched=True)  # the line works
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path, batch=2), anchor_config(),
                               fixed.to_list())
    trainer.train()
