"""anchor_hf.io: atomic writes leave whole files or none; saved models load, adapters included."""

from __future__ import annotations

import json
import os

import pytest
import torch

from anchor_hf.errors import AnchorCheckpointError
from anchor_hf.io import atomic_path, load_model, write_json, write_text


def test_write_text_replaces_the_file_with_plain_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "out" / "report.md"
    write_text(str(target), "first")
    write_text(target, "second")
    assert target.read_text() == "second"
    assert os.stat(target).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]


def test_atomic_path_keeps_the_old_file_when_the_body_raises(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(str(target)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_write_json_writes_a_final_newline_and_refuses_nan_when_asked(tmp_path):
    path = write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert open(path).read().endswith("\n") and json.loads(open(path).read()) == {"x": [1, 2]}
    with pytest.raises(ValueError):
        write_json(tmp_path / "b.json", {"x": float("nan")}, allow_nan=False)
    assert not (tmp_path / "b.json").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def _tiny_llama(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2))
    model.save_pretrained(tmp_path / "base")
    return model


def test_load_model_loads_an_adapter_over_its_base_and_merges_it_to_the_same_outputs(tmp_path):
    from peft import LoraConfig, get_peft_model

    base = _tiny_llama(tmp_path)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "o_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[1, 5, 7, 3]])
    expected = lora.eval()(ids).logits
    wrapped = load_model(tmp_path / "adapter", base_model=str(tmp_path / "base"))
    merged = load_model(tmp_path / "adapter", base_model=str(tmp_path / "base"), merge_adapter=True)
    assert type(wrapped).__name__ == "PeftModelForCausalLM" and not hasattr(merged, "peft_config")
    assert not merged.training
    torch.testing.assert_close(wrapped(ids).logits, expected)
    torch.testing.assert_close(merged(ids).logits, expected, atol=1e-5, rtol=1e-5)  # merging reorders float sums
    plain = load_model(tmp_path / "base")
    assert not torch.allclose(plain(ids).logits, expected)  # control: the adapter changes the outputs


def test_load_model_refuses_a_base_model_for_a_full_checkpoint(tmp_path):
    _tiny_llama(tmp_path)
    with pytest.raises(AnchorCheckpointError, match="holds a full model, not an adapter"):
        load_model(tmp_path / "base", base_model="elsewhere")
