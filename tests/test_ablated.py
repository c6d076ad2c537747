"""anchor_hf.interventions.ablated: ablate for a block, then every weight exactly as before (also on error)."""

from __future__ import annotations

import pytest
import torch
from tiny import make_model

from anchor_hf import AnchorConfig, ConceptAnchor, ablated
from anchor_hf.interventions import ablate, ablated_axes, restored


def config() -> AnchorConfig:
    return AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="red", dims=[0]),
                                                 ConceptAnchor(name="blue", dims=[1])])


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def same(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_ablated_is_ablate_inside_the_block_and_bit_identical_after(family, tokenizer):
    """Inside: the outputs of `ablate` on a copy (no write keeps axis 0). After: the same weights and outputs."""
    model = make_model(family).eval()
    before = snapshot(model)
    ids = tokenizer(["w2 w3 w4 w5"], return_tensors="pt")["input_ids"]
    twin = make_model(family).eval()
    ablate(twin, config(), "red")
    with torch.no_grad():
        reference = model(ids).logits
        with ablated(model, config(), "red") as changed:
            assert changed and all(v >= 0 for v in changed.values())
            torch.testing.assert_close(model(ids).logits, twin(ids).logits, rtol=0, atol=0)
        after = model(ids).logits
    assert not torch.allclose(twin(ids).logits, reference)  # negative control: the ablation changes the model
    assert torch.equal(after, reference) and same(model, before)


def test_ablated_takes_a_direction_instead_of_a_config():
    model = make_model("llama")
    before = snapshot(model)
    direction = torch.randn(32, generator=torch.Generator().manual_seed(0))
    with ablated(model, direction=direction):
        row = model.model.embed_tokens.weight.detach() @ (direction / direction.norm())
        assert float(row.abs().max()) < 1e-5  # the embedding writes nothing along the direction
    assert same(model, before)


def test_ablated_restores_the_weights_when_the_body_raises():
    model = make_model("gpt2")
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="inside"):
        with ablated(model, config(), "blue"):
            assert not same(model, before)
            raise RuntimeError("inside")
    assert same(model, before)


def test_ablated_axes_zeroes_the_bottleneck_axis_for_the_block_only():
    producer, consumer = torch.nn.Linear(3, 5), torch.nn.Linear(5, 3)
    weights = [t.detach().clone() for t in (producer.weight, producer.bias, consumer.weight)]
    with ablated_axes(producer, consumer, [0]):
        assert not producer.weight[0].any() and not producer.bias[0] and not consumer.weight[:, 0].any()
    for now, then in zip((producer.weight, producer.bias, consumer.weight), weights):
        assert torch.equal(now, then)


def test_restored_puts_back_any_in_place_edit_of_the_modules():
    layer = torch.nn.Linear(4, 4)
    kept = layer.weight.detach().clone()
    with restored(layer), torch.no_grad():
        layer.weight.mul_(3.0)
    assert torch.equal(layer.weight, kept)
