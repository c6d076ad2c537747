"""The three attacks on constructed cases with known answers: a planted direction fully vs partly removed."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from anchor_hf.errors import AnchorConfigError, AnchorDataError
from anchor_hf.experiments.robustness import (Example, RelearnSettings, RemovalData, auroc_standard_error, batches,
                                              example_nll, guardedness_gap, half_recovery_step, mann_whitney, median,
                                              probe_aurocs, recovered_fraction, relearn_curves, steps_to_reach)
from anchor_hf.experiments.robustness.fingerprint import fingerprint


# ---------------------------------------------------------------------- fingerprint test
def test_mann_whitney_matches_hand_computed_values_with_ties():
    # U = 0 of 9 pairs; sigma^2 = 9*7/12; z = (4.5 - 0.5)/sigma -> p = erfc(z/sqrt2)
    auc, p = mann_whitney(torch.tensor([1.0, 2, 3]), torch.tensor([4.0, 5, 6]))
    assert auc == 0.0 and p == pytest.approx(0.080856, abs=1e-5)
    # ties: ranks 1, 3, 3, 5, 7.5 for x -> U = 4.5; tie term 24 + 6
    auc, p = mann_whitney(torch.tensor([1.0, 2, 2, 3, 5]), torch.tensor([2.0, 4, 5, 6]))
    assert auc == pytest.approx(0.225) and p == pytest.approx(0.210903, abs=1e-5)


def test_mann_whitney_is_symmetric_and_separates_shifted_samples_only():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, generator=g), torch.randn(200, generator=g)
    auc_xy, p_xy = mann_whitney(x, y)
    auc_yx, p_yx = mann_whitney(y, x)
    assert auc_xy == pytest.approx(1 - auc_yx) and p_xy == pytest.approx(p_yx)
    assert p_xy > 0.05
    auc, p = mann_whitney(x + 1.0, y)
    assert auc > 0.7 and p < 1e-10


def test_fingerprint_ignores_a_uniform_shift_and_flags_a_concept_specific_one():
    g = torch.Generator().manual_seed(1)
    never_c, never_o = torch.rand(100, generator=g) + 2, torch.rand(300, generator=g) + 2
    shifted = fingerprint(never_c + 0.3, never_c, never_o + 0.3, never_o)  # another run: worse everywhere alike
    assert shifted["pvalue"] == 1.0 and shifted["auc"] == 0.5
    hidden = fingerprint(never_c - 0.5 + 0.01 * torch.randn(100, generator=g), never_c, never_o, never_o)
    assert hidden["pvalue"] < 1e-20 and hidden["auc"] < 0.05  # still knows the concept better than never
    assert hidden["mean_diff_concept"] == pytest.approx(-0.5, abs=0.01) and hidden["mean_diff_other"] == 0.0


# ---------------------------------------------------------------------- extraction
def _planted(n: int = 800, d: int = 16, residual: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """States with the concept written along axis 0 (scaled by `residual`), noise elsewhere."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.3).long()
    x = torch.randn(n, d, generator=g)
    x[:, 0] += residual * 3.0 * y
    return x, y


@pytest.mark.parametrize("residual, low, high", [(1.0, 0.95, 1.0), (0.3, 0.7, 0.95), (0.0, 0.38, 0.62)])
def test_probe_aurocs_read_a_planted_direction_until_it_is_fully_removed(residual, low, high):
    fit_x, fit_y = _planted(residual=residual, seed=0)
    test_x, test_y = _planted(residual=residual, seed=1)
    (score,) = probe_aurocs([fit_x], fit_y, [test_x], test_y)
    assert low <= score <= high


def test_guardedness_gap_is_zero_for_a_guarded_layer_and_grows_with_what_is_left():
    gone, partial, full = (guardedness_gap([_planted(residual=r)[0]], _planted(residual=r)[1])[0]
                           for r in (0.0, 0.3, 1.0))
    assert abs(gone) < 0.1 and 0.5 < partial < full


# ---------------------------------------------------------------------- relearning
class BigramLM(nn.Module):
    """logits = E[token] @ W: token 0 predicts token 1 through a planted direction u, of strength `a`.

    `noise` > 0 adds a small random init everywhere: a model that never learned the pair but
    can learn it (no saddle), the never-saw reference.
    """

    def __init__(self, a: float, width: int = 4, noise: float = 0.0) -> None:
        super().__init__()
        u = torch.zeros(width)
        u[0] = 1.0
        g = torch.Generator().manual_seed(0)
        self.emb = nn.Parameter(torch.outer(torch.tensor([a, 0.0]), u) + noise * torch.randn(2, width, generator=g))
        self.read = nn.Parameter(torch.stack([torch.zeros(width), a * u], dim=1) + noise * torch.randn(width, 2,
                                                                                                        generator=g))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> SimpleNamespace:
        return SimpleNamespace(logits=self.emb[input_ids] @ self.read)


def _pair() -> list[Example]:
    return [Example((0, 1))]


def _curve(model: nn.Module, steps: int = 60, eval_every: int = 1) -> list[float]:
    sets = {"concept": batches(_pair(), pad_id=0)}
    return relearn_curves(model, _pair() * 4, sets, 0, steps=steps, learning_rate=0.05, batch_size=4,
                          eval_every=eval_every)["concept"]


def test_relearning_tells_a_partly_removed_direction_from_a_fully_removed_one_and_from_never_learning_it():
    reference = float(example_nll(BigramLM(3.0), batches(_pair(), pad_id=0)).mean())  # the model before removal
    partly, fully, never = _curve(BigramLM(0.5)), _curve(BigramLM(0.0)), _curve(BigramLM(0.0, noise=0.01))
    assert len(partly) == len(fully) == len(never) == 61
    assert fully[0] == pytest.approx(math.log(2)) and fully[-1] == pytest.approx(math.log(2))  # a saddle: no gradient
    assert half_recovery_step(fully, reference) == math.inf
    step = half_recovery_step(partly, reference)
    assert 0 < step < 60 and partly[int(step)] <= reference + (partly[0] - reference) / 2 < partly[int(step) - 1]
    assert recovered_fraction(partly, reference) > 0.5 and recovered_fraction(fully, reference) == 0.0
    # On one absolute level (half of never's gap), what is left of the direction comes back faster than
    # a model without it learns it; what is fully gone comes back no faster.
    level = reference + (never[0] - reference) / 2
    to_level = {name: steps_to_reach(c, level) for name, c in (("partly", partly), ("fully", fully), ("never", never))}
    assert 0 < to_level["partly"] < to_level["never"] < 60 and to_level["fully"] == math.inf
    assert _curve(BigramLM(0.5), eval_every=20) == pytest.approx(partly[::20])  # the same run, measured less often


def test_relearning_that_diverges_is_an_error_not_a_removal_that_sticks():
    with pytest.raises(FloatingPointError, match="relearning diverged: the concept loss is .* lower the learning"):
        relearn_curves(BigramLM(0.5), _pair(), {"concept": batches(_pair(), pad_id=0)}, 0, steps=3,
                       learning_rate=1e30, batch_size=1)


def test_auroc_standard_error_matches_hanley_mcneil():
    assert auroc_standard_error(0.5, 10, 10) == pytest.approx(math.sqrt((0.25 + 18 * (1 / 3 - 0.25)) / 100))
    assert auroc_standard_error(0.9, 400, 400) < auroc_standard_error(0.9, 40, 40)


def test_half_recovery_step_and_median_on_known_curves():
    assert half_recovery_step([4.0, 3.0, 2.0, 1.0], 0.0) == 2.0
    assert half_recovery_step([1.0, 0.5], 2.0) == 0.0  # no gap: nothing to regain
    assert half_recovery_step([4.0, 3.9, 3.8], 0.0) == math.inf
    assert math.isnan(recovered_fraction([1.0, 0.5], 2.0))
    assert half_recovery_step([4.0, 3.0, 2.0, 1.0], 0.0, eval_every=5) == 10.0  # measured at steps 0, 5, 10, 15
    assert steps_to_reach([4.0, 3.0, 2.0], 2.5, eval_every=10) == 20.0 and steps_to_reach([4.0], 1.0) == math.inf
    assert median([3.0, math.inf, 1.0]) == 3.0 and median([1.0, math.inf]) == math.inf and median([1.0, 3.0]) == 2.0


def test_relearn_settings_refuse_bad_values():
    with pytest.raises(AnchorConfigError, match="`ks` must be positive ints"):
        RelearnSettings(ks=(0,))
    with pytest.raises(AnchorConfigError, match="`steps` must be an int >= 1"):
        RelearnSettings(steps=0)
    with pytest.raises(AnchorConfigError, match="`learning_rate` must be a finite number > 0"):
        RelearnSettings(learning_rate=float("nan"))
    with pytest.raises(AnchorConfigError, match="`eval_every` = 3 must divide `steps` = 10"):
        RelearnSettings(steps=10, eval_every=3)


# ---------------------------------------------------------------------- examples
def test_batches_mark_scored_and_pooled_positions():
    (b,) = batches([Example((5, 6, 7, 8), score_from=2, pool_until=2), Example((5, 6))], pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7, 8], [5, 6, 0, 0]]
    assert b["score_mask"].tolist() == [[False, False, True, True], [False, True, False, False]]
    assert b["pool_mask"].tolist() == [[True, True, False, False], [True, True, False, False]]


def test_examples_and_removal_data_refuse_bad_input():
    with pytest.raises(AnchorDataError, match="at least 2 tokens"):
        Example((1,))
    with pytest.raises(AnchorDataError, match="`score_from` = 3 must be in 1..2"):
        Example((1, 2, 3), score_from=3)
    a, b = Example((1, 2)), Example((3, 4))
    fields = dict(concept="c", concept_eval=[a], other_eval=[b], relearn_pool=[b], probe_fit=[a, b],
                  fit_labels=torch.tensor([1, 0]), probe_test=[a, b], test_labels=torch.tensor([1, 0]), pad_id=0,
                  notes={})
    RemovalData(**fields)
    with pytest.raises(AnchorDataError, match="also evaluation examples"):
        RemovalData(**{**fields, "relearn_pool": [a]})
    with pytest.raises(AnchorDataError, match="need both concept and non-concept"):
        RemovalData(**{**fields, "fit_labels": torch.tensor([1, 1])})
    with pytest.raises(AnchorDataError, match="`relearn_pool` is empty"):
        RemovalData(**{**fields, "relearn_pool": []})


def _triple(half: dict[str, float], level: dict[str, float], probe: dict[str, float], anchored_probe: float) -> dict:
    """The parts of one triple's results that the summary and the target checks read."""
    arms = {a: {"probe_auroc_max": probe.get(a, 0.6), "probe_auroc_max_se": 0.02, "fingerprint": {"pvalue": 0.5}}
            for a in ("ablated", "redirected", "suppressed", "posthoc", "never")}
    relearn = {a: {"half_steps_median": half.get(a, math.inf), "steps_to_never_half_level": [level.get(a, math.inf)]}
               for a in arms}
    return {"concept": "c", "arms": arms, "references": {"anchored": {"probe_auroc_max": anchored_probe}},
            "relearn": {"100": {"arms": relearn}}}


def test_summary_and_target_checks_read_inf_as_beyond_the_budget_and_flag_an_uninformative_probe():
    from anchor_hf.experiments.robustness.report import checks, summarize

    sticks = _triple({"ablated": math.inf, "redirected": 4.0, "never": 14.0},
                     {"ablated": 8.0, "redirected": 2.0, "never": 15.0},
                     {"ablated": 0.95, "redirected": 0.96, "never": 0.94}, anchored_probe=0.97)
    summary = summarize([sticks])
    assert summary["relearn_half_steps_ablated"] is None and summary["relearn_half_steps_never"] == 14.0
    assert summary["relearn_half_steps_redirected"] == 4.0 and summary["probe_auroc_max_redirected"] == 0.96
    rows = checks(summary, [sticks], budget=100)
    assert [r[0].split()[0] for r in rows] == ["ablated", "ablated", "...", "redirected", "redirected", "..."]
    probe, half, level = rows[:3]
    assert probe[2].startswith("yes (uninformative") and half[2] == "yes" and level[2] == "yes"  # 8 >= 15 / 2
    probe, half, level = rows[3:]  # the same targets judged on the redirected arm, which comes back here
    assert probe[2].startswith("yes (uninformative") and half[2] == "no" and level[2] == "no"  # 4 < 14 / 2, 2 < 15 / 2
    comes_back = _triple({"ablated": 5.0}, {"ablated": 3.0, "never": 15.0}, {"ablated": 0.80, "never": 0.70},
                         anchored_probe=0.85)
    probe, half, level = checks(summarize([comes_back]), [comes_back], budget=100)[:3]
    assert probe[2] == "no" and half[2] == "no" and level[2] == "no"  # never beyond budget, ablated at 5 steps
    medians = summarize([sticks, comes_back, sticks])
    assert medians["relearn_half_steps_ablated"] is None and medians["probe_auroc_max_ablated"] == 0.95
