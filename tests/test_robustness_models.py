"""The robustness arms on real (tiny) transformers: what each arm computes, and that attacks see it."""

from __future__ import annotations

import pytest
import torch

from anchor_hf.config import AnchorConfig, ConceptAnchor
from anchor_hf.experiments.robustness import (Example, batches, build_arms, pooled_states, posthoc_direction,
                                              relearn_curves)
from anchor_hf.interventions import active_sites, suppress
from tiny import WIDTH, make_model


def _examples(n: int = 12, length: int = 6) -> list[Example]:
    g = torch.Generator().manual_seed(0)
    return [Example(tuple(torch.randint(4, 60, (length,), generator=g).tolist())) for _ in range(n)]


def _axis_component(model: torch.nn.Module, data: list[dict[str, torch.Tensor]]) -> list[float]:
    """Largest |mean state · e0| over examples, per residual slice."""
    _, pooled = pooled_states(model, data)
    return [float(p[:, 0].abs().max()) for p in pooled]


@pytest.mark.parametrize("family, site, hooked_slice, names", [
    ("llama", 0, 1, ["embedding", "model.layers.0", "model.layers.1"]),  # a block output
    # the embedding slice is what the first block reads: token + position embeddings, after the hook
    ("gpt2", "transformer.drop", 0, ["embedding", "transformer.h.0", "transformer.h.1"]),
])
def test_pooled_states_read_the_states_after_intervention_hooks(family, site, hooked_slice, names):
    model = make_model(family, layers=2)
    data = batches(_examples(), pad_id=0)
    axis = torch.zeros(WIDTH)
    axis[0] = 1.0
    got, plain = pooled_states(model, data)
    assert got == names and float(plain[hooked_slice][:, 0].abs().max()) > 1e-3
    with suppress(model, direction=axis, layers=[site], only_positive=False):
        _, hooked = pooled_states(model, data)
    assert float(hooked[hooked_slice][:, 0].abs().max()) < 1e-6  # what the suppressed model computes
    assert all(torch.equal(hooked[i], plain[i]) for i in range(hooked_slice))  # slices before the hook unchanged


def _arms():
    cfg = AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="c", dims=[0])])
    anchored, control, never = (make_model("llama", layers=2, seed=s) for s in (0, 1, 2))
    direction = torch.zeros(WIDTH)
    direction[1] = 1.0
    return build_arms(anchored, cfg, "c", control, never, direction), anchored, control


def test_arms_are_fresh_edited_copies_and_leave_the_trained_models_alone():
    arms, anchored, control = _arms()
    before = {k: v.clone() for k, v in anchored.state_dict().items()}
    data = batches(_examples(), pad_id=0)
    ablated = arms["ablated"].make()
    assert max(_axis_component(ablated, data)) < 1e-5  # no slice keeps any of the anchor axis
    posthoc = arms["posthoc"].make()
    _, pooled = pooled_states(posthoc, data)
    assert max(float(p[:, 1].abs().max()) for p in pooled) < 1e-5  # the post-hoc direction is gone instead
    assert all(torch.equal(before[k], v) for k, v in anchored.state_dict().items())
    assert not active_sites(anchored) and arms["never"].source == "control" and arms["ablated"].source == "anchored"


def test_a_suppressed_arm_keeps_its_hooks_while_an_attacker_fine_tunes_it():
    arms, anchored, _ = _arms()
    model = arms["suppressed"].make()
    assert len(active_sites(model)) == 2 and not active_sites(anchored)
    data = batches(_examples(), pad_id=0)
    curves = relearn_curves(model, _examples(8), {"concept": data, "other": data[:1]}, 0, steps=3, learning_rate=1e-2,
                            batch_size=4)
    assert len(curves["concept"]) == len(curves["other"]) == 4 and len(active_sites(model)) == 2
    _, pooled = pooled_states(model, data)
    assert float(pooled[1][:, 0].max()) <= 1e-6 and float(pooled[2][:, 0].max()) <= 1e-6  # only_positive: ≤ 0
    assert len(active_sites(arms["suppressed"].make())) == 2  # each make() is its own copy with its own hooks


def test_posthoc_direction_is_the_mean_difference_of_the_block_average():
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([1, 0] * 20)
    blocks = [torch.randn(40, 8, generator=g) + 2.0 * y[:, None] * torch.eye(8)[3] for _ in range(2)]
    embedding = torch.randn(40, 8, generator=g) + 20.0 * y[:, None] * torch.eye(8)[5]  # must not be averaged in
    d = posthoc_direction([embedding, *blocks], y)
    assert float(d.norm()) == pytest.approx(1.0, abs=1e-6) and int(d.abs().argmax()) == 3



@pytest.mark.parametrize("destination", [None, "grey", "blue"])
def test_the_redirected_arm_puts_the_anchor_component_of_every_write_on_the_destination(destination):
    """redirect_weights on the anchored copy. To the opposite pole (none named, or grey at −e0) every write is
    reflected, so the embedding slice (a write itself, and a reflection keeps unit states unit) has exactly minus its
    e0 part; later slices are sums of writes whose inputs changed too. To an orthogonal destination (blue, e2) no
    write keeps any e0 part, so no slice does."""
    concepts = [ConceptAnchor(name="c", dims=[0], repel_kind="hinge", destination=destination),
                ConceptAnchor(name="grey", dims=[0], pole=-1, repel_kind="hinge"), ConceptAnchor(name="blue", dims=[2])]
    cfg = AnchorConfig(layers=[0, 1], concepts=concepts)
    anchored, control, never = (make_model("llama", layers=2, seed=s) for s in (0, 1, 2))
    arms = build_arms(anchored, cfg, "c", control, never, torch.eye(WIDTH)[1])
    data = batches(_examples(), pad_id=0)
    _, before = pooled_states(anchored, data)
    _, after = pooled_states(arms["redirected"].make(), data)
    assert min(float(b[:, 0].abs().max()) for b in before) > 1e-3  # negative control: every slice has an e0 part
    if destination == "blue":
        assert max(float(a[:, 0].abs().max()) for a in after) < 1e-5
    else:
        assert torch.allclose(after[0][:, 0], -before[0][:, 0], atol=1e-6)
    assert arms["redirected"].source == "anchored"
    assert ("opposite" if destination is None else destination) in arms["redirected"].description
