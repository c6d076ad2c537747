"""`convert_gguf` / `anchor-hf convert-gguf`: a GGUF checkpoint becomes a folder that loads and saves like any other."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from anchor_hf.cli import main
from anchor_hf.convert import AnchorConversionError, convert_gguf
from gguf_files import tiny_llama, write_tiny_gguf

pytest.importorskip("gguf")


@pytest.fixture
def gguf_file(tmp_path):
    model = tiny_llama()
    return write_tiny_gguf(tmp_path / "tiny.gguf", model), model


def test_convert_gguf_writes_a_folder_that_loads_with_the_same_logits(gguf_file, tmp_path):
    """The converted folder is plain safetensors + tokenizer, and computes what the GGUF's source model computes."""
    path, source = gguf_file
    out = convert_gguf(str(path), str(tmp_path / "plain"))
    assert (tmp_path / "plain" / "model.safetensors").is_file() and not list((tmp_path / "plain").glob("*.gguf"))
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert getattr(model.config, "quantization_config", None) is None
    ids = tok(" the cat", return_tensors="pt")["input_ids"]
    assert tok.convert_ids_to_tokens(ids[0])[:2] == ["Ġt", "he"]  # the GGUF's merges came along
    with torch.no_grad():
        assert torch.equal(model(ids).logits, source(ids).logits)  # float32 in, float32 out: exact
    model.save_pretrained(tmp_path / "resaved")  # what a GGUF-loaded model cannot do
    assert (tmp_path / "resaved" / "model.safetensors").is_file()


def test_a_model_loaded_from_gguf_cannot_be_saved_which_is_why_the_converter_exists(gguf_file, tmp_path):
    path, _ = gguf_file
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    with pytest.raises(Exception, match="not serializable"):
        loaded.save_pretrained(tmp_path / "fails")


def test_convert_gguf_command_writes_the_folder_in_the_asked_dtype(gguf_file, tmp_path, capsys):
    path, _ = gguf_file
    assert main(["convert-gguf", str(path), str(tmp_path / "bf16"), "--dtype", "bfloat16"]) == 0
    assert "from_pretrained" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16


def test_convert_gguf_refuses_an_existing_folder_unless_reusing_a_converted_one(gguf_file, tmp_path):
    path, _ = gguf_file
    (tmp_path / "taken").mkdir()
    with pytest.raises(AnchorConversionError, match="already exists"):
        convert_gguf(str(path), str(tmp_path / "taken"))
    with pytest.raises(AnchorConversionError, match="already exists"):  # reuse needs a converted folder
        convert_gguf(str(path), str(tmp_path / "taken"), reuse=True)
    done = convert_gguf(str(path), str(tmp_path / "done"))
    assert convert_gguf("/no/such/file.gguf", done, reuse=True) == done  # converted once, not read again


def test_convert_gguf_names_a_missing_or_non_gguf_file_before_loading_anything(tmp_path):
    with pytest.raises(AnchorConversionError, match="does not exist"):
        convert_gguf(str(tmp_path / "missing.gguf"), str(tmp_path / "out"))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf file")
    with pytest.raises(AnchorConversionError, match="not a GGUF file"):
        convert_gguf(str(fake), str(tmp_path / "out"))
    with pytest.raises(AnchorConversionError, match="`dtype`"):
        convert_gguf(str(fake), str(tmp_path / "out"), dtype="int8")
    assert not os.path.exists(tmp_path / "out")
