"""`bind(cfg, model)`: one rule fits a config to a model, refuses what does not fit, mutates nothing."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny import make_model, make_tokenizer
from trainer_utils import anchor_config, anchored_trainer, exact_rows, sgd_args

from anchor_hf import AnchorCheckpointError, AnchorConfig, ConceptAnchor, suppress
from anchor_hf.binding import bind, static_width
from anchor_hf.interventions import active_sites
from anchor_hf.probes.inputs import ProbeData
from anchor_hf.probes.suite import ProbeContext


@pytest.mark.parametrize("family, names", [("llama", ["model.layers.0", "model.layers.1"]),
                                           ("gpt2", ["transformer.h.0", "transformer.h.1"])])
def test_bind_resolves_sites_width_and_bases(family, names):
    cfg = anchor_config()
    binding = bind(cfg, make_model(family))
    assert list(binding.names) == names and binding.hidden_size == 32
    assert binding.config.resolved_layers == names and binding.config.hidden_size == 32
    basis = binding.basis("red")
    assert basis.shape == (32, 1) and basis[3, 0] == 1 and basis.abs().sum() == 1


def test_bind_never_mutates_the_users_config():
    cfg = anchor_config()
    before = copy.deepcopy(cfg)
    bind(cfg, make_model("llama"))
    assert cfg == before and cfg.resolved_layers is None and cfg.hidden_size is None


def test_trainer_leaves_the_users_config_reusable_on_a_model_of_another_depth(tmp_path):
    """The trainer saves a bound copy; the object the user passed can anchor a deeper model next."""
    cfg = anchor_config(layers=(-1,))
    first = anchored_trainer(make_model("llama", layers=2), make_tokenizer(), sgd_args(tmp_path / "a"), cfg,
                             exact_rows())
    assert first.anchor_config.resolved_layers == ["model.layers.1"] and cfg.resolved_layers is None
    second = anchored_trainer(make_model("llama", layers=4), make_tokenizer(), sgd_args(tmp_path / "b"), cfg,
                              exact_rows())
    assert second.anchor_config.resolved_layers == ["model.layers.3"]


def test_bind_refuses_saved_layers_that_this_model_resolves_elsewhere():
    saved = bind(anchor_config(layers=(-1,)), make_model("llama", layers=2)).config
    with pytest.raises(AnchorCheckpointError, match=r"saved with layers \['model.layers.1'\].*model.layers.3"):
        bind(saved, make_model("llama", layers=4))


def test_bind_refuses_a_config_saved_for_another_width():
    saved = bind(anchor_config(), make_model("llama", width=64)).config
    with pytest.raises(AnchorCheckpointError, match=r"saved for hidden size 64, but this model's is 32"):
        bind(saved, make_model("llama", width=32))


def test_bind_refuses_a_named_site_of_another_width_before_any_forward():
    """A norm named by pattern says its width through its weight: refused at bind, not at the first forward."""
    cfg = AnchorConfig(layers=["model.norm"], concepts=[ConceptAnchor(name="red", dims=[3])], hidden_size=64)
    with pytest.raises(AnchorCheckpointError, match=r"'model.norm' outputs states of width 32.*hidden size is 64"):
        bind(cfg, make_model("llama"))


def test_suppress_refuses_a_mismatched_config_without_leaving_a_hook():
    model = make_model("llama")
    saved = bind(anchor_config(), make_model("llama", width=64)).config
    with pytest.raises(AnchorCheckpointError, match="hidden size 64"):
        suppress(model, saved, "red")
    assert active_sites(model) == []


def test_trainer_interventions_and_probes_use_the_same_sites(tmp_path):
    model = make_model("gpt2")
    cfg = anchor_config(layers=("transformer.drop", 0, -1))
    trainer = anchored_trainer(model, make_tokenizer(), sgd_args(tmp_path), cfg, exact_rows())
    expected = ["transformer.drop", "transformer.h.0", "transformer.h.1"]
    assert trainer._anchor_names == expected
    with suppress(model, trainer.anchor_config, "red") as handle:
        assert handle.names == expected
    data = ProbeData(texts=["w2 w3"], labels={"red": torch.tensor([1.0])}, source="test")
    ctx = ProbeContext(model=model, tokenizer=make_tokenizer(), cfg=trainer.anchor_config, concepts=["red"], data=data)
    assert ctx.layer_names == expected


def test_static_width_reads_norms_linears_and_embeddings_only():
    assert static_width(torch.nn.LayerNorm(7)) == 7
    assert static_width(torch.nn.Linear(3, 5)) == 5
    assert static_width(torch.nn.Embedding(10, 4)) == 4
    assert static_width(torch.nn.Dropout()) is None
    assert static_width(make_model("llama").model.layers[0]) is None  # a block: its width is the model's
