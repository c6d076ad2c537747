"""The regularizer's reductions: exact zero without labels, and split-invariant step-wide means."""

from __future__ import annotations

import torch

from anchor_hf import ConceptAnchor
from anchor_hf.regularizer import AnchorMasks, AnchorRegularizer, AnchorWeights

D = 8


def masks(b: int, t: int, labelled: list[int], concepts: int = 1) -> AnchorMasks:
    span_w = torch.zeros(b, concepts)
    span_w[labelled, 0] = 1.0
    return AnchorMasks(live=torch.ones(b, t, dtype=torch.bool), span_weights=span_w,
                       span_mask=torch.ones(b, concepts, t, dtype=torch.bool),
                       token_weights=torch.zeros(b, concepts, t))


def test_attract_term_is_exactly_zero_not_nan_for_a_batch_without_labels():
    reg = AnchorRegularizer([ConceptAnchor(name="red", dims=[0], tau=0.1)], D)
    h = torch.randn(4, 5, D, requires_grad=True)
    loss, stats = reg([h], masks(4, 5, labelled=[]), AnchorWeights(attract=[1.0], repel=[0.0]))
    assert loss.item() == 0.0 and stats["red/attract"].item() == 0.0
    loss.backward()
    assert torch.count_nonzero(h.grad) == 0
    # negative control: one labelled example gives a positive term
    loss, _ = reg([h], masks(4, 5, labelled=[1]), AnchorWeights(attract=[1.0], repel=[0.0]))
    assert loss.item() > 0


def test_zero_weights_contribute_no_loss_and_no_graph():
    reg = AnchorRegularizer([ConceptAnchor(name="red", dims=[0], repel=1.0)], D, separation_samples=4)
    h = torch.randn(2, 3, D, requires_grad=True)
    loss, stats = reg([h], masks(2, 3, [0]), AnchorWeights(attract=[0.0], repel=[0.0], separation=0.0))
    assert loss.item() == 0.0 and not loss.requires_grad
    assert stats["red/attract"] > 0 and stats["red/repel"] > 0  # still measured for the logs


def test_step_wide_denominators_make_the_term_invariant_to_splitting_the_batch():
    """Σ over micro-batches of (sum_i / window) equals the one-batch mean, with sparse labels."""
    torch.manual_seed(0)
    reg = AnchorRegularizer([ConceptAnchor(name="red", dims=[0], repel=0.7, tau=0.2)], D)
    h = torch.randn(6, 4, D, dtype=torch.float64).float().requires_grad_()
    full = masks(6, 4, labelled=[0, 1, 2])  # labels concentrated in the first half
    w = AnchorWeights(attract=[1.0], repel=[0.7])
    whole, _ = reg([h], full, w)
    window = full.denominators()
    halves = [AnchorMasks(full.live[s], full.span_weights[s], full.span_mask[s], full.token_weights[s])
              for s in (slice(0, 3), slice(3, 6))]
    split = sum(reg([h[s]], m, w, denominators=window)[0] for s, m in zip((slice(0, 3), slice(3, 6)), halves))
    assert torch.allclose(whole, split, atol=1e-6)
    # negative control: per-micro-batch means averaged over the split do not match
    naive = sum(reg([h[s]], m, w)[0] for s, m in zip((slice(0, 3), slice(3, 6)), halves)) / 2
    assert not torch.allclose(whole, naive, atol=1e-3)


def test_token_level_weights_are_a_label_weighted_mean():
    reg = AnchorRegularizer([ConceptAnchor(name="red", dims=[0], tau=None)], 2)
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # misalignments 0, 1, 1-1/√2
    m = AnchorMasks(live=torch.ones(1, 3, dtype=torch.bool), span_weights=torch.zeros(1, 1),
                    span_mask=torch.zeros(1, 1, 3, dtype=torch.bool), token_weights=torch.tensor([[[1.0, 1.0, 0.0]]]))
    loss, stats = reg([h], m, AnchorWeights(attract=[1.0], repel=[0.0]))
    assert torch.allclose(loss, torch.tensor(0.5), atol=1e-6)
    assert stats["red/labels"].item() == 2
    assert torch.allclose(stats["red/cos_labelled"], torch.tensor(0.5))
    assert torch.allclose(stats["red/cos_unlabelled"], torch.tensor(2 ** -0.5))


def test_repulsion_averages_over_live_positions_only():
    reg = AnchorRegularizer([ConceptAnchor(name="red", dims=[0], repel=1.0)], 2)
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])  # cos² = 1, 0, 1 (last is padding)
    m = AnchorMasks(live=torch.tensor([[True, True, False]]), span_weights=torch.zeros(1, 1),
                    span_mask=torch.zeros(1, 1, 3, dtype=torch.bool), token_weights=torch.zeros(1, 1, 3))
    loss, _ = reg([h], m, AnchorWeights(attract=[0.0], repel=[1.0]))
    assert torch.allclose(loss, torch.tensor(0.5))


def test_terms_average_over_layers():
    reg = AnchorRegularizer([ConceptAnchor(name="red", dims=[0], repel=1.0)], 2)
    m = AnchorMasks(live=torch.ones(1, 1, dtype=torch.bool), span_weights=torch.zeros(1, 1),
                    span_mask=torch.zeros(1, 1, 1, dtype=torch.bool), token_weights=torch.zeros(1, 1, 1))
    a, b = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])
    loss, _ = reg([a, b], m, AnchorWeights(attract=[0.0], repel=[1.0]))
    assert torch.allclose(loss, torch.tensor(0.5))


def test_separation_samples_at_most_the_configured_number_of_states():
    reg = AnchorRegularizer([ConceptAnchor(name="red", dims=[0])], D, separation_samples=5)
    h = torch.ones(3, 4, D)  # identical states: separation is 1 on every sampled pair
    m = masks(3, 4, [])
    loss, stats = reg([h], m, AnchorWeights(attract=[0.0], repel=[0.0], separation=2.0),
                      generator=torch.Generator().manual_seed(0))
    assert torch.allclose(stats["separation"], torch.tensor(1.0)) and torch.allclose(loss, torch.tensor(2.0))


def test_a_destination_at_the_opposite_pole_is_pulled_to_minus_v_and_not_pushed_by_the_hinge_repels():
    """Grey (axis 0, pole -1): its pull is 0 at -e0 and 2 at +e0; red's hinge repel is 0 at -e0 and 1 at +e0.

    The squared repel would push -e0 as hard as +e0, which is why shared axes need the hinge.
    """
    red = ConceptAnchor(name="red", dims=[0], repel=1.0, repel_kind="hinge", tau=None, destination="grey")
    grey = ConceptAnchor(name="grey", dims=[0], pole=-1, repel=1.0, repel_kind="hinge", tau=None)
    reg = AnchorRegularizer([red, grey], D)
    at_minus, at_plus = torch.zeros(1, 1, D), torch.zeros(1, 1, D)
    at_minus[..., 0], at_plus[..., 0] = -2.0, 2.0
    grey_labelled = AnchorMasks(live=torch.ones(1, 1, dtype=torch.bool), span_weights=torch.tensor([[0.0, 1.0]]),
                                span_mask=torch.ones(1, 2, 1, dtype=torch.bool), token_weights=torch.zeros(1, 2, 1))
    _, stats = reg([at_minus], grey_labelled, AnchorWeights(attract=[1.0, 1.0], repel=[1.0, 1.0]))
    assert stats["grey/attract"].item() == 0.0 and stats["red/repel"].item() == 0.0
    assert stats["grey/repel"].item() == 1.0  # grey's own hinge pushes unlabelled visits off its pole
    _, stats = reg([at_plus], grey_labelled, AnchorWeights(attract=[1.0, 1.0], repel=[1.0, 1.0]))
    assert stats["grey/attract"].item() == 2.0 and stats["red/repel"].item() == 1.0 and stats["grey/repel"] == 0.0
    square = AnchorRegularizer([ConceptAnchor(name="red", dims=[0], repel=1.0)], D)
    _, stats = square([at_minus], masks(1, 1, []), AnchorWeights(attract=[0.0], repel=[1.0]))
    assert stats["red/repel"].item() == 1.0  # negative control: the squared term pushes the opposite pole too


def test_examples_packed_into_one_row_give_the_term_and_gradients_of_one_row_each():
    """Span rows pool each packed example over its own positions: the same loss, stats and gradients as
    padding the examples into rows of their own (with exclusivity's running means, routing-free)."""
    torch.manual_seed(1)
    concepts = [ConceptAnchor(name="red", dims=[0], repel=0.5, tau=0.1, exclusive=0.5)]
    reg_a, reg_p = AnchorRegularizer(concepts, D), AnchorRegularizer(concepts, D)
    lengths, labels = [3, 2, 4], [1.0, 0.0, 1.0]
    rows = [torch.randn(n, D) for n in lengths]
    padded = torch.zeros(3, 4, D)
    for i, r in enumerate(rows):
        padded[i, :len(r)] = r
    live = torch.zeros(3, 4, dtype=torch.bool)
    for i, n in enumerate(lengths):
        live[i, :n] = True
    apart = AnchorMasks(live=live, span_weights=torch.tensor(labels).unsqueeze(1), span_mask=live.unsqueeze(1),
                        token_weights=torch.zeros(3, 1, 4))
    packed_state = torch.cat(rows).unsqueeze(0)  # [1, 9, D]
    span_mask = torch.zeros(3, 1, 9, dtype=torch.bool)
    for s, (start, n) in enumerate(zip([0, 3, 5], lengths)):
        span_mask[s, 0, start:start + n] = True
    packed = AnchorMasks(live=torch.ones(1, 9, dtype=torch.bool), span_weights=torch.tensor(labels).unsqueeze(1),
                         span_mask=span_mask, token_weights=torch.zeros(1, 1, 9),
                         span_rows=torch.zeros(3, dtype=torch.long))
    w = AnchorWeights(attract=[1.0], repel=[0.5], exclusive=[0.5])
    a = padded.clone().requires_grad_()
    p = packed_state.clone().requires_grad_()
    for _ in range(2):  # the second call uses the running means (exclusivity) the first one set
        loss_a, stats_a = reg_a([a], apart, w)
        loss_p, stats_p = reg_p([p], packed, w)
    assert torch.allclose(loss_a, loss_p, atol=1e-6) and loss_a > 0
    assert all(torch.allclose(stats_a[k], stats_p[k], atol=1e-6, equal_nan=True) for k in stats_a)
    ga, = torch.autograd.grad(loss_a, a)
    gp, = torch.autograd.grad(loss_p, p)
    assert torch.allclose(torch.cat([ga[i, :n] for i, n in enumerate(lengths)]), gp[0], atol=1e-6)
    whole_row = AnchorMasks(live=packed.live, span_weights=torch.tensor([[1.0]]),
                            span_mask=torch.ones(1, 1, 9, dtype=torch.bool), token_weights=torch.zeros(1, 1, 9))
    assert not torch.allclose(reg_p([p], whole_row, w)[0], loss_p, atol=1e-3)  # negative control: one pool per row
