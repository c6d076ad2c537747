"""The exclusivity term (`ConceptAnchor.exclusive`): off-axis class means pushed together via running means."""

from __future__ import annotations

import pytest
import torch

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.errors import AnchorConfigError
from anchor_hf.geometry import direction_basis, exclusivity_loss, off_axis, unit
from anchor_hf.regularizer import AnchorMasks, AnchorRegularizer, AnchorWeights


def _masks(b: int, t: int, labelled: list[int]) -> AnchorMasks:
    span_w = torch.zeros(b, 1)
    span_w[labelled, 0] = 1.0
    return AnchorMasks(live=torch.ones(b, t, dtype=torch.bool), span_weights=span_w,
                       span_mask=torch.ones(b, 1, t, dtype=torch.bool), token_weights=torch.zeros(b, 1, t))


def _gap(h: torch.Tensor, basis: torch.Tensor, labelled: list[int]) -> float:
    off = off_axis(unit(h), basis)  # [B, T, D]
    mask = torch.zeros(h.shape[0], dtype=torch.bool)
    mask[labelled] = True
    return float((off[mask].mean((0, 1)) - off[~mask].mean((0, 1))).norm())


def test_off_axis_removes_exactly_the_anchored_component():
    basis = direction_basis([0], None, 4)
    h_hat = unit(torch.tensor([[3.0, 4.0, 0.0, 0.0]]))
    off = off_axis(h_hat, basis)
    assert torch.allclose(off, torch.tensor([[0.0, 0.8, 0.0, 0.0]]))
    assert float(off @ basis) == 0.0


def test_exclusivity_loss_is_zero_without_labels_and_its_gradient_is_the_gap():
    off = torch.randn(3, 2, 4, requires_grad=True)
    gap = torch.tensor([1.0, 0.0, -2.0, 0.5])
    none = torch.zeros(3, 2)
    assert float(exclusivity_loss(off, none, torch.ones(3, 2, dtype=torch.bool), gap)) == 0.0
    labelled = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    loss = exclusivity_loss(off, labelled, labelled == 0, gap)
    loss.backward()
    # each labelled position gets +gap / n_labelled, each unlabelled one −gap / n_unlabelled
    assert torch.allclose(off.grad[0, 0], gap / 2)
    assert torch.allclose(off.grad[1, 1], -gap / 4)


def test_exclusive_training_closes_the_off_axis_gap_that_the_pull_alone_leaves():
    """Free states with the concept readable off the axis: the pull alone keeps the gap, the term closes it."""
    torch.manual_seed(0)
    basis = direction_basis([0], None, 8)
    labelled = [0, 1]
    start = torch.randn(8, 3, 8)
    start[labelled, :, 3] += 3.0  # the concept also written on axis 3
    gaps = {}
    for weight in (0.0, 5.0):
        h = start.clone().requires_grad_(True)
        reg = AnchorRegularizer([ConceptAnchor(name="c", dims=[0], exclusive=weight, exclusive_momentum=0.5)], 8)
        opt = torch.optim.SGD([h], lr=0.5)
        for _ in range(150):
            loss, stats = reg([h], _masks(8, 3, labelled), AnchorWeights([1.0], [0.0], exclusive=[weight]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        gaps[weight] = _gap(h.detach(), basis, labelled)
    assert gaps[0.0] > 0.3  # negative control: the pull alone leaves the concept readable off the axis
    assert gaps[5.0] < 0.5 * gaps[0.0]


def test_running_means_update_only_with_gradients_and_only_where_labels_exist():
    reg = AnchorRegularizer([ConceptAnchor(name="c", dims=[0], exclusive=1.0, exclusive_momentum=0.5)], 4)
    w = AnchorWeights([0.0], [0.0], exclusive=[1.0])
    h = torch.randn(2, 3, 4)
    reg([h], _masks(2, 3, []), w)  # no labels, no gradient: nothing kept
    assert reg.running_means == {}
    reg([h.requires_grad_(True)], _masks(2, 3, []), w)  # gradient but no labels: still nothing
    kept = reg.running_means[(0, 0)]
    assert not kept.ready and not kept.labelled.any() and not kept.unlabelled.any()
    loss, _ = reg([h], _masks(2, 3, [0]), w)  # first labelled batch initializes, term still 0
    assert float(loss) == 0.0 and reg.running_means[(0, 0)].ready
    before = reg.running_means[(0, 0)]
    assert before.labelled.norm() > 0 and before.unlabelled.norm() > 0  # set to the batch's class means
    reg([h.detach()], _masks(2, 3, [0]), w)  # eval (no gradient): means unchanged
    assert reg.running_means[(0, 0)] is before
    loss, stats = reg([h], _masks(2, 3, [1]), w)
    assert loss.requires_grad and "c/exclusive_gap" in stats


def test_exclusivity_decides_on_the_device_without_reading_a_sum_on_the_host(monkeypatch):
    """A training step with the term on never converts a tensor to a Python number (no host sync).

    Negative control: the pre-change code read `float(w.sum())` per concept and layer, which
    the patched `Tensor.__float__` / `item` / `__bool__` would have caught.
    """
    reg = AnchorRegularizer([ConceptAnchor(name="c", dims=[0], exclusive=1.0, exclusive_momentum=0.5)], 4)
    w = AnchorWeights([1.0], [0.5], exclusive=[1.0])
    h = torch.randn(2, 3, 4, requires_grad=True)
    reg([h], _masks(2, 3, [0]), w)  # initializes the running means
    reads = []
    for name in ("__float__", "item", "__bool__", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _o=original, _n=name, **k: reads.append(_n)
                            or _o(self, *a, **k))
    loss, stats = reg([h], _masks(2, 3, [1]), w)
    monkeypatch.undo()
    assert reads == [] and loss.requires_grad and torch.isfinite(stats["c/exclusive_gap"])


def test_exclusive_zero_leaves_the_loss_bit_identical():
    h = torch.randn(4, 3, 8, requires_grad=True)
    plain = AnchorRegularizer([ConceptAnchor(name="c", dims=[0])], 8)
    off = AnchorRegularizer([ConceptAnchor(name="c", dims=[0], exclusive=0.0)], 8)
    a, _ = plain([h], _masks(4, 3, [0]), AnchorWeights([1.0], [0.5]))
    b, _ = off([h], _masks(4, 3, [0]), AnchorWeights([1.0], [0.5], exclusive=[0.0]))
    assert torch.equal(a, b)


@pytest.mark.parametrize("field,value,match", [("exclusive", -1.0, "exclusive"),
                                               ("exclusive_momentum", 1.0, "exclusive_momentum")])
def test_exclusive_fields_reject_bad_values(field, value, match):
    with pytest.raises(AnchorConfigError, match=match):
        AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="c", dims=[0], **{field: value})])


def test_exclusive_fields_survive_save_and_load(tmp_path):
    cfg = AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="c", dims=[0], exclusive=2.0,
                                                           exclusive_momentum=0.9)])
    cfg.save_pretrained(tmp_path)
    loaded = AnchorConfig.from_pretrained(tmp_path).concept("c")
    assert (loaded.exclusive, loaded.exclusive_momentum) == (2.0, 0.9)
