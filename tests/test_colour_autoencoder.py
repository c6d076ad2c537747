"""anchor_hf.experiments.colour.ae.model: the paper's colour autoencoder as a Hugging Face model."""

from __future__ import annotations

import pytest
import torch

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.capture import HiddenStateCapture
from anchor_hf.errors import AnchorConfigError
from anchor_hf.layers import hidden_size_of, resolve_layers
from anchor_hf.experiments.colour.ae.model import ColourAutoencoder, ColourAutoencoderConfig


def make(hidden_size: int = 4, num_nonlinear: int = 1, seed: int = 0) -> ColourAutoencoder:
    torch.manual_seed(seed)
    return ColourAutoencoder(ColourAutoencoderConfig(hidden_size=hidden_size, num_nonlinear=num_nonlinear)).eval()


@pytest.mark.parametrize("hidden_size,num_nonlinear", [(4, 1), (5, 2)])
def test_bottleneck_is_unit_norm_with_one_position_per_colour(hidden_size, num_nonlinear):
    model = make(hidden_size, num_nonlinear)
    rgb = torch.rand(7, 3)
    with HiddenStateCapture([model.bottleneck_norm]) as capture:
        out = model(rgb)
    state = capture.states[0]
    assert state.shape == (7, 1, hidden_size)  # [B, T=1, E], the regularizer's [B, T, D]
    assert torch.allclose(state.norm(dim=-1), torch.ones(7, 1), atol=1e-6)
    assert torch.equal(out.latents, state.squeeze(1))
    pre = model.encoder(rgb)
    assert not torch.allclose(pre.norm(dim=-1), torch.ones(7))  # negative control: only the site is normalized
    linears = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert len(linears) == num_nonlinear + 1


def test_anchor_config_resolves_the_bottleneck_by_name_and_reads_its_width():
    model = make(5, 2)
    assert resolve_layers(model, ["bottleneck_norm"]) == [("bottleneck_norm", model.bottleneck_norm)]
    assert hidden_size_of(model) == 5
    cfg = AnchorConfig(layers=["bottleneck_*"], concepts=[ConceptAnchor(name="red", dims=[0])])
    assert [name for name, _ in resolve_layers(model, cfg.layers)] == ["bottleneck_norm"]


def test_loss_is_the_mse_to_the_labels_and_absent_without_them():
    model = make()
    rgb = torch.rand(5, 3)
    with torch.no_grad():
        out = model(rgb, labels=rgb)
        assert float(out.loss) == pytest.approx(float(((out.reconstruction - rgb) ** 2).mean()))
        assert model(rgb).loss is None
        assert float(model(rgb, labels=rgb, return_dict=False)[0]) == pytest.approx(float(out.loss))
        assert float(model(rgb, labels=torch.zeros(5, 3)).loss) != pytest.approx(float(out.loss))


def test_save_pretrained_round_trip_gives_identical_outputs(tmp_path):
    model = make(5, 2)
    model.save_pretrained(tmp_path)
    loaded = ColourAutoencoder.from_pretrained(tmp_path).eval()
    assert loaded.config.hidden_size == 5 and loaded.config.num_nonlinear == 2
    rgb = torch.rand(9, 3)
    assert torch.equal(loaded(rgb).reconstruction, model(rgb).reconstruction)
    other = make(5, 2, seed=1)  # negative control: another init differs
    assert not torch.equal(other(rgb).reconstruction, model(rgb).reconstruction)


def test_producer_and_consumer_are_the_linears_around_the_bottleneck():
    model = make(4, 1)
    assert model.bottleneck_producer.out_features == 4 and model.bottleneck_consumer.in_features == 4
    assert model.bottleneck_producer is model.encoder[-1] and model.bottleneck_consumer is model.decoder[0]


@pytest.mark.parametrize("field,value", [("hidden_size", 1), ("intermediate_size", 0), ("num_nonlinear", 1.5)])
def test_config_rejects_bad_sizes_naming_the_field(field, value):
    with pytest.raises(AnchorConfigError, match=f"`{field}` must be an int"):
        ColourAutoencoderConfig(**{field: value})
