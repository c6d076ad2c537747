"""Cards a trainer writes: `save_model` writes one, and Trainer's summary says only what is true of the run."""

from __future__ import annotations

import pytest
from accelerate.utils import DistributedType
from transformers import TrainingArguments
from transformers.training_args import ParallelMode

from anchor_hf.hub import read_card
from tiny import make_model
from trainer_utils import anchor_config, anchored_trainer, exact_rows, sgd_args


def test_save_model_writes_the_anchor_card_beside_the_weights(tmp_path, tokenizer):
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path / "run"), anchor_config(),
                               exact_rows())
    trainer.save_model(tmp_path / "final")
    meta, body = read_card(str(tmp_path / "final" / "README.md"))
    assert "| red | axis 3 |" in body and "3 of 16" in body  # the concept, its place, its labelled items
    assert meta["anchor_label_rates"]["red"]["items"] == 3 and "sparse-concept-anchoring" in meta["tags"]


def card_of(trainer) -> tuple[dict, str]:
    trainer.create_model_card()
    return read_card(f"{trainer.args.output_dir}/README.md")


def test_card_of_a_model_built_from_a_config_says_trained_from_scratch_on_a_local_dataset(tmp_path, tokenizer):
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), exact_rows())
    meta, body = card_of(trainer)
    assert "This model was trained from scratch on a local dataset (16 examples)." in body
    assert "[](https://huggingface.co/)" not in body and "None dataset" not in body and "unknown dataset" not in body
    assert "base_model" not in meta
    assert "learning_rate: 0.5" in body and "| red | axis 3 |" in body  # Trainer's facts and the anchors, once each
    assert body.count("## Anchored concepts") == 1


def test_card_names_a_hub_base_model_and_does_not_link_a_local_one(tmp_path, tokenizer):
    model = make_model("llama")
    model.config._name_or_path = "org/base-model"
    meta, body = card_of(anchored_trainer(model, tokenizer, sgd_args(tmp_path / "a"), anchor_config(), exact_rows()))
    assert "fine-tuned from [org/base-model](https://huggingface.co/org/base-model) on a local dataset" in body
    assert meta["base_model"] == "org/base-model"
    local = make_model("llama")
    local.config._name_or_path = str(tmp_path)  # a folder on this machine: nothing to link to
    meta, body = card_of(anchored_trainer(local, tokenizer, sgd_args(tmp_path / "b"), anchor_config(), exact_rows()))
    assert "fine-tuned from a local checkpoint on a local dataset" in body and "base_model" not in meta


@pytest.mark.parametrize("kind, text", [(DistributedType.MULTI_CPU, "multi-CPU"),
                                        (DistributedType.MULTI_GPU, "multi-GPU")])
def test_card_of_a_distributed_run_names_its_real_device_type(tmp_path, tokenizer, monkeypatch, kind, text):
    trainer = anchored_trainer(make_model("llama"), tokenizer, sgd_args(tmp_path), anchor_config(), exact_rows())
    monkeypatch.setattr(TrainingArguments, "parallel_mode", property(lambda self: ParallelMode.DISTRIBUTED))
    monkeypatch.setattr(type(trainer.accelerator), "distributed_type", property(lambda self: kind))
    _, body = card_of(trainer)
    assert f"- distributed_type: {text}\n" in body
    assert body.count("distributed_type") == 1
