"""`steer` with a dose per layer, a choice of positions, and a constant-vector mode (anchor_hf.interventions.steering).

Uses the planted models of test_interventions.py: red token embeddings carry +v̂.
"""

import pytest
import torch

from anchor_hf.interventions import AnchorInterventionError, steer
from anchor_hf.layers import AnchorLayerError
from test_interventions import anchor_config, batch, block_states, directions, hook_count, planted_model


def test_steer_with_a_dose_per_layer_adds_each_layers_own_dose():
    """{0: 0.5, 1: -1.0}: block 0 gets +0.5·|h|·v̂; block 1 gets −1·|h|·v̂ on top of what block 0's push became."""
    model, cfg, ids = planted_model(), anchor_config(layers=(0, 1)), batch()
    v, _ = directions()
    before0, _ = block_states(model, ids)
    with steer(model, cfg, "red", {0: 0.5, 1: -1.0}) as handle:
        after0, after1 = block_states(model, ids)
    assert handle.names == ["transformer.h.0", "transformer.h.1"]
    torch.testing.assert_close(after0, before0 + 0.5 * before0.norm(dim=-1, keepdim=True) * v, atol=1e-5, rtol=0)
    with steer(model, cfg, "red", {0: 0.5}):
        only0, into1 = block_states(model, ids)  # block 1 unsteered, reading block 0's pushed output
    assert torch.equal(only0, after0)
    torch.testing.assert_close(after1, into1 - 1.0 * into1.norm(dim=-1, keepdim=True) * v, atol=1e-5, rtol=0)
    with steer(model, cfg, "red", {1: 0.5}):
        untouched, _ = block_states(model, ids)
    assert torch.equal(untouched, before0)  # a layer without a dose is not hooked at all


def test_steer_dose_keys_may_be_negative_indices_or_module_patterns():
    model, cfg, ids = planted_model(), anchor_config(layers=(0, 1)), batch()
    with steer(model, cfg, "red", {-1: 0.5}) as by_index:
        expected = model(ids).logits
    with steer(model, cfg, "red", {"transformer.h.1": 0.5}) as by_name:
        got = model(ids).logits
    assert by_index.names == by_name.names == ["transformer.h.1"] and torch.equal(got, expected)


def test_steer_from_position_k_leaves_earlier_positions_bit_for_bit():
    model, cfg, ids = planted_model(), anchor_config(layers=(0,)), batch()
    v, _ = directions()
    (before,) = block_states(model, ids, [0])
    with steer(model, cfg, "red", 1.0, positions=4):
        (after,) = block_states(model, ids, [0])
    assert torch.equal(after[:, :4], before[:, :4])
    torch.testing.assert_close(after[:, 4:], before[:, 4:] + before[:, 4:].norm(dim=-1, keepdim=True) * v,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_steer_generated_positions_leave_the_prompt_alone_and_match_a_full_forward(family):
    """Under generate() with a KV cache, only generated tokens are steered: the first new token's distribution
    is the unsteered one, later ones move, and each step's scores equal a cache-free forward of the whole
    sequence steered from the prompt length on."""
    model, cfg = planted_model(family), anchor_config(layers=(1,))
    prompt = batch()[:1, :4]
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=0, return_dict_in_generate=True,
                  output_scores=True)
    plain = model.generate(prompt, **kwargs)
    with steer(model, cfg, "red", 3.0, positions="generated") as handle:
        steered = model.generate(prompt, use_cache=True, **kwargs)
    assert handle.calls == 5 and hook_count(model) == 0
    assert torch.equal(steered.scores[0], plain.scores[0])  # the prompt forward was not edited
    moved = (torch.cat(steered.scores[1:]) - torch.cat(plain.scores[1:])).abs().max()
    assert moved > 1e-2  # negative control: the generated tokens' distributions moved
    with torch.no_grad(), steer(model, cfg, "red", 3.0, positions=prompt.shape[1]):
        full = model(steered.sequences[:, :-1]).logits[0, prompt.shape[1] - 1:]  # [new tokens, vocab]
    torch.testing.assert_close(torch.cat(steered.scores), full, atol=1e-4, rtol=1e-4)


def test_steer_generated_positions_refuse_generation_without_a_cache():
    model, cfg = planted_model("llama"), anchor_config(layers=(1,))
    with steer(model, cfg, "red", 1.0, positions="generated"), \
            pytest.raises(AnchorInterventionError, match="needs the KV cache"):
        model.generate(batch()[:1, :4], max_new_tokens=2, use_cache=False, pad_token_id=0)
    assert hook_count(model) == 0


def test_steer_absolute_mode_adds_the_same_vector_to_every_state():
    model, cfg, ids = planted_model(), anchor_config(layers=(0,)), batch()
    v, _ = directions()
    (before,) = block_states(model, ids, [0])
    with steer(model, cfg, "red", 2.5, mode="absolute"):
        (after,) = block_states(model, ids, [0])
    torch.testing.assert_close(after - before, (2.5 * v).expand_as(before), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dose={0: 1.0}, layers=[0]), AnchorInterventionError, "names its layers; leave `layers` unset"),
    (dict(dose={}), AnchorInterventionError, "empty mapping"),
    (dict(dose={1.5: 1.0}), AnchorInterventionError, "keys must be block indices"),
    (dict(dose={0: float("inf")}), AnchorInterventionError, r"`dose\[0\]` must be a finite number"),
    (dict(dose={0: 1.0, -2: 1.0}), AnchorLayerError, "already anchored"),
    (dict(dose={5: 1.0}), AnchorLayerError, "out of range"),
    (dict(dose=1.0, mode="scaled"), AnchorInterventionError, "`mode` must be 'relative'"),
    (dict(dose=1.0, positions="prompt"), AnchorInterventionError, "`positions` must be 'all', 'generated'"),
])
def test_steer_refuses_bad_doses_modes_and_positions_before_hooking(kwargs, error, match):
    model, cfg = planted_model(), anchor_config(layers=(0, 1))
    with pytest.raises(error, match=match):
        steer(model, cfg, "red", **kwargs)
    assert hook_count(model) == 0
