"""The redirect measures of the GoEmotions report: toward/away/fluency, measurability, intervals, the arms' pieces."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import make_model

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.experiments.goemotions.redirect_arms import leace_erasers, random_destination, stacked
from anchor_hf.experiments.goemotions.redirect_eval import continuation_nll, fluency_ratio, shift_ratios
from anchor_hf.experiments.goemotions.redirect_report import summarize_arm
from anchor_hf.interventions import erase
from anchor_hf.layers import resolve_layers
from anchor_hf.probes import collect_states, is_leace_available


def scores(p_concept, p_destination, nll=None, count=None):
    n = len(p_concept)
    return {"p_concept": torch.tensor(p_concept, dtype=torch.float64),
            "p_destination": torch.tensor(p_destination, dtype=torch.float64),
            "nll": torch.tensor(nll if nll is not None else [1.0] * n, dtype=torch.float64),
            "count": torch.tensor(count if count is not None else [1.0] * n, dtype=torch.float64)}


def test_shift_ratios_are_the_share_of_the_gap_closed_on_each_side():
    before, dest = scores([0.8, 0.6], [0.2, 0.2]), scores([0.3, 0.3], [0.7, 0.5])
    under = scores([0.5, 0.5], [0.4, 0.4])
    r = shift_ratios(before, under, dest)
    assert r["toward_denominator"] == pytest.approx(0.4) and r["away_denominator"] == pytest.approx(0.4)
    assert r["toward"] == pytest.approx(0.5) and r["away"] == pytest.approx(0.5)  # half of each gap closed
    assert shift_ratios(before, before, dest)["toward"] == 0.0  # unedited: nothing moved
    assert shift_ratios(before, dest, dest)["away"] == pytest.approx(1.0)  # written like the destination
    i = torch.tensor([0, 0])  # a bootstrap draw picks prompts on both sides
    assert shift_ratios(before, under, dest, i, i)["toward"] == pytest.approx((0.4 - 0.2) / (0.7 - 0.2))


def test_fluency_ratio_is_the_perplexity_ratio_over_all_continuation_tokens():
    before = scores([0.5, 0.5], [0.5, 0.5], nll=[2.0, 4.0], count=[2, 2])  # mean NLL 1.5
    under = scores([0.5, 0.5], [0.5, 0.5], nll=[6.0, 0.0], count=[3, 1])  # mean NLL 1.5: token-weighted, not per row
    assert fluency_ratio(before, under) == pytest.approx(1.0)
    assert fluency_ratio(before, scores([0.5] * 2, [0.5] * 2, nll=[4.0, 6.0], count=[2, 2])) == pytest.approx(math.e)


def test_continuation_nll_scores_only_the_continuation_tokens():
    model = make_model("llama").eval()
    prompts = torch.tensor([[5, 6, 7], [8, 9, 10]])
    tokens = [[11, 12, 1], [13]]
    sums, counts = continuation_nll(model, prompts, tokens, pad_id=0, batch_size=1)
    assert counts.tolist() == [3, 1]
    with torch.no_grad():
        row = torch.tensor([[5, 6, 7, 11, 12, 1]])
        logp = torch.log_softmax(model(input_ids=row).logits[0].float(), -1)
    expected = -sum(float(logp[t - 1, row[0, t]]) for t in range(3, 6))
    assert float(sums[0]) == pytest.approx(expected, rel=1e-5)  # float32 logits


def triples_with(denominator_gap: float, shift: float, n: int = 60, seed: int = 0):
    """before / under / dest scores whose unedited E-vs-F gap is `denominator_gap` and under moves `shift` of it."""
    g = torch.Generator().manual_seed(seed)
    noise = lambda: (0.02 * torch.randn(n, generator=g)).tolist()  # noqa: E731
    base = 0.4
    before = scores([base + 0.0 + e for e in noise()], [base + e for e in noise()])
    dest = scores([base - denominator_gap + e for e in noise()], [base + denominator_gap + e for e in noise()])
    under = scores([base - shift * denominator_gap + e for e in noise()],
                   [base + shift * denominator_gap + e for e in noise()])
    return before, under, dest


def test_a_seed_whose_model_writes_both_sides_alike_is_not_measurable_and_left_out():
    measurable, flat = triples_with(0.3, 0.6), triples_with(0.01, 0.6, seed=1)
    out = summarize_arm([measurable, flat], resamples=200)
    assert out["toward_measurable_seeds"] == out["away_measurable_seeds"] == 1
    assert out["toward"] == pytest.approx(0.6, abs=0.05)  # the measurable seed's value, not a median with noise
    low, high = out["toward_ci95"]
    assert low <= out["toward"] <= high and high - low < 0.2
    nothing = summarize_arm([flat], resamples=50)
    assert nothing["toward"] is None and nothing["toward_ci95"] is None


def test_the_random_arm_reflects_when_the_destination_is_the_opposite_pole_and_keeps_orthogonal_otherwise():
    r = torch.nn.functional.normalize(torch.randn(8, generator=torch.Generator().manual_seed(0)), dim=0)
    opposite = AnchorConfig(layers=[0], hidden_size=8, concepts=[
        ConceptAnchor(name="anger", dims=[0], repel_kind="hinge", destination="neutral"),
        ConceptAnchor(name="neutral", dims=[0], pole=-1, repel_kind="hinge")])
    assert random_destination(opposite, "anger", r, None) == "opposite"
    axis = AnchorConfig(layers=[0], hidden_size=8, concepts=[
        ConceptAnchor(name="anger", dims=[0], destination="neutral"), ConceptAnchor(name="neutral", dims=[1])])
    d = random_destination(axis, "anger", r, None)
    assert abs(float(d @ r)) < 1e-6 and float(d.norm()) == pytest.approx(1.0) and float(d[1]) > 0.5
    assert random_destination(axis, "anger", r, "opposite") == "opposite"


@pytest.mark.skipif(not is_leace_available(), reason="optional `concept-erasure` package is not installed")
def test_leace_at_each_layer_leaves_the_fitted_token_classes_with_equal_means():
    """LEACE fitted per token and applied by `erase`: the erased layer's class means coincide (before they differ)."""
    model = make_model("llama", layers=2).eval()
    g = torch.Generator().manual_seed(3)
    ids = torch.cat([torch.randint(56, 64, (24, 6), generator=g), torch.randint(2, 50, (24, 6), generator=g)])
    labels = torch.tensor([1] * 24 + [0] * 24)
    batches = [{"input_ids": ids, "attention_mask": torch.ones_like(ids)}]
    erasers = leace_erasers(model, [0, 1], batches, labels)
    modules = resolve_layers(model, [0])

    def class_gap() -> float:
        h = collect_states(model, modules, batches, keep_states=True, progress=False).states[0]  # [N, T, D]
        return float((h[labels == 1].mean((0, 1)) - h[labels == 0].mean((0, 1))).norm())

    before = class_gap()
    with stacked(lambda e, layer: erase(model, e, layers=[layer]), [0, 1], erasers)():
        after = class_gap()
    assert before > 0.05 and after < 1e-4 * before  # measured: 0.069 before, 9e-8 after (float32)
