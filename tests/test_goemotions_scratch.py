"""Recipe A smoke run: `anchor-hf goemotions --recipe scratch` trains, evaluates and reports on a tiny corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from anchor_hf import AnchorConfigError, AnchorDataError
from anchor_hf.cli import main
from anchor_hf.experiments.goemotions.data import LABELS, resolve_concept
from anchor_hf.experiments.goemotions.recipe import load_recipe, parse_overrides, recipe_path
from anchor_hf.experiments.goemotions.report import SUMMARY_KEYS

WORDS = {"anger": "furious rage hate angry", "annoyance": "annoying ugh irritating meh",
         "disgust": "gross disgusting vile yuck", "joy": "happy glad yay fun",
         "gratitude": "thanks thank grateful appreciate", "neutral": "the a table chair today"}
TINY = ["model_config={hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, "
        "num_key_value_heads: 2, max_position_embeddings: 32, tie_word_embeddings: true}",
        "vocab_size=300", "anchor_layers=[0, 1]", "max_steps=3", "per_device_train_batch_size=8",
        "logging_steps=1", "max_length=12", "eval_examples=24", "posthoc_examples=24", "eval_batch_size=16",
        "steer_prompts=3", "steer_prompt_tokens=2", "steer_new_tokens=3", "steer_doses=[0.0, 0.5]"]


def write_corpus(folder: Path, n: int = 120, seed: int = 0) -> Path:
    """A GoEmotions-shaped folder: comments made of each emotion's words plus filler, with their label ids."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        lines = []
        for i in range(n):
            emotion = list(WORDS)[i % len(WORDS)]
            text = " ".join(rng.choice(WORDS[emotion].split() + WORDS["neutral"].split()) for _ in range(6))
            lines.append(f"{text}\t{LABELS.index(emotion)}\t{split}{i}\n")
        (folder / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    return folder


def run_cli(tmp_path: Path, *extra: str) -> int:
    data = write_corpus(tmp_path / "data")
    args = ["goemotions", "--recipe", "scratch", "--concept", "anger", "--seeds", "1", "--out",
            str(tmp_path / "out"), "--data-dir", str(data)]
    for item in TINY:
        args += ["--set", item]
    return main([*args, *extra])


def test_scratch_smoke_run_writes_report_and_summary_with_exactly_the_summary_keys(tmp_path):
    assert run_cli(tmp_path) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["recipe"] == "scratch" and summary["concept"] == "anger" and summary["seeds"] == 1
    assert 0.0 <= summary["auroc_anchored"] <= 1.0 and 0.0 <= summary["auroc_posthoc"] <= 1.0
    assert summary["perplexity_ratio"] > 0
    report = (out / "report.md").read_text()
    assert "anchor-hf goemotions --recipe scratch --concept anger" in report  # the exact command is recorded
    (seed,) = json.loads((out / "report.json").read_text())["per_seed"]
    assert len(seed["auroc_anchored_max_pool_layers"]) == len(seed["layers"]) == 2  # beside the mean-pooled AUROC
    assert seed["auroc_anchored_max_pool"] == max(seed["auroc_anchored_max_pool_layers"])
    assert "| auroc_anchored_max_pool |" in report
    for name in ("detection.png", "steering.png", "entanglement.png", "report.json"):
        assert (out / name).is_file()
    models = out / "models"
    assert {p.name for p in models.iterdir()} >= {"anchored_rate0.05_seed0", "control_seed0", "neversaw_seed0"}
    never = json.loads((models / "neversaw_seed0" / "train_summary.json").read_text())
    control = json.loads((models / "control_seed0" / "train_summary.json").read_text())
    assert never["concept_comments"] == 0 and control["concept_comments"] == 20  # every 6th comment is anger
    anchored_cfg = json.loads((models / "anchored_rate0.05_seed0" / "anchor_config.json").read_text())
    control_cfg = json.loads((models / "control_seed0" / "anchor_config.json").read_text())
    assert anchored_cfg["concepts"][0]["attract"] > 0 and control_cfg["concepts"][0]["attract"] == 0


def test_a_label_rate_sweep_writes_one_report_per_rate_and_the_sweep_plot(tmp_path):
    assert run_cli(tmp_path, "--label-rate", "0.5,1.0") == 0
    out = tmp_path / "out"
    for rate in ("0.5", "1"):
        assert json.loads((out / f"rate_{rate}" / "summary.json").read_text())["label_rate"] == float(rate)
    assert (out / "label_rate_sweep.png").is_file() and len(json.loads((out / "sweep.json").read_text())) == 2
    # control and never-saw-it models are shared across rates: one of each per seed
    assert sorted(p.name for p in (out / "models").iterdir() if "seed" in p.name) == [
        "anchored_rate0.5_seed0", "anchored_rate1_seed0", "control_seed0", "neversaw_seed0"]


@pytest.mark.parametrize("extra, error, message", [
    (["--concept", "rage"], AnchorDataError, "'rage' is not a GoEmotions label"),
    (["--label-rate", "1.5"], AnchorConfigError, "values must be in \\(0, 1\\]"),
    (["--seeds", "0"], AnchorConfigError, "`--seeds` must be an int >= 1"),
    (["--set", "attract=-1"], AnchorConfigError, r"`concepts\[0\].attract` must be >= 0, got -1"),
    (["--set", "label_replay=-1"], AnchorConfigError, "`label_replay` must be an int >= 0, got -1"),
    (["--set", "steer_promts=3"], AnchorConfigError, r"unknown keys \['steer_promts'\]"),
    (["--set", "no_such_key=1"], AnchorConfigError, "unknown keys \\['no_such_key'\\]"),
    # an entanglement group that holds no comment without the concept used to crash evaluation after training
    (["--set", "entanglement_groups=[joy, anger]"], AnchorConfigError,
     "`entanglement_groups\\[1\\]` = 'anger' lies inside the evaluated concept 'anger'"),
    (["--concept", "ekman:anger", "--set", "entanglement_groups=[annoyance]"], AnchorConfigError,
     "`entanglement_groups\\[0\\]` = 'annoyance' lies inside the evaluated concept 'ekman:anger'"),
    (["--set", "entanglement_groups=[joyful]"], AnchorConfigError,
     "`entanglement_groups\\[0\\]` = 'joyful' is not a GoEmotions label or group"),
    (["--set", "entanglement_groups=[joy, joy]"], AnchorConfigError, "`entanglement_groups` repeats 'joy'"),
])
def test_bad_arguments_are_refused_before_anything_is_trained(tmp_path, extra, error, message):
    with pytest.raises(error, match=message):
        run_cli(tmp_path, *extra)
    assert not (tmp_path / "out").exists()


def test_shipped_recipes_load_as_one_driver_recipes_and_overrides_land_where_they_live():
    scratch, smollm2 = load_recipe(recipe_path("scratch")), load_recipe(recipe_path("smollm2"))
    assert not scratch.is_pretrained and smollm2.is_pretrained
    assert scratch.mapping["dataset"] == smollm2.mapping["dataset"] == "goemotions"
    changed = load_recipe(recipe_path("scratch"), parse_overrides(
        ["max_steps=7", "label_replay=4", "steer_prompts=5", "attract=1.0", "anchor_layers=[1, 2]",
         "dataset_args.label_scheme=visit", "anchor_config.concepts.0.tau=0.2"]))
    assert changed.mapping["max_steps"] == 7 and changed.data.label_replay == 4
    assert changed.evaluation.steer_prompts == 5
    assert changed.template["attract"] == 1.0 and changed.template["tau"] == 0.2
    assert changed.mapping["anchor_config"]["layers"] == [1, 2] and changed.data.label_scheme == "visit"
    assert scratch.template["attract"] == 0.3  # control: the shipped recipe is untouched
    full = load_recipe(recipe_path("smollm2"), {"lora_r": 2, "finetune": "full"})
    assert full.mapping["lora_config"] is None  # full fine-tuning, whatever LoRA keys were set beside it
    assert parse_overrides(["anchor_layers=[1, 2]"]) == {"anchor_layers": [1, 2]}
    with pytest.raises(AnchorConfigError, match="`--set` takes key=value"):
        parse_overrides(["max_steps"])


def test_shards_split_the_training_between_processes(tmp_path):
    assert run_cli(tmp_path, "--train-only", "--shard", "0/2") == 0
    models = tmp_path / "out" / "models"
    trained = sorted(p.name for p in models.iterdir() if (p / "train_summary.json").is_file())
    assert trained == ["anchored_rate0.05_seed0", "neversaw_seed0"]  # jobs 0 and 2 of 3
    assert run_cli(tmp_path, "--train-only", "--shard", "1/2") == 0
    trained = sorted(p.name for p in models.iterdir() if (p / "train_summary.json").is_file())
    assert trained == ["anchored_rate0.05_seed0", "control_seed0", "neversaw_seed0"]


@pytest.mark.parametrize("extra, message", [(["--shard", "0/2"], "use it with --train-only")])
def test_shard_needs_train_only(tmp_path, extra, message):
    with pytest.raises(AnchorConfigError, match=message):
        run_cli(tmp_path, *extra)


def test_anchor_span_text_puts_the_span_column_in_the_anchor_config():
    from anchor_hf.experiments.goemotions.data import TEXT_SPAN
    from anchor_hf.experiments.goemotions.train import anchor_config

    concepts = [resolve_concept("anger")]
    text = load_recipe(recipe_path("scratch"), {"anchor_span": "text"}).template
    assert anchor_config(text, [0], concepts, 0.0)["concepts"][0]["span_column"] == TEXT_SPAN
    assert anchor_config(load_recipe(recipe_path("scratch")).template, [0], concepts, 0.0)["concepts"][0][
        "span_column"] is None
    with pytest.raises(AnchorConfigError, match="`anchor_span` must be 'all' or 'text', got 'eos'"):
        load_recipe(recipe_path("scratch"), {"anchor_span": "eos"})


def test_each_concept_gets_its_own_place_and_the_controls_no_weights():
    from anchor_hf.experiments.goemotions.data import resolve_concepts
    from anchor_hf.experiments.goemotions.train import anchor_config

    concepts = resolve_concepts("anger,ekman:joy")
    axes = anchor_config(load_recipe(recipe_path("scratch")).template, [0, 1], concepts, 0.5)
    assert [c["dims"] for c in axes["concepts"]] == [[0], [1]] and [c["name"] for c in axes["concepts"]] == [
        "anger", "ekman_joy"]
    assert axes["separation"] == 0.5
    random = anchor_config(load_recipe(recipe_path("smollm2")).template, [10], concepts, 0.0)
    assert [c["vector"] for c in random["concepts"]] == [{"random_seed": 7000}, {"random_seed": 7001}]
    control = anchor_config(load_recipe(recipe_path("scratch")).template, [0], concepts, 0.5, active=False)
    assert all(c["attract"] == c["repel"] == c["exclusive"] == 0 and not c["route"] for c in control["concepts"])
    assert control["separation"] == 0.0


def test_a_group_without_test_comments_is_refused_before_any_model_trains(tmp_path, monkeypatch):
    """The tiny corpus has no grief comment: the evaluation plan is checked on the data before training."""
    from anchor_hf.experiments.goemotions import train

    def no_training(*args, **kwargs):
        raise AssertionError("a model was trained before the evaluation plan was checked")

    monkeypatch.setattr(train, "train_model", no_training)
    with pytest.raises(AnchorDataError, match=r"entanglement group 'grief' has no test comment without the concept "
                                              r"'anger'"):
        run_cli(tmp_path, "--set", "entanglement_groups=[joy, grief]")
