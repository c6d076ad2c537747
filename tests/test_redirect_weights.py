"""`redirect_weights`: every residual write's v̂ component moved to the destination, in the weights.

The invariant, per family: the edited model computes what the original computes when the
output of every residual write is mapped by `M = I + (d̂ − v̂)v̂ᵀ`. Hooks realise that map
exactly for the opposite pole (a reflection) and for an orthogonal destination where the
writes carry no d̂ component; they cannot where the hook keeps norms or picks states by
sign, and those differences are asserted too. Tiny models and helpers from tests/test_ablation.py.
"""

import copy

import pytest
import torch
from test_ablation import CONFIGS, batch, direction, is_tied, stream_states, tiny
from transformers import AutoModelForCausalLM

from anchor_hf import AnchorConfig, ConceptAnchor, ablate, redirect, redirect_weights
from anchor_hf.interventions import AnchorInterventionError, residual_writes

WIDTH = 16


def destination() -> torch.Tensor:
    """A unit vector orthogonal to `direction()`."""
    v = direction()
    d = torch.randn(WIDTH, generator=torch.Generator().manual_seed(23))
    d = d - (d @ v) * v
    return d / d.norm()


def hooked_writes(model: torch.nn.Module, to, only_positive: bool = False):
    return redirect(model, direction=direction(), to=to, only_positive=only_positive, layers=residual_writes(model))


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_redirect_weights_to_the_opposite_pole_equals_reflecting_every_residual_write(family):
    model, ids = tiny(family), batch()
    original = model(ids).logits
    edited = copy.deepcopy(model)
    redirect_weights(edited, direction=direction(), to="opposite")
    with hooked_writes(model, "opposite"):
        hooked = model(ids).logits
    expected = edited(ids).logits
    assert (expected - original).abs().max() > 1e-3  # negative control: the edit changes the model
    # float32 rounding through two blocks, as for ablate: ≤ 1e-6 measured
    torch.testing.assert_close(hooked, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_redirect_weights_to_an_orthogonal_destination_leaves_no_concept_component_in_the_stream(family):
    model, v, ids = tiny(family), direction(), batch()
    redirect_weights(model, direction=v, to=destination())
    for h in stream_states(model, ids):
        assert ((h @ v) / h.norm(dim=-1)).abs().max() < 1e-5


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_redirect_weights_equals_the_hook_where_the_writes_carry_no_destination_component(family):
    model, ids = tiny(family), batch()
    ablate(model, direction=destination())  # now no write puts anything on d̂
    edited = copy.deepcopy(model)
    redirect_weights(edited, direction=direction(), to=destination())
    with hooked_writes(model, destination()):
        torch.testing.assert_close(model(ids).logits, edited(ids).logits, atol=1e-5, rtol=0)


def test_redirect_weights_cannot_equal_the_norm_keeping_hook_where_writes_carry_both_components():
    model, ids = tiny("gpt2"), batch()
    edited = copy.deepcopy(model)
    redirect_weights(edited, direction=direction(), to=destination())
    with hooked_writes(model, destination()):
        hooked = model(ids).logits
    assert (hooked - edited(ids).logits).abs().max() > 1e-3


def test_redirect_weights_cannot_equal_the_default_hook_which_moves_only_positive_states():
    model, ids = tiny("llama"), batch()
    edited = copy.deepcopy(model)
    redirect_weights(edited, direction=direction(), to="opposite")
    with hooked_writes(model, "opposite", only_positive=True):
        hooked = model(ids).logits
    assert (hooked - edited(ids).logits).abs().max() > 1e-3


def test_redirect_weights_unties_the_unembedding_and_saves_and_loads(tmp_path):
    model, v, ids = tiny("gpt2"), direction(), batch()
    assert is_tied(model)
    unembedding = model.lm_head.weight.detach().clone()
    report = redirect_weights(model, direction=v, to="opposite")
    assert not is_tied(model) and model.config.tie_word_embeddings is False
    assert torch.equal(model.lm_head.weight, unembedding)  # the output is read as trained
    assert "lm_head.weight" not in report and report["transformer.wte.weight"] > 0
    torch.testing.assert_close(model.transformer.wte.weight @ v, -(unembedding @ v), atol=1e-6, rtol=0)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert not is_tied(loaded)
    assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_redirect_weights_uses_the_config_destination():
    v, d = direction(), destination()
    cfg = AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="red", vector=v.tolist(), destination="calm"),
                                             ConceptAnchor(name="calm", vector=d.tolist())])
    model, ids = tiny("llama"), batch()
    by_name = copy.deepcopy(model)
    redirect_weights(by_name, cfg, "red")
    redirect_weights(model, direction=v, to=d)
    torch.testing.assert_close(by_name(ids).logits, model(ids).logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("call, message", [
    (lambda m: redirect_weights(m, AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="vivid", dims=[1, 2])]),
                                "vivid", to="opposite"), r"redirect needs a one-direction concept"),
    (lambda m: redirect_weights(m, direction=direction()), r"with `direction=` and no AnchorConfig, pass `to=`"),
    (lambda m: redirect_weights(m, direction=direction(), to=torch.ones(WIDTH)), r"neither orthogonal"),
])
def test_redirect_weights_checks_everything_before_editing(call, message):
    model = tiny("gpt2")
    snapshot = {n: p.clone() for n, p in model.named_parameters()}
    with pytest.raises(AnchorInterventionError, match=message):
        call(model)
    assert is_tied(model)
    assert all(torch.equal(p, snapshot[n]) for n, p in model.named_parameters())
