"""`redirect`: the concept's component moved to a destination, by hooks (anchor_hf.interventions.redirect).

Tested for its invariants on the planted tiny models of tests/test_interventions.py (red
tokens along v̂, blue along ŵ ⊥ v̂): states with no positive alignment are returned bit for
bit; at strength 1 a state's alignment α moves from v̂ to the destination (the reflection
for the opposite pole); the norm is kept at every strength; and only the positions asked
for are edited. Each claim has a negative control showing that the states do move.
"""

import contextlib

import pytest
import torch
from test_interventions import (FAMILIES, anchor_config, batch, block_states, cosine, directions, hook_count,
                                planted_model)

from anchor_hf import AnchorConfig, AnchorConfigError, ConceptAnchor, redirect
from anchor_hf.interventions import AnchorInterventionError, redirect_states
from anchor_hf.layers import resolve_layers

# float32 rounding of norm-1 states through a norm, a square root and the next block: ~1e-6
TOL = 1e-5


def destination_config(destination: str = "blue") -> AnchorConfig:
    """The planted directions with red's destination set; grey sits on red's opposite pole."""
    v, w = directions()
    return AnchorConfig(layers=[0], concepts=[
        ConceptAnchor(name="red", vector=v.tolist(), destination=destination, repel=1.0, repel_kind="hinge"),
        ConceptAnchor(name="blue", vector=w.tolist()),
        ConceptAnchor(name="grey", vector=v.tolist(), pole=-1, repel=1.0, repel_kind="hinge")])


@contextlib.contextmanager
def recorded(model: torch.nn.Module, *args, layer: int = 0, **kwargs):
    """Run `redirect(model, *args, **kwargs)` and record block `layer`'s output before and after its edit.

    Registered after the intervention, a prepended hook runs before it and an appended one after it.
    """
    module = resolve_layers(model, [layer])[0][1]
    record: dict[str, list[torch.Tensor]] = {"before": [], "after": []}

    def keep(key: str):
        return lambda m, a, out: record[key].append(out[0] if isinstance(out, tuple) else out)

    with redirect(model, *args, **kwargs), torch.no_grad():
        handles = [module.register_forward_hook(keep("before"), prepend=True),
                   module.register_forward_hook(keep("after"))]
        try:
            yield record
        finally:
            for h in handles:
                h.remove()


@pytest.mark.parametrize("family", FAMILIES)
def test_redirect_leaves_states_without_positive_alignment_bit_identical(family):
    model, cfg, ids = planted_model(family), destination_config(), batch()
    before = block_states(model, ids, layers=(0,))[0]
    with redirect(model, cfg, "red"):
        after = block_states(model, ids, layers=(0,))[0]
    v, _ = directions()
    untouched = cosine(before, v) <= 0
    assert untouched.any() and (~untouched).any()
    assert torch.equal(after[untouched], before[untouched])
    assert (after[~untouched] - before[~untouched]).abs().max() > 1e-3  # negative control: the others move


@pytest.mark.parametrize("family", FAMILIES)
def test_redirect_at_full_strength_moves_the_alignment_onto_the_destination_and_keeps_the_norm(family):
    model, cfg, ids = planted_model(family), destination_config(), batch()
    v, w = directions()
    with recorded(model, cfg, "red") as record:
        model(ids)
    h, out = record["before"][0], record["after"][0]
    moved = cosine(h, v) > 0
    assert cosine(h, v)[:, [2, 5]].min() > 0.5  # negative control: the red positions carry the concept
    torch.testing.assert_close(out.norm(dim=-1), h.norm(dim=-1), atol=TOL, rtol=0)
    torch.testing.assert_close(cosine(out, v)[moved], torch.zeros(int(moved.sum())), atol=TOL, rtol=0)
    # α moves onto ŵ on top of what is there; a state whose sum exceeds its norm ends on ŵ itself
    gained = (cosine(h, w) + cosine(h, v)).clamp(-1.0, 1.0)
    torch.testing.assert_close(cosine(out, w)[moved], gained[moved], atol=TOL, rtol=0)


def test_redirect_to_the_opposite_pole_is_the_reflection_at_every_hooked_layer():
    model, ids = planted_model("llama"), batch()
    cfg = destination_config("grey")  # the config's destination: grey on red's opposite pole
    v, _ = directions()
    with recorded(model, cfg, "red") as record:
        model(ids)
    h, out = record["before"][0], record["after"][0]
    alpha = (h @ v).clamp_min(0).unsqueeze(-1)
    torch.testing.assert_close(out, h - 2 * alpha * v, atol=TOL, rtol=0)
    with redirect(model, cfg, "red", to="opposite"):  # the same place, named directly
        torch.testing.assert_close(block_states(model, ids, layers=(0,))[0], out, atol=0, rtol=0)


@pytest.mark.parametrize("strength", [0.25, 0.5, 0.75])
def test_redirect_strength_interpolates_and_keeps_the_norm(strength):
    model, cfg, ids = planted_model("gpt2"), destination_config("grey"), batch()
    v, _ = directions()
    with recorded(model, cfg, "red", strength=strength) as record:
        model(ids)
    h, out = record["before"][0], record["after"][0]
    moved = cosine(h, v) > 0
    torch.testing.assert_close(out.norm(dim=-1), h.norm(dim=-1), atol=TOL, rtol=0)
    torch.testing.assert_close((out @ v)[moved], ((1 - 2 * strength) * (h @ v))[moved], atol=TOL, rtol=0)
    with redirect(model, cfg, "red", strength=0.0):
        torch.testing.assert_close(block_states(model, ids, layers=(0,))[0], h, atol=0, rtol=0)


def test_redirect_hook_applies_the_pure_transform():
    model, cfg, ids = planted_model("gpt2"), destination_config(), batch()
    v, w = directions()
    h = block_states(model, ids, layers=(0,))[0]
    expected = torch.where((cosine(h, v) > 0).unsqueeze(-1), redirect_states(h, v, w, torch.ones(h.shape[:2])), h)
    with redirect(model, cfg, "red", to=w):  # a vector destination, same place as the concept "blue"
        torch.testing.assert_close(block_states(model, ids, layers=(0,))[0], expected, atol=TOL, rtol=0)


def test_redirect_with_falloff_moves_only_strongly_aligned_states():
    model, cfg, ids = planted_model("gpt2"), destination_config("grey"), batch()
    v, _ = directions()
    h = block_states(model, ids, layers=(0,))[0]
    with redirect(model, cfg, "red", falloff=(0.5, 1.0, 1.0)):
        out = block_states(model, ids, layers=(0,))[0]
    weak = cosine(h, v) < 0.5
    assert torch.equal(out[weak], h[weak])
    assert (out[~weak] - h[~weak]).abs().max() > 1e-3


def test_redirect_from_a_saved_config_uses_its_destination(tmp_path):
    model, ids = planted_model("gpt2"), batch()
    destination_config("grey").save_pretrained(tmp_path)
    cfg = AnchorConfig.from_pretrained(tmp_path)
    with redirect(model, cfg, "red"):
        loaded = block_states(model, ids, layers=(0,))[0]
    with redirect(model, cfg, "red", to="opposite"):
        assert torch.equal(block_states(model, ids, layers=(0,))[0], loaded)


def test_redirect_edits_only_positions_from_k_counting_real_tokens_under_left_padding():
    model, cfg, ids = planted_model("llama"), destination_config("grey"), batch()
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # row 0 is left-padded by two tokens: its real positions start at index 2
    with recorded(model, cfg, "red", positions=3, only_positive=False) as record:
        model(ids, attention_mask=mask)
    h, out = record["before"][0], record["after"][0]
    assert torch.equal(out[0, :5], h[0, :5]) and torch.equal(out[1:, :3], h[1:, :3])
    v, _ = directions()
    reflected = h - 2 * (h @ v).unsqueeze(-1) * v
    torch.testing.assert_close(out[0, 5:], reflected[0, 5:], atol=TOL, rtol=0)
    torch.testing.assert_close(out[1:, 3:], reflected[1:, 3:], atol=TOL, rtol=0)
    assert (reflected[1:, 3:] - h[1:, 3:]).abs().max() > 1e-3  # negative control: the reflection moves them


def test_redirect_generated_positions_edit_only_tokens_produced_by_generate():
    model, cfg = planted_model("gpt2"), destination_config("grey")
    prompt = batch()[:2, :6]
    v, _ = directions()
    with recorded(model, cfg, "red", positions="generated", only_positive=False) as record:
        model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=3, do_sample=False,
                       pad_token_id=0)
    (first_before, *later_before), (first_after, *later_after) = record["before"], record["after"]
    assert first_before.shape[1] == 6 and torch.equal(first_after, first_before)  # the prompt is left alone
    assert len(later_after) == 2
    for h, out in zip(later_before, later_after):
        torch.testing.assert_close(out, h - 2 * (h @ v).unsqueeze(-1) * v, atol=TOL, rtol=0)


def test_redirect_generated_positions_refuse_generation_without_a_cache():
    model, cfg = planted_model("gpt2"), destination_config("grey")
    with redirect(model, cfg, "red", positions="generated"), \
            pytest.raises(AnchorInterventionError, match=r"positions='generated'` needs the KV cache"):
        model.generate(batch()[:1, :4], max_new_tokens=2, do_sample=False, pad_token_id=0, use_cache=False)
    assert hook_count(model) == 0


def test_redirect_positions_refuse_a_call_that_bypasses_the_model():
    model, cfg = planted_model("gpt2"), destination_config("grey")
    with redirect(model, cfg, "red", positions=2), \
            pytest.raises(AnchorInterventionError, match=r"call the model itself \(not a submodule\)"):
        model.transformer(batch())


def test_redirect_removes_its_hooks_and_position_tracker_on_exit():
    model, cfg = planted_model("gpt2"), destination_config("grey")
    before = hook_count(model) + sum(len(m._forward_pre_hooks) for m in model.modules())
    with pytest.raises(RuntimeError, match="boom"), redirect(model, cfg, "red", positions="generated"):
        raise RuntimeError("boom")
    assert hook_count(model) + sum(len(m._forward_pre_hooks) for m in model.modules()) == before


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(concept="red", cfg="plain"), AnchorInterventionError, r"'red' has no `destination` in its config; pass `to="),
    (dict(concept="red", to=torch.ones(16)), AnchorInterventionError,
     r"neither orthogonal to 'red' nor its opposite pole \(cos = .*\); orthogonalize it first"),
    (dict(concept="red", to=torch.ones(7)), AnchorInterventionError, r"`to` must be a vector \[16\]"),
    (dict(concept="red", to="red"), AnchorInterventionError, r"`to` = 'red' is the concept itself"),
    (dict(concept="red", to="teal"), AnchorConfigError, r"unknown concept 'teal'"),
    (dict(concept="red", to="vivid"), AnchorInterventionError, r"`to` = 'vivid' spans 2 axes"),
    (dict(concept="vivid", to="opposite"), AnchorInterventionError, r"redirect needs a one-direction concept, but "
                                                                    r"'vivid' spans 2 axes"),
    (dict(concept=["red", "blue"]), AnchorInterventionError, r"one concept per call.*nest `with redirect"),
    (dict(concept="red", strength=1.5), AnchorInterventionError, r"`strength` must be <= 1.0, got 1.5"),
    (dict(concept="red", positions=-1), AnchorInterventionError, r"`positions` must be 'all', 'generated' or an int"),
    (dict(concept="red", positions="prompt"), AnchorInterventionError, r"`positions` must be 'all'"),
    (dict(concept="red", falloff=(0.5, 2.0, 1.0)), AnchorInterventionError, r"falloff\[1\] \(height b\)"),
    (dict(cfg=None, concept=None, direction=torch.ones(16), layers=[0]), AnchorInterventionError,
     r"with `direction=` and no AnchorConfig, pass `to=`"),
])
def test_redirect_rejects_bad_input_before_any_hook(kwargs, error, message):
    model = planted_model("gpt2")
    cfg = {"plain": anchor_config(), None: None}.get(kwargs.pop("cfg", "destination"), destination_config())
    if "vivid" in (kwargs.get("concept"), kwargs.get("to")):
        cfg = anchor_config()
    with pytest.raises(error, match=message):
        redirect(model, cfg, **kwargs)
    assert hook_count(model) == 0


def test_redirect_is_exported_at_the_top_level_and_from_interventions():
    import anchor_hf
    import anchor_hf.interventions as interventions

    assert anchor_hf.redirect is interventions.redirect
    assert anchor_hf.redirect_weights is interventions.redirect_weights
    assert {"redirect", "redirect_weights"} <= set(anchor_hf.__all__) & set(interventions.__all__)


@pytest.mark.parametrize("attract", [1.0, 0.0])
def test_trainer_pulls_a_destination_to_the_opposite_pole_and_saves_it(tmp_path, tokenizer, attract):
    """A grey concept on red's opposite pole trains like any concept: its labelled states turn to -e3.

    With grey's pull at 0 (the negative control) the same run leaves them near the axis' equator.
    """
    from tiny import make_model
    from trainer_utils import anchored_trainer, exact_rows, sgd_args

    cfg = AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="red", dims=[3], attract=0.0, destination="grey"),
                                             ConceptAnchor(name="grey", dims=[3], pole=-1, attract=attract, tau=None)])
    rows = [{**row, "grey": 1.0 - row["red"]} for row in exact_rows()]
    model, ids = make_model("gpt2"), torch.tensor([rows[1]["input_ids"]])
    trainer = anchored_trainer(model, tokenizer, sgd_args(tmp_path, steps=5, learning_rate=0.05), cfg, rows)
    trainer.train()
    h = block_states(model, ids, layers=(0,))[0]
    alignment = float((h[..., 3] / h.norm(dim=-1)).mean())  # measured: -0.98 pulled, +0.02 not
    assert alignment < -0.5 if attract else abs(alignment) < 0.2
    trainer.save_model()
    saved = AnchorConfig.from_pretrained(tmp_path)
    assert saved.concept("grey").pole == -1 and saved.destination_of("red").name == "grey"
