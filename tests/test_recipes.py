"""Every shipped recipe trains with the one driver, `anchor-hf train --config FILE`, from any folder.

Each recipe runs for 2 steps from a scratch working folder. Where its model or data is heavy
(SmolLM2's 135M parameters, the 43k GoEmotions comments) a tiny stand-in is passed on the
command line; everything else is the recipe as shipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anchor_hf.cli import main as cli_main
from anchor_hf.resources import recipes_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))
QUICK = ["--max_steps", "2", "--logging_steps", "1", "--save_strategy", "no", "--disable_tqdm", "true",
         "--report_to", "none"]
TINY_LLAMA = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 2, "max_position_embeddings": 64}


def stand_ins(name: str, folder: Path) -> list[str]:
    """Flags that replace what is too heavy for a test in recipe `name` (nothing for most)."""
    if name.startswith("goemotions"):
        from test_goemotions_scratch import write_corpus

        flags = ["--dataset_args.data_dir", str(write_corpus(folder / "corpus")), "--dataset_args.vocab_size", "300",
                 "--dataset_args.max_length", "12"]
        if name == "goemotions_scratch":
            return [*flags, "--model_config", json.dumps({**TINY_LLAMA, "num_hidden_layers": 4})]  # anchors 0-3
        return [*flags, "--model_name_or_path", smollm2_stand_in(folder)]
    if name == "colour_names_anchored" or name == "colour_names_control":
        return ["--dataset_args.max_names", "120"]
    return []


def smollm2_stand_in(folder: Path) -> str:
    """A tiny Llama with SmolLM2's 30-block depth (the recipe anchors blocks 10, 15, 20) and a local tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tiny import make_tokenizer

    path = folder / "smollm2_stand_in"
    tokenizer = make_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(**{**TINY_LLAMA, "num_hidden_layers": 30}, vocab_size=len(tokenizer),
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_every_yaml_under_recipes_is_a_training_recipe_and_ships():
    assert len(RECIPES) == 11 and {"tiny_llama_synthetic", "colour_ae_anchored", "goemotions_scratch",
                                   "colour_names_destination", "colour_mixing_destination"} <= set(RECIPES)
    assert recipes_dir().resolve() == (ROOT / "recipes").resolve()


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipe_trains_two_steps_with_the_one_driver_from_another_folder(name, tmp_path, monkeypatch):
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    out = work / "out"
    argv = ["train", "--config", str(ROOT / "recipes" / f"{name}.yaml"), "--output_dir", str(out), *QUICK,
            *stand_ins(name, tmp_path)]
    assert cli_main(argv) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and any("anchor/loss" in h for h in state["log_history"])
    config = json.loads((out / "anchor_config.json").read_text())
    assert config["resolved_layers"]  # the anchors were bound to the trained model
    adapter = (out / "adapter_config.json").is_file()
    assert adapter == (name == "goemotions_smollm2_lora")  # LoRA recipes save the adapter only
    if name.startswith("colour_names") or name.startswith("colour_mixing"):
        assert (out / "colour_spec.json").is_file()  # what evaluation needs to rebuild the corpus
    if name.startswith("goemotions"):
        assert json.loads((out / "goemotions_data.json").read_text())["concept_comments"] > 0


def test_a_shipped_recipe_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    """`--config NAME` finds the shipped recipe (`anchor_hf.resources`), so a launch line needs no checkout;
    a path is read relative to the working folder. (`accelerate launch -m anchor_hf.cli train` from another
    folder: tests/test_multiprocess.py.)"""
    from anchor_hf.errors import AnchorConfigError
    from anchor_hf.train_args import parse_train_args

    monkeypatch.chdir(tmp_path)
    _, data_args, _, training_args = parse_train_args(["--config", "colour_ae_anchored"])
    assert data_args.dataset == "colour_cube" and training_args.max_steps == 1500
    with pytest.raises(AnchorConfigError, match="no shipped recipe 'colour_ae_anchord'; shipped recipes: "):
        parse_train_args(["--config", "colour_ae_anchord"])
    with pytest.raises(AnchorConfigError, match="is not a file"):
        parse_train_args(["--config", "recipes/colour_ae_anchored.yaml"])  # relative to this folder: not here
