"""`anchor-hf train`: flat YAML recipe + CLI overrides → trained, saved, carded anchored model."""

from __future__ import annotations

import json
import os

import pytest
import yaml

import anchor_hf.experiments  # noqa: F401  registers the synthetic dataset of the recipe
from anchor_hf import AnchorConfig, AnchorConfigError
from anchor_hf.cli import main as cli_main
from anchor_hf.errors import AnchorCheckpointError, AnchorDataError
from anchor_hf.train_args import AnchorArguments, parse_train_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "tiny_llama_synthetic.yaml")
ANCHOR = {"layers": [0, 1], "concepts": [{"name": "marked", "dims": [0], "attract": 0.5, "repel": 1.0}]}
QUIET = ["--disable_tqdm", "true", "--report_to", "none"]


def test_recipe_sets_defaults_and_flags_override_them():
    model_args, data_args, anchor_args, training_args = parse_train_args(["--config", RECIPE])
    assert training_args.max_steps == 40 and training_args.per_device_train_batch_size == 8
    assert model_args.model_config["hidden_size"] == 32 and data_args.dataset == "synthetic"
    assert anchor_args.to_anchor_config().concept("marked").dims == [0]
    _, _, _, overridden = parse_train_args(["--config", RECIPE, "--max_steps", "3", "--learning_rate", "0.01"])
    assert overridden.max_steps == 3 and overridden.learning_rate == 0.01
    assert overridden.per_device_train_batch_size == 8  # untouched keys keep the recipe's value


def test_recipe_with_an_unknown_key_is_refused_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learnign_rate: 0.1\nanchor_config: {}\n")
    with pytest.raises(AnchorConfigError, match=r"unknown keys \['learnign_rate'\]"):
        parse_train_args(["--config", str(bad)])


def test_an_unknown_flag_is_refused_naming_it():
    with pytest.raises(AnchorConfigError, match=r"unknown arguments \['--bogus', '1'\]"):
        parse_train_args(["--config", RECIPE, "--bogus", "1"])


def test_anchor_config_is_read_inline_from_json_from_a_yaml_file_and_from_a_folder(tmp_path):
    expected = AnchorConfig(**ANCHOR)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(ANCHOR))
    AnchorConfig(**ANCHOR).save_pretrained(tmp_path / "saved")
    for value in (ANCHOR, json.dumps(ANCHOR), str(tmp_path / "a.yaml"), str(tmp_path / "saved")):
        assert AnchorArguments(anchor_config=value).to_anchor_config() == expected
    other = {**ANCHOR, "layers": [1]}
    assert AnchorArguments(anchor_config=json.dumps(other)).to_anchor_config() != expected  # control


@pytest.mark.parametrize("value, message", [
    (None, r"`anchor_config` is required"),
    ("[1, 2]", r"must be a mapping"),
    ('{"layers": [0], "concepts": [], "colour": 1}', r"unknown keys \['colour'\]"),
    ('{"layers": [0], "concepts": []}', r"`concepts` must hold at least one"),
])
def test_bad_anchor_config_is_refused_with_the_reason(value, message):
    with pytest.raises(AnchorConfigError, match=message):
        AnchorArguments(anchor_config=value).to_anchor_config()


def test_bad_label_draw_is_refused():
    with pytest.raises(AnchorConfigError, match=r"`label_draw` must be 'bernoulli' or 'expected', got 'coin'"):
        parse_train_args(["--config", RECIPE, "--label_draw", "coin"])


def test_train_command_trains_saves_config_state_and_card(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--config", RECIPE, "--output_dir", str(out), "--max_steps", "6", "--logging_steps", "1",
            "--save_strategy", "no", *QUIET]
    assert cli_main(argv) == 0
    cfg = AnchorConfig.from_pretrained(out)
    assert cfg.resolved_layers == ["model.layers.0", "model.layers.1"] and cfg.hidden_size == 32
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    steps = [h for h in history if "anchor/loss" in h]
    assert len(steps) == 6 and all(h["anchor/marked/weight_attract"] == 0.5 for h in steps)
    assert steps[-1]["loss"] < steps[0]["loss"]  # it trained
    card = (out / "README.md").read_text()
    assert "| marked | axis 0 |" in card and "labelled items" in card and "2512.12469" in card
    assert "This model was trained from scratch on a local dataset (256 examples)." in card  # not "[](…)", "None"


def test_train_command_tokenizes_a_text_file_with_a_saved_tokenizer(tmp_path):
    from anchor_hf.experiments.synthetic import synthetic_tokenizer

    synthetic_tokenizer(64).save_pretrained(tmp_path / "tok")
    rows = [{"text": " ".join(f"t{3 + (i + k) % 50}" for k in range(10)), "marked": float(i % 4 == 0)}
            for i in range(16)]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "run"
    argv = ["--config", RECIPE, "--dataset", str(tmp_path / "data.jsonl"), "--dataset_args", "null",
            "--tokenizer_name_or_path", str(tmp_path / "tok"), "--output_dir", str(out), "--max_steps", "2",
            "--save_strategy", "no", *QUIET]
    from anchor_hf.commands.train import run

    trainer = run(argv)
    assert trainer.train_dataset.column_names[:2] == ["text", "marked"]
    assert len(trainer.train_dataset[0]["input_ids"]) == 10 and trainer.state.global_step == 2


def test_text_file_without_text_or_ids_is_refused(tmp_path):
    from anchor_hf.commands.train import run

    (tmp_path / "data.jsonl").write_text(json.dumps({"body": "t3 t4", "marked": 1.0}))
    with pytest.raises(AnchorDataError, match=r"neither `input_ids` nor the text column 'text'"):
        run(["--config", RECIPE, "--dataset", str(tmp_path / "data.jsonl"), "--dataset_args", "null",
             "--tokenizer_name_or_path", _saved_tokenizer(tmp_path), "--output_dir", str(tmp_path / "o"), *QUIET])


def test_resume_last_without_a_checkpoint_is_refused(tmp_path):
    from anchor_hf.commands.train import run

    with pytest.raises(AnchorCheckpointError, match=r"holds no checkpoint-N folder"):
        run(["--config", RECIPE, "--output_dir", str(tmp_path), "--resume_from_checkpoint", "last", *QUIET])


def test_model_config_with_a_pretrained_model_is_refused(tmp_path):
    from anchor_hf.commands.train import run

    with pytest.raises(AnchorConfigError, match=r"`model_config` builds a fresh model"):
        run(["--config", RECIPE, "--model_name_or_path", str(tmp_path), "--tokenizer_name_or_path",
             _saved_tokenizer(tmp_path), "--output_dir", str(tmp_path / "o"), *QUIET])


def _saved_tokenizer(tmp_path) -> str:
    from anchor_hf.experiments.synthetic import synthetic_tokenizer

    path = tmp_path / "tok"
    synthetic_tokenizer(64).save_pretrained(path)
    return str(path)


def test_one_key_of_a_section_is_overridden_with_a_dotted_flag():
    _, data_args, _, _ = parse_train_args(["--config", RECIPE, "--dataset_args.label_rate", "1.0",
                                          "--dataset_args.concept=hot", "--model_config.hidden_size", "16"])
    assert data_args.dataset_args == {"examples": 256, "seq_len": 32, "vocab_size": 64, "concept": "hot",
                                      "concept_rate": 0.25, "label_rate": 1.0}
    model_args, _, _, _ = parse_train_args(["--config", RECIPE, "--model_config.hidden_size", "16"])
    assert model_args.model_config["hidden_size"] == 16 and model_args.model_config["num_hidden_layers"] == 2
    _, untouched, _, _ = parse_train_args(["--config", RECIPE])
    assert untouched.dataset_args["label_rate"] == 0.5  # control: the recipe's own value


def test_a_hex_colour_on_the_command_line_stays_text():
    from anchor_hf.overrides import parse_value

    assert parse_value("#ff0000") == "#ff0000" and parse_value("3") == 3 and parse_value("[0, 1]") == [0, 1]
    assert parse_value("null") is None and parse_value("true") is True


@pytest.mark.parametrize("flags, error, message", [
    (["--dataset_args.label_rte", "1.0"], AnchorConfigError,
     r"`dataset_args` has unknown keys \['label_rte'\] for dataset 'synthetic'; allowed: \['examples'"),
    (["--dataset_args.label_rate", "2"], AnchorDataError, r"`label_rate` must be a probability in \[0, 1\], got 2"),
    (["--max_length", "64"], AnchorConfigError, r"\['max_length'\] apply to a file or Hub dataset"),
    (["--evaluation.steer_prompts", "3"], AnchorConfigError, r"dataset 'synthetic' has no evaluation settings"),
    (["--dataset", "nope.jsonl"], AnchorConfigError, r"`dataset_args` is set, but `dataset` = 'nope.jsonl' is a file"),
    (["--dataset_args.label_rate"], AnchorConfigError, r"`--dataset_args.label_rate` needs a value"),
])
def test_a_bad_section_is_refused_before_anything_is_built(tmp_path, flags, error, message):
    from anchor_hf.commands.train import run

    with pytest.raises(error, match=message):
        run(["--config", RECIPE, "--output_dir", str(tmp_path / "o"), *QUIET, *flags])
    assert not (tmp_path / "o").exists()


def test_a_random_vector_is_drawn_at_the_model_width_from_its_seed(tmp_path):
    from anchor_hf.commands.train import run
    from anchor_hf.places import random_direction

    anchor = {"layers": [0, 1], "concepts": [{"name": "marked", "vector": {"random_seed": 7}, "attract": 0.5}]}
    trainer = run(["--config", RECIPE, "--anchor_config", json.dumps(anchor), "--output_dir", str(tmp_path / "o"),
                   "--max_steps", "1", "--save_strategy", "no", *QUIET])
    saved = AnchorConfig.from_pretrained(tmp_path / "o").concept("marked").vector
    assert len(saved) == 32 and saved == pytest.approx(random_direction(32, 7))  # the written-out direction
    assert saved != pytest.approx(random_direction(32, 8))  # control: the seed decides it
    assert trainer.anchor_config.hidden_size == 32
    with pytest.raises(AnchorConfigError, match=r"must be a list of numbers or \{random_seed: INT\}"):
        AnchorArguments(anchor_config={**anchor, "concepts": [{"name": "m", "vector": {"seed": 1}}]}
                        ).to_anchor_config(8)
    with pytest.raises(AnchorConfigError, match="is drawn at the model's width, which is not known here"):
        AnchorArguments(anchor_config=anchor).to_anchor_config()


def test_lora_config_trains_adapters_only_and_saves_the_adapter(tmp_path):
    from anchor_hf.commands.train import run

    base = tmp_path / "base"
    run(["--config", RECIPE, "--output_dir", str(base), "--max_steps", "1", "--save_strategy", "no", *QUIET])
    trainer = run(["--config", RECIPE, "--model_name_or_path", str(base), "--model_config", "null",
                   "--lora_config", '{"r": 2, "target_modules": ["q_proj", "v_proj"]}',
                   "--output_dir", str(tmp_path / "lora"), "--max_steps", "2", "--save_strategy", "no", *QUIET])
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert (tmp_path / "lora" / "anchor_config.json").is_file()
    assert not (tmp_path / "lora" / "model.safetensors").exists()
    with pytest.raises(AnchorConfigError, match="`lora_config`"):
        run(["--config", RECIPE, "--lora_config", '{"rank": 2}', "--output_dir", str(tmp_path / "bad"), *QUIET])


@pytest.mark.parametrize("name", ["missing.jsonl", "missing_folder/", "./data/missing.parquet"])
def test_a_missing_local_dataset_path_is_refused_naming_it(tmp_path, name):
    """A path that does not exist used to go to the Hub loader and come back as a raw FileNotFoundError."""
    from anchor_hf.commands.train import run

    path = str(tmp_path / name) if not name.startswith("./") else name
    with pytest.raises(AnchorDataError, match=rf"`dataset` = '{path}' is not a file or folder"):
        run(["--config", RECIPE, "--dataset", path, "--dataset_args", "null", "--tokenizer_name_or_path",
             _saved_tokenizer(tmp_path), "--output_dir", str(tmp_path / "o"), *QUIET])


def test_a_hub_dataset_that_cannot_be_reached_is_a_clear_error(tmp_path):
    from anchor_hf.commands.train import run

    with pytest.raises(AnchorDataError, match=r"could not load the Hub dataset 'nobody/no-such-dataset'"):
        run(["--config", RECIPE, "--dataset", "nobody/no-such-dataset", "--dataset_args", "null",
             "--tokenizer_name_or_path", _saved_tokenizer(tmp_path), "--output_dir", str(tmp_path / "o"), *QUIET])


def test_an_empty_dataset_file_is_refused_before_training(tmp_path):
    from anchor_hf.commands.train import run

    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(AnchorDataError, match=r"`dataset` = '.*empty.jsonl' has 0 rows"):
        run(["--config", RECIPE, "--dataset", str(tmp_path / "empty.jsonl"), "--dataset_args", "null",
             "--tokenizer_name_or_path", _saved_tokenizer(tmp_path), "--output_dir", str(tmp_path / "o"), *QUIET])


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_train_examples_below_one_is_refused(tmp_path, value):
    with pytest.raises(AnchorConfigError, match=rf"`max_train_examples` must be None or an int >= 1, got {value}"):
        parse_train_args(["--config", RECIPE, "--max_train_examples", value])


@pytest.mark.parametrize("concept", [{"dims": 0}, {"dims": [0], "label_column": "labels"},
                                     {"dims": [0], "label_column": "attention_mask"}])
def test_a_bad_concept_in_a_recipe_is_refused_naming_the_field(concept):
    anchor = json.dumps({"layers": [0], "concepts": [{"name": "marked", **concept}]})
    with pytest.raises(AnchorConfigError, match=r"`concepts\[0\]"):
        AnchorArguments(anchor_config=anchor).to_anchor_config()
