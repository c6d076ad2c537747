"""Control-vector export (anchor_hf.control_vector, `anchor-hf export-control-vector`), read back with `gguf`."""

from __future__ import annotations

import pytest
import torch

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.cli import main
from anchor_hf.control_vector import AnchorExportError, control_vector, write_control_vector
from anchor_hf.interventions import steer
from anchor_hf.places import random_direction
from tiny import WIDTH, make_model, make_tokenizer

gguf = pytest.importorskip("gguf")
TEXTS = ["w2 w3 w4 w5 w6 w7", "w10 w11 w12", "w20 w30 w40 w50 w60"]


def config(layers=(1, 2)) -> AnchorConfig:
    v = random_direction(WIDTH, 3, avoid=[2, 5])  # orthogonal to the subspace concept's place
    return AnchorConfig(layers=list(layers), concepts=[ConceptAnchor(name="red", vector=v),
                                                       ConceptAnchor(name="vivid", dims=[2, 5])])


def field(reader, key: str):
    return reader.fields[key].contents()


def test_exported_file_has_the_llama_cpp_layout_and_states_its_scale(tmp_path):
    """general.architecture controlvector, model hint, layer count, one float32 direction.N [D] per block,
    each dose × (median norm of block N's output over the text) × v̂."""
    model, tok, cfg = make_model("llama", layers=4).eval(), make_tokenizer(), config()  # blocks 1, 2 of 4
    path = write_control_vector(control_vector(model, tok, cfg, "red", dose=0.5, texts=TEXTS), str(tmp_path / "r.gguf"))
    reader = gguf.GGUFReader(path)
    assert field(reader, "general.architecture") == "controlvector"
    assert field(reader, "controlvector.model_hint") == "llama" and field(reader, "controlvector.layer_count") == 2
    assert field(reader, "anchor_hf.blocks") == [1, 2] and field(reader, "anchor_hf.dose") == pytest.approx(0.5)
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == ["direction.1", "direction.2"]
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states  # [N + 1]: block N (the last one normed)
    v_hat = torch.tensor(cfg.concept("red").vector) / torch.tensor(cfg.concept("red").vector).norm()
    for block, norm in zip([1, 2], field(reader, "anchor_hf.typical_norms")):
        t = tensors[f"direction.{block}"]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [WIDTH]
        median = float(hidden[block + 1][batch["attention_mask"].bool()].norm(dim=-1).median())
        assert norm == pytest.approx(median, rel=1e-5)
        torch.testing.assert_close(torch.from_numpy(t.data.copy()), 0.5 * median * v_hat, atol=1e-5, rtol=1e-5)


def test_adding_each_direction_after_its_block_as_llama_cpp_does_equals_an_absolute_steer(tmp_path):
    """llama.cpp adds direction.N to block N's output; the same edit through `steer(mode="absolute")` with
    dose |direction.N| at block N gives the same logits — the HF counterpart the docs name."""
    model, tok, cfg = make_model("llama", layers=3).eval(), make_tokenizer(), config()
    vector = control_vector(model, tok, cfg, "red", dose=2.0, texts=TEXTS)
    reader = gguf.GGUFReader(write_control_vector(vector, str(tmp_path / "r.gguf")))
    ids = tok(TEXTS[:1], return_tensors="pt")["input_ids"]
    handles = []
    for t in reader.tensors:
        block, added = int(t.name.split(".")[1]), torch.from_numpy(t.data.copy())
        handles.append(model.model.layers[block].register_forward_hook(
            lambda module, args, out, added=added: out + added if isinstance(out, torch.Tensor) else
            (out[0] + added, *out[1:])))
    with torch.no_grad():
        by_hand = model(ids).logits
    for h in handles:
        h.remove()
    doses = {b: float(d.norm()) for b, d in vector.directions.items()}
    with torch.no_grad(), steer(model, cfg, "red", doses, mode="absolute"):
        steered = model(ids).logits
    torch.testing.assert_close(steered, by_hand, atol=1e-5, rtol=1e-5)
    assert (steered - model(ids).logits).abs().max() > 1e-3  # negative control: the vector does move the model


@pytest.mark.parametrize("kwargs, match", [
    (dict(layers=[0, 1]), "block 0 cannot be steered"),
    (dict(dose=float("nan")), "`dose` must be a finite number"),
    (dict(concept="vivid"), "spans 2 axes"),
])
def test_export_refuses_what_llama_cpp_cannot_apply(kwargs, match):
    model, tok, cfg = make_model("llama", layers=3).eval(), make_tokenizer(), config()
    concept = kwargs.pop("concept", "red")
    with pytest.raises(AnchorExportError, match=match):
        control_vector(model, tok, cfg, concept, texts=TEXTS, **kwargs)


def test_export_refuses_a_concept_anchored_at_a_module_that_is_not_a_block():
    model, tok = make_model("llama", layers=3).eval(), make_tokenizer()
    cfg = AnchorConfig(layers=["model.norm"], concepts=[ConceptAnchor(name="red", dims=[1])])
    with pytest.raises(AnchorExportError, match="'model.norm' is not a decoder block"):
        control_vector(model, tok, cfg, "red", texts=TEXTS)


def test_export_control_vector_command_writes_the_file_from_a_saved_model(tmp_path, capsys):
    model, tok, cfg = make_model("llama", layers=3), make_tokenizer(), config()
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    cfg.save_pretrained(tmp_path / "model")
    (tmp_path / "text.txt").write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "red.gguf"
    assert main(["export-control-vector", str(tmp_path / "model"), "red", str(out), "--text",
                 str(tmp_path / "text.txt"), "--layers", "-1"]) == 0
    assert "direction.2: 1 ×" in capsys.readouterr().out
    assert [t.name for t in gguf.GGUFReader(str(out)).tensors] == ["direction.2"]
