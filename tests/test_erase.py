"""`erase`: a fitted affine eraser (LEACE's factors) applied to block outputs by a reversible hook."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from tiny import make_model

from anchor_hf.interventions import AnchorInterventionError, AnchorInterventionTypeError, active_sites, erase
from anchor_hf.layers import resolve_layers

TOL = 1e-5  # float32 rounding of one rank-1 affine edit on states of norm ~1


@dataclass(frozen=True)
class Eraser:
    """LEACE's factor layout: h' = h - ((h - bias) @ proj_right.T) @ proj_left.T."""

    proj_left: torch.Tensor
    proj_right: torch.Tensor
    bias: torch.Tensor | None


def an_eraser(width: int = 32, seed: int = 0, bias: bool = True) -> Eraser:
    g = torch.Generator().manual_seed(seed)
    left = torch.randn(width, 1, generator=g)
    right = torch.randn(1, width, generator=g) / width
    return Eraser(left, right, torch.randn(width, generator=g) if bias else None)


def block_output(model: torch.nn.Module, ids: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input to the edit, output after every hook) of block `layer`, recorded by hooks around anchor_hf's."""
    module = resolve_layers(model, [layer])[0][1]
    seen: dict[str, torch.Tensor] = {}

    def keep(key: str):
        def hook(m, a, out):
            seen[key] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return hook

    handles = [module.register_forward_hook(keep("before"), prepend=True), module.register_forward_hook(keep("after"))]
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    return seen["before"], seen["after"]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_erase_applies_the_affine_eraser_to_every_state_of_the_layer(family, with_bias):
    model, ids = make_model(family), torch.randint(2, 60, (2, 7), generator=torch.Generator().manual_seed(1))
    eraser = an_eraser(bias=with_bias)
    with erase(model, eraser, layers=[0]):
        h, out = block_output(model, ids, 0)
    delta = h - eraser.bias if with_bias else h
    expected = h - (delta @ eraser.proj_right.T) @ eraser.proj_left.T
    assert torch.allclose(out, expected, atol=TOL)
    assert not torch.allclose(out, h, atol=1e-3)  # negative control: the edit moves the states


def test_erase_is_removed_on_exit_and_the_outputs_return_bit_for_bit():
    model, ids = make_model("llama"), torch.randint(2, 60, (1, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with erase(model, an_eraser(), layers=[0, 1]):
            edited = model(input_ids=ids).logits
            assert len(active_sites(model)) == 2
        after = model(input_ids=ids).logits
    assert not torch.allclose(edited, before)
    assert torch.equal(after, before) and active_sites(model) == []


@pytest.mark.parametrize("eraser, layers, error, message", [
    (object(), [0], AnchorInterventionTypeError, "must hold LEACE's factors"),
    (Eraser(torch.ones(32, 1), torch.ones(1, 16), None), [0], AnchorInterventionError, r"proj_right \[k, D\]"),
    (Eraser(torch.ones(32, 1), torch.ones(1, 32), torch.ones(3)), [0], AnchorInterventionError, "bias` has 3"),
    (Eraser(torch.ones(16, 1), torch.ones(1, 16), None), [0], AnchorInterventionError, "hidden size is 32"),
    (an_eraser(), None, AnchorInterventionError, "`layers` is required"),
])
def test_erase_refuses_bad_erasers_and_missing_layers_before_hooking(eraser, layers, error, message):
    model = make_model("llama")
    with pytest.raises(error, match=message):
        erase(model, eraser, layers=layers)
    assert active_sites(model) == []
