"""Reversible interventions on tiny models with a planted concept (anchor_hf.interventions.hooks).

The planted model: a tiny GPT-2 / Llama / GPT-NeoX built from a config, whose "red" token
embeddings get +1·v̂ and whose "blue" ones get +1·ŵ, with ŵ ⊥ v̂ (embeddings are initialized
with std 0.02, so the planted parts dominate). At block 0's output red positions then point
along v̂ (cosine > 0.5), which is what the negative controls check before each claim.
"""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig

from anchor_hf import AnchorConfig, AnchorConfigError, AnchorLayerError, ConceptAnchor, HiddenStateCapture
from anchor_hf.interventions import (AnchorInterventionError, AnchorInterventionTypeError, InterventionHandle,
                                     active_sites, add_direction, project_out, repel, steer, suppress)
from anchor_hf.layers import resolve_layers

WIDTH, VOCAB = 16, 64
RED, BLUE = [5, 6, 7], [8, 9]
FAMILIES = ["gpt2", "llama", "gpt_neox"]


def config_for(family: str):
    if family == "gpt2":
        return GPT2Config(n_layer=2, n_embd=WIDTH, n_head=2, vocab_size=VOCAB, n_positions=32, bos_token_id=0,
                          eos_token_id=0, pad_token_id=0)
    if family == "llama":
        return LlamaConfig(num_hidden_layers=2, hidden_size=WIDTH, intermediate_size=32, num_attention_heads=2,
                           num_key_value_heads=2, vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPTNeoXConfig(num_hidden_layers=2, hidden_size=WIDTH, intermediate_size=32, num_attention_heads=2,
                         vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def directions() -> tuple[torch.Tensor, torch.Tensor]:
    """v̂ (red) and ŵ (blue): random unit vectors with ŵ ⊥ v̂, both ⊥ the "vivid" axes 2 and 5
    (an AnchorConfig refuses concepts whose places overlap)."""
    draw = torch.randn(WIDTH, 2, generator=torch.Generator().manual_seed(7))
    draw[[2, 5]] = 0.0
    q, _ = torch.linalg.qr(draw)
    return q[:, 0], q[:, 1]


def planted_model(family: str = "gpt2") -> torch.nn.Module:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config_for(family)).eval()
    v, w = directions()
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[RED] += v
        emb[BLUE] += w
    return model


def anchor_config(layers=(0,)) -> AnchorConfig:
    v, w = directions()
    return AnchorConfig(layers=list(layers), concepts=[ConceptAnchor(name="red", vector=v.tolist()),
                                                       ConceptAnchor(name="blue", vector=w.tolist()),
                                                       ConceptAnchor(name="vivid", dims=[2, 5])])


def batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(10, VOCAB, (4, 10), generator=g)
    ids[:, 2], ids[:, 5], ids[:, 7] = RED[0], RED[1], BLUE[0]
    return ids


def block_states(model: torch.nn.Module, ids: torch.Tensor, layers=(0, 1)) -> list[torch.Tensor]:
    sites = resolve_layers(model, list(layers))
    with torch.no_grad(), HiddenStateCapture([m for _, m in sites]) as capture:
        model(ids)
    return [s.detach() for s in capture.states]


def cosine(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (h @ v) / h.norm(dim=-1)


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


# ------------------------------------------------------------------ suppress
@pytest.mark.parametrize("family", FAMILIES)
def test_suppress_drives_the_planted_cosine_to_zero_and_keeps_the_orthogonal_part(family):
    """After full suppression at block 0, no state there has cosine with v̂ above 0.01, and the
    part of every state orthogonal to v̂ (the planted blue feature included) is unchanged."""
    model, cfg, ids = planted_model(family), anchor_config(), batch()
    v, w = directions()
    (before,) = block_states(model, ids, [0])
    red_positions = torch.isin(ids, torch.tensor(RED))
    assert cosine(before, v)[red_positions].min() > 0.5  # negative control: red is on v̂ before
    with suppress(model, cfg, "red"):
        (after,) = block_states(model, ids, [0])
    assert cosine(after, v).max() <= 0.01
    # the orthogonal complement is kept to float32 rounding (states have norm ~1-4)
    basis = v.unsqueeze(1)
    torch.testing.assert_close(project_out(after, basis), project_out(before, basis), atol=1e-5, rtol=0)
    torch.testing.assert_close(after @ w, before @ w, atol=1e-5, rtol=0)


def test_suppress_only_positive_leaves_negatively_aligned_states_bit_identical():
    model, cfg, ids = planted_model(), anchor_config(), batch()
    v, _ = directions()
    (before,) = block_states(model, ids, [0])
    negative = cosine(before, v) <= 0
    assert negative.any() and (~negative).any()  # both kinds exist at this layer
    with suppress(model, cfg, "red"):
        (after,) = block_states(model, ids, [0])
    assert torch.equal(after[negative], before[negative])
    with suppress(model, cfg, "red", only_positive=False):  # negative control: both sides edited
        (both,) = block_states(model, ids, [0])
    assert not torch.equal(both[negative], before[negative])
    assert cosine(both, v).abs().max() <= 0.01


def test_suppress_twice_equals_once():
    model, cfg, ids = planted_model(), anchor_config(layers=(0, 1)), batch()
    plain = model(ids).logits
    with suppress(model, cfg, "red"):
        once = model(ids).logits
        with suppress(model, cfg, "red"):
            twice = model(ids).logits
    assert (once - plain).abs().max() > 1e-3  # negative control: suppression changes the outputs
    torch.testing.assert_close(twice, once, atol=1e-5, rtol=0)


def test_suppress_subspace_zeroes_its_axes_at_every_position():
    model, cfg, ids = planted_model(), anchor_config(), batch()
    (before,) = block_states(model, ids, [0])
    assert before[..., [2, 5]].abs().max() > 0.03  # control: the axes carry something before
    with suppress(model, cfg, "vivid"):  # only_positive does not apply to a subspace
        (after,) = block_states(model, ids, [0])
    assert after[..., [2, 5]].abs().max() == 0
    keep = [i for i in range(WIDTH) if i not in (2, 5)]
    assert torch.equal(after[..., keep], before[..., keep])


def test_suppress_with_falloff_edits_only_states_above_the_onset():
    model, cfg, ids = planted_model(), anchor_config(), batch()
    v, _ = directions()
    (before,) = block_states(model, ids, [0])
    alpha = cosine(before, v)
    onset = 0.3
    assert (alpha > onset).any() and ((alpha > 0) & (alpha < onset)).any()
    with suppress(model, cfg, "red", falloff=(onset, 1.0, 1.0)):
        (after,) = block_states(model, ids, [0])
    below = alpha < onset
    assert torch.equal(after[below], before[below])
    above = alpha > onset
    share = (before[above] @ v - after[above] @ v) / (before[above] @ v)  # removed share = g(α)
    torch.testing.assert_close(share, (alpha[above] - onset) / (1 - onset), atol=1e-4, rtol=0)


def test_suppress_keeps_the_dtype_of_a_bfloat16_model():
    model, cfg, ids = planted_model().to(torch.bfloat16), anchor_config(), batch()
    with suppress(model, cfg, "vivid"):
        (after,) = block_states(model, ids, [0])
    assert after.dtype == torch.bfloat16
    assert after[..., [2, 5]].abs().max() == 0


def test_suppress_edits_what_output_hidden_states_reports_after_an_earlier_forward():
    """transformers installs its hidden-state hooks at the first forward; ours must still run first."""
    model, cfg, ids = planted_model(), anchor_config(), batch()
    model(ids, output_hidden_states=True)  # installs transformers' capturing hooks before ours
    with suppress(model, cfg, "vivid"):
        reported = model(ids, output_hidden_states=True).hidden_states[1]  # block 0's output
    assert reported[..., [2, 5]].abs().max() == 0


# ------------------------------------------------------------------ repel and steer
@pytest.mark.parametrize("family", FAMILIES)
def test_repel_keeps_norms_and_lowers_alignment_to_the_target(family):
    model, cfg, ids = planted_model(family), anchor_config(), batch()
    v, _ = directions()
    (before,) = block_states(model, ids, [0])
    alpha = cosine(before, v)
    assert alpha.max() > 0.5  # negative control: some states are above the target
    with repel(model, cfg, "red", target=0.1):
        (after,) = block_states(model, ids, [0])
    torch.testing.assert_close(after.norm(dim=-1), before.norm(dim=-1), atol=1e-5, rtol=1e-5)
    moved = alpha > 0.1
    torch.testing.assert_close(cosine(after[moved], v), torch.full_like(alpha[moved], 0.1), atol=1e-5, rtol=0)
    assert torch.equal(after[~moved], before[~moved])


def test_repel_with_a_callable_target_maps_each_alignment():
    model, cfg, ids = planted_model(), anchor_config(), batch()
    v, _ = directions()
    (before,) = block_states(model, ids, [0])
    alpha = cosine(before, v)
    with repel(model, cfg, "red", target=lambda a: a / 2):
        (after,) = block_states(model, ids, [0])
    positive = alpha > 0  # m(α) = α/2 < α only there
    torch.testing.assert_close(cosine(after[positive], v), alpha[positive] / 2, atol=1e-5, rtol=0)
    assert torch.equal(after[~positive], before[~positive])


def test_steer_moves_the_concept_score_monotonically_with_dose():
    """Steering red at block 0 by dose c raises the red cosine at block 1 (downstream) monotonically in c."""
    model, cfg, ids = planted_model(), anchor_config(), batch()
    v, _ = directions()
    doses = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]
    scores = []
    for dose in doses:
        with steer(model, cfg, "red", dose):
            (last,) = block_states(model, ids, [1])
        scores.append(cosine(last, v).mean().item())
    assert all(b > a for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] - scores[0] > 0.5  # negative control: the dose range does move the score
    (plain,) = block_states(model, ids, [1])
    with steer(model, cfg, "red", 0.0):
        (zero,) = block_states(model, ids, [1])
    assert torch.equal(zero, plain)  # dose 0 is the identity, bit for bit


def test_steer_at_the_layer_adds_dose_times_norm():
    model, cfg, ids = planted_model(), anchor_config(), batch()
    v, _ = directions()
    (before,) = block_states(model, ids, [0])
    with steer(model, cfg, "red", -1.5):
        (after,) = block_states(model, ids, [0])
    torch.testing.assert_close(after @ v, before @ v - 1.5 * before.norm(dim=-1), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ hook lifecycle
def test_suppress_removes_hooks_when_body_raises():
    model, cfg, ids = planted_model(), anchor_config(layers=(0, 1)), batch()
    plain, hooks = model(ids).logits, hook_count(model)
    with pytest.raises(RuntimeError, match="boom"):
        with suppress(model, cfg, "red") as handle:
            assert hook_count(model) == hooks + 2
            raise RuntimeError("boom")
    assert not handle.is_active and active_sites(model) == [] and hook_count(model) == hooks
    assert torch.equal(model(ids).logits, plain)


def test_hooks_are_removed_when_the_forward_itself_raises():
    model, ids = planted_model(), batch()
    # a direction of the wrong width at a pattern-named site is only caught when the hook runs
    with pytest.raises(AnchorInterventionError, match="has width 16, but the direction has 7 entries"):
        with suppress(model, direction=torch.ones(7), layers=["transformer.h.0"]):
            model(ids)
    assert active_sites(model) == [] and hook_count(model) == 0


def test_failed_registration_halfway_leaves_no_hook(monkeypatch):
    model, cfg = planted_model(), anchor_config(layers=(0, 1))
    second = model.transformer.h[1]

    def broken(*args, **kwargs):
        raise RuntimeError("cannot hook")

    monkeypatch.setattr(second, "register_forward_hook", broken)
    with pytest.raises(RuntimeError, match="cannot hook"):
        suppress(model, cfg, "red")
    assert hook_count(model) == 0


def test_handle_remove_is_persistent_until_called_and_harmless_twice():
    model, cfg, ids = planted_model(), anchor_config(), batch()
    plain = model(ids).logits
    handle = suppress(model, cfg, "red")
    assert isinstance(handle, InterventionHandle) and handle.names == ["transformer.h.0"]
    edited = model(ids).logits
    assert not torch.equal(edited, plain) and torch.equal(model(ids).logits, edited)
    handle.remove()
    handle.remove()
    assert torch.equal(model(ids).logits, plain) and hook_count(model) == 0


def test_two_interventions_compose_in_creation_order():
    """steer then suppress leaves no red at the layer; suppress then steer leaves the steered amount."""
    model, cfg, ids = planted_model(), anchor_config(), batch()
    v, _ = directions()
    (before,) = block_states(model, ids, [0])
    with steer(model, cfg, "red", 1.0), suppress(model, cfg, "red", only_positive=False):
        (steer_first,) = block_states(model, ids, [0])
        assert len(active_sites(model)) == 1  # one hook per module, however many interventions
    expected = project_out(add_direction(before, v, 1.0), v.unsqueeze(1))
    torch.testing.assert_close(steer_first, expected, atol=1e-5, rtol=0)
    with suppress(model, cfg, "red", only_positive=False), steer(model, cfg, "red", 1.0):
        (suppress_first,) = block_states(model, ids, [0])
    expected = add_direction(project_out(before, v.unsqueeze(1)), v, 1.0)
    torch.testing.assert_close(suppress_first, expected, atol=1e-5, rtol=0)
    assert cosine(suppress_first, v).min() > 0.5  # the order matters, and it was kept (≥ 1/√2 here)
    assert hook_count(model) == 0


# ------------------------------------------------------------------ generate, PEFT, exports
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_steer_applies_to_every_generated_token_with_and_without_cache(family):
    model, cfg = planted_model(family), anchor_config(layers=(1,))
    prompt = batch()[:1, :4]
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    plain = model.generate(prompt, **kwargs)
    with steer(model, cfg, "red", 3.0) as handle:
        cached = model.generate(prompt, use_cache=True, **kwargs)
        calls_cached = handle.calls
        uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert calls_cached == 6  # one forward per new token, each hooked (prefill + 5 cached steps)
    assert torch.equal(cached, uncached)  # cached states were edited exactly like recomputed ones
    assert not torch.equal(cached, plain)  # negative control: the steer changes the continuation
    assert hook_count(model) == 0


def test_suppress_on_a_peft_wrapped_model_matches_the_plain_model():
    from peft import LoraConfig, get_peft_model

    model, cfg, ids = planted_model(), anchor_config(layers=(0, 1)), batch()
    reference = copy.deepcopy(model)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True))
    with suppress(reference, cfg, "red"):
        expected = reference(ids).logits
    with suppress(wrapped, cfg, "red") as handle:
        got = wrapped(ids).logits  # LoRA B starts at 0, so the wrapped model computes the same
    assert handle.names == ["transformer.h.0", "transformer.h.1"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert (got - wrapped(ids).logits).abs().max() > 1e-3  # negative control: the hooks did act
    assert hook_count(wrapped) == 0


def test_interventions_are_exported_from_the_package():
    import anchor_hf
    from anchor_hf import ablate, repel as r, steer as s, suppress as p

    assert (p, s, r) == (suppress, steer, repel) and callable(ablate)
    assert {"suppress", "steer", "repel", "ablate"} <= set(anchor_hf.__all__)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, error, message", [
    (lambda m, c: suppress(m, c, "green"), AnchorConfigError, "unknown concept 'green'"),
    (lambda m, c: suppress(m, c), AnchorInterventionError, "`concept` must be the name"),
    (lambda m, c: suppress(m, direction=torch.ones(7), layers=[0]), AnchorInterventionError,
     "`direction` has 7 entries but the model's hidden size is 16"),
    (lambda m, c: suppress(m, direction=torch.zeros(16), layers=[0]), AnchorInterventionError, "zero"),
    (lambda m, c: suppress(m, direction=torch.ones(16)), AnchorInterventionError, "pass `layers=`"),
    (lambda m, c: suppress(m, c, "red", direction=torch.ones(16)), AnchorInterventionError, "not both"),
    (lambda m, c: suppress(m), AnchorInterventionError, "nothing to act on"),
    (lambda m, c: suppress(m, c, "red", falloff=(1.0, 1.0, 1.0)), AnchorInterventionError,
     r"`falloff\[0\] \(onset a\)` must be < 1.0"),
    (lambda m, c: suppress(m, c, "red", falloff=(0.2, 1.5, 1.0)), AnchorInterventionError,
     r"`falloff\[1\] \(height b\)` must be <= 1.0"),
    (lambda m, c: suppress(m, c, "red", falloff=(0.2, 1.0, 0)), AnchorInterventionError,
     r"`falloff\[2\] \(power p\)` must be > 0.0"),
    (lambda m, c: suppress(m, c, "red", falloff=0.5), AnchorInterventionError, "triple"),
    (lambda m, c: suppress(m, c, "red", only_positive="yes"), AnchorInterventionTypeError, "only_positive"),
    (lambda m, c: suppress(m, c, "red", layers=[5]), AnchorLayerError, "out of range for 2 decoder blocks"),
    (lambda m, c: suppress("model", c, "red"), AnchorInterventionTypeError, "nn.Module"),
    (lambda m, c: steer(m, c, "red", float("nan")), AnchorInterventionError, "`dose` must be a finite number"),
    (lambda m, c: steer(m, c, "red"), AnchorInterventionError, "`dose` is required"),
    (lambda m, c: steer(m, c, "vivid", 1.0), AnchorInterventionError, "spans 2 axes"),
    (lambda m, c: repel(m, c, "red", target=1.0), AnchorInterventionError, "`target` must be < 1.0"),
    (lambda m, c: repel(m, c, "vivid", target=-0.5), AnchorInterventionError, "`target` must be >= 0.0"),
    (lambda m, c: repel(m, c, "red", target=lambda a: a * 3), AnchorInterventionError, r"alignments in \[-1.0, 1\]"),
    (lambda m, c: repel(m, c, "red", target=lambda a: 0.5), AnchorInterventionError, "to a tensor"),
    (lambda m, c: repel(m, c, "red", target="low"), AnchorInterventionTypeError, "`target` must be a float"),
])
def test_bad_input_raises_a_clear_error_before_any_hook(call, error, message):
    model, cfg = planted_model(), anchor_config()
    with pytest.raises(error, match=message):
        call(model, cfg)
    assert hook_count(model) == 0
