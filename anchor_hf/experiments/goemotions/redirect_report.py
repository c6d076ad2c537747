"""The redirect part of a GoEmotions report: summary keys with bootstrap intervals, tables, a figure.

Per seed and arm the measures of `redirect_eval` (toward, away, fluency) are computed from
the stored per-prompt scores. A seed counts for toward (away) only where its unedited
model writes E and F continuations at least `MIN_DENOMINATOR` apart in P_F (P_E); the
summary value is the median over those seeds, or None ("not measurable") if there is
none. Its 95% interval redraws the E prompts and the F prompts (the same draw for every
seed: the prompts are shared) and takes the median over the same seeds in each replicate.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from anchor_hf.probes.bootstrap import bootstrap_interval
from anchor_hf.probes.report import markdown_table
from .redirect_arms import CONTROL_ARMS
from .redirect_eval import MIN_DENOMINATOR, RECOMMENDED_PROMPTS, Scores, as_scores, fluency_ratio, shift_ratios

ARMS = ("redirect", "redirect_weights", "redirect_random", "suppress", "leace_anchored", "leace", "posthoc_suppress")
PREFIX = {"redirect": "redirect", "leace": "leace", "redirect_random": "redirect_random"}  # arms in summary.json
TARGETS = (("redirect_toward", "≥", 0.5), ("redirect_away", "≥", 0.5), ("redirect_fluency_ratio", "≤", 1.2),
           ("perplexity_ratio", "≤", 1.03))
Triple = tuple[Scores, Scores, Scores]  # before, under, dest


def _triples(per_seed: Sequence[dict[str, Any]], arm: str) -> list[Triple]:
    """(before, under, dest) continuation scores of `arm` per seed; control arms against the control's own."""
    model = "control" if arm in CONTROL_ARMS else "anchored"
    return [(as_scores(s["unedited"][model]), as_scores(s["arms"][arm]), as_scores(s["destination"][model]))
            for s in per_seed]


def _reading(per_seed: Sequence[dict[str, Any]], arm: str) -> list[dict[str, tuple[Scores, Scores]]]:
    """Per seed and side (`concept`, `destination`): (unedited, edited) held-out comment NLLs of `arm`."""
    model = "control" if arm in CONTROL_ARMS else "anchored"
    return [{side: tuple({k: torch.tensor(x[side][k], dtype=torch.float64) for k in ("nll", "count")}
                         for x in (s["reading"]["unedited"][model], s["reading"]["arms"][arm]))
             for side in ("concept", "destination")} for s in per_seed]


def _median(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(finite) if finite else None


def _median_or_nan(values: Sequence[float | None]) -> float:
    median = _median(values)
    return math.nan if median is None else median


def _text(text: str) -> str:
    """A continuation as one markdown table cell (pipes escaped, line breaks as spaces), quoted."""
    return "“" + text.replace("|", "\\|").replace("\n", " ").strip() + "”"


def per_seed_values(triples: Sequence[Triple]) -> list[dict[str, float]]:
    """toward, away, their denominators and the fluency ratio of each seed, on every prompt."""
    return [{**shift_ratios(b, u, d), "fluency_ratio": fluency_ratio(b, u)} for b, u, d in triples]


def summarize_arm(triples: Sequence[Triple], resamples: int) -> dict[str, Any]:
    """Medians over measurable seeds with their 95% intervals (see the module docstring)."""
    values = per_seed_values(triples)
    out: dict[str, Any] = {}
    sizes = [len(triples[0][1]["p_concept"]), len(triples[0][2]["p_concept"])]
    for key in ("toward", "away"):
        seeds = [k for k, v in enumerate(values) if v[f"{key}_denominator"] >= MIN_DENOMINATOR]
        out[f"{key}_denominator"] = _median([v[f"{key}_denominator"] for v in values])
        out[f"{key}_measurable_seeds"] = len(seeds)
        if not seeds:
            out[key], out[f"{key}_ci95"] = None, None
            continue
        out[key] = _median([values[k][key] for k in seeds])

        def statistic(idx: Sequence[torch.Tensor], key: str = key, seeds: list[int] = seeds) -> float:
            return _median_or_nan([shift_ratios(*triples[k], idx[0], idx[1])[key] for k in seeds])

        out[f"{key}_ci95"] = list(bootstrap_interval(statistic, sizes, resamples=resamples))
    out["fluency_ratio"] = _median([v["fluency_ratio"] for v in values])
    out["fluency_ratio_ci95"] = list(bootstrap_interval(
        lambda idx: _median_or_nan([fluency_ratio(b, u, idx[0]) for b, u, _ in triples]), sizes[:1],
        resamples=resamples))
    return out


def summarize_reading(seeds: Sequence[dict[str, tuple[Scores, Scores]]], resamples: int) -> dict[str, Any]:
    """Perplexity ratios (edited ÷ unedited) on held-out E and F comments: medians over seeds, 95% intervals."""
    sizes = [len(seeds[0]["concept"][0]["nll"]), len(seeds[0]["destination"][0]["nll"])]
    out: dict[str, Any] = {}
    for i, side in enumerate(("concept", "destination")):
        out[f"{side}_ratio"] = _median([fluency_ratio(*s[side]) for s in seeds])
        out[f"{side}_ratio_ci95"] = list(bootstrap_interval(
            lambda idx, side=side, i=i: _median_or_nan([fluency_ratio(*s[side], idx[i]) for s in seeds]), sizes,
            resamples=resamples))
    return out


def summarize_redirect(per_seed: Sequence[dict[str, Any]], resamples: int
                       ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(summary.json keys, per view every arm's summary) over the seeds' `redirect` results.

    Views: `continuation` (toward, away, fluency: the main keys) and `reading` (`redirect_reading`:
    perplexity ratios on held-out comments, keys `<arm>_concept_perplexity_ratio` and
    `<arm>_destination_perplexity_ratio`).
    """
    redirects = [s["redirect"] for s in per_seed]
    views = {"continuation": {arm: summarize_arm(_triples(redirects, arm), resamples) for arm in ARMS},
             "reading": {arm: summarize_reading(_reading(redirects, arm), resamples) for arm in ARMS}}
    arms = views["continuation"]
    summary: dict[str, Any] = {"destination": redirects[0]["destination_label"],
                               "redirect_prompts": len(redirects[0]["unedited"]["anchored"]["p_concept"]),
                               "destination_prompts": len(redirects[0]["destination"]["anchored"]["p_concept"])}
    for arm, prefix in PREFIX.items():
        for key in ("toward", "away", "fluency_ratio"):
            summary[f"{prefix}_{key}"] = arms[arm][key]
            summary[f"{prefix}_{key}_ci95"] = arms[arm][f"{key}_ci95"]
    for arm in ("redirect", "leace"):
        for key in ("toward_denominator", "away_denominator"):
            summary[f"{PREFIX[arm]}_{key}"] = arms[arm][key]
    for arm, prefix in PREFIX.items():
        for side in ("concept", "destination"):
            summary[f"{prefix}_{side}_perplexity_ratio"] = views["reading"][arm][f"{side}_ratio"]
            summary[f"{prefix}_{side}_perplexity_ratio_ci95"] = views["reading"][arm][f"{side}_ratio_ci95"]
    return summary, views


def _fmt(value: float | None, ci: Sequence[float] | None = None) -> str:
    if value is None:
        return f"not measurable (denominator < {MIN_DENOMINATOR:g})"
    text = f"{value:.3f}"
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and not any(math.isnan(c) for c in ci) else "")


def _checks(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, op, bound in TARGETS:
        value = summary.get(key)
        ok = value is not None and (value >= bound if op == "≥" else value <= bound)
        rows.append([f"{key} {op} {bound:g}", _fmt(value, summary.get(f"{key}_ci95")), "yes" if ok else "**no**"])
    for key in ("toward", "away"):
        mine, theirs = summary[f"redirect_{key}"], summary[f"leace_{key}"]
        ok = mine is not None and (theirs is None or mine > theirs)
        rows.append([f"redirect_{key} > leace_{key} (LEACE on the control)", f"{_fmt(mine)} vs {_fmt(theirs)}",
                     "yes" if ok else "**no**"])
    return rows


def _arm_rows(arms: dict[str, Any]) -> list[list[Any]]:
    return [[arm, "control" if arm in CONTROL_ARMS else "anchored", _fmt(a["toward"], a["toward_ci95"]),
             _fmt(a["away"], a["away_ci95"]), _fmt(a["fluency_ratio"], a["fluency_ratio_ci95"]),
             f"{a['toward_measurable_seeds']} / {a['away_measurable_seeds']}"] for arm, a in arms.items()]


def _seed_rows(per_seed: Sequence[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for s in per_seed:
        for arm in ARMS:
            (before, under, dest), = _triples([s["redirect"]], arm)
            (reading,) = _reading([s["redirect"]], arm)
            v = per_seed_values([(before, under, dest)])[0]
            means = [float(x[key].mean()) for key in ("p_destination", "p_concept") for x in (before, under, dest)]
            rows.append([s["seed"], arm, v["toward"], v["away"], v["toward_denominator"], v["away_denominator"],
                         v["fluency_ratio"], *means, *(fluency_ratio(*reading[side])
                                                       for side in ("concept", "destination"))])
    return rows


def _examples(per_seed: Sequence[dict[str, Any]]) -> list[list[str]]:
    first = per_seed[0]["redirect"]
    columns = [first["unedited"]["anchored"]["examples"], first["arms"]["redirect"]["examples"],
               first["unedited"]["control"]["examples"], first["arms"]["leace"]["examples"]]
    return [[_text(p), *(_text(c[i]) for c in columns)] for i, p in enumerate(first["prompt_examples"])]


def redirect_figure(arms: dict[str, Any]) -> Figure:
    """Each arm's toward against its away (continuations) with 95% intervals; the target corner is shaded.

    Arms that are not measurable are listed in the title instead of drawn.
    """
    fig = Figure(figsize=(5.4, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.add_patch(Rectangle((0.5, 0.5), 1.0, 1.0, color="0.92", zorder=0))
    missing = []
    for i, (arm, a) in enumerate(arms.items()):
        if a["toward"] is None or a["away"] is None:
            missing.append(arm)
            continue
        xerr = [[a["away"] - a["away_ci95"][0]], [a["away_ci95"][1] - a["away"]]]
        yerr = [[a["toward"] - a["toward_ci95"][0]], [a["toward_ci95"][1] - a["toward"]]]
        ax.errorbar([a["away"]], [a["toward"]], xerr=xerr, yerr=yerr, fmt="o", color=f"C{i}", label=arm, capsize=2)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.set_title("not measurable: " + ", ".join(missing) if missing else "redirect and the baselines", fontsize=8)
    ax.set_xlabel("away (share of the E-vs-F gap in P_E closed)")
    ax.set_ylabel("toward (share of the gap in P_F closed)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def redirect_section(summary: dict[str, Any], views: dict[str, dict[str, Any]], per_seed: Sequence[dict[str, Any]],
                     data: Any, place: str) -> list[str]:
    """Markdown lines of the redirect section (targets, arms in both views, per seed, examples)."""
    rd, arms = data, views["continuation"]
    few = min(summary["redirect_prompts"], summary["destination_prompts"]) < RECOMMENDED_PROMPTS
    names = ["seed", "arm", "toward", "away", "toward den.", "away den.", "fluency", "P_F before", "P_F under",
             "P_F dest", "P_E before", "P_E under", "P_E dest", "E-text ppl ratio", "F-text ppl ratio"]
    return [
        f"## Redirect to `{summary['destination']}` (destination place: {place})", "",
        f"Held-out prompts: {summary['redirect_prompts']} `{rd.plan.concept.name}` comments and "
        f"{summary['destination_prompts']} `{rd.plan.destination.name}` comments (dev + test, first "
        f"{rd.settings.redirect_prompt_tokens} tokens), greedy continuations of up to "
        f"{rd.settings.redirect_new_tokens} "
        f"tokens. Classifiers (bag of words, training split), test AUROC: E {rd.classifier_aurocs['concept']:.3f}, "
        f"F {rd.classifier_aurocs['destination']:.3f}. Intervals: 95% bootstrap over prompts "
        f"({rd.settings.redirect_resamples} replicates)."
        + (f" **Fewer than {RECOMMENDED_PROMPTS} prompts on a side: intervals are wide.**" if few else ""), "",
        markdown_table(["target", "measured [95% interval]", "met"], _checks(summary)), "",
        "toward = (P_F(under) − P_F(before)) / (P_F(dest) − P_F(before)); away = (P_E(before) − P_E(under)) / "
        "(P_E(before) − P_E(dest)); before/dest = the same model's unedited continuations of E/F prompts; "
        "fluency = perplexity of the edited continuations under the control ÷ that of the unedited ones. "
        f"A seed whose denominator is below {MIN_DENOMINATOR:g} is not measurable and left out of the median.", "",
        markdown_table(["arm", "model", "toward [95%]", "away [95%]", "fluency [95%]", "measurable seeds (t / a)"],
                       _arm_rows(arms)), "", "![redirect](redirect.png)", "",
        "### Reading: perplexity of held-out comments under each edit", "",
        f"Perplexity of {len(rd.concept_comments)} held-out `{rd.plan.concept.name}` comments (E) and "
        f"{len(rd.destination_comments)} `{rd.plan.destination.name}` comments (F) under the edited model ÷ "
        "unedited (teacher-forced, `redirect_reading`): what each edit costs the model on the concept's own text "
        "and on the destination's. Measurable on any model, unlike the continuations above.", "",
        markdown_table(["arm", "model", "E-text perplexity ratio [95%]", "F-text perplexity ratio [95%]"],
                       [[arm, "control" if arm in CONTROL_ARMS else "anchored",
                         _fmt(r["concept_ratio"], r["concept_ratio_ci95"]),
                         _fmt(r["destination_ratio"], r["destination_ratio_ci95"])]
                        for arm, r in views["reading"].items()]), "",
        "### Per seed", "", markdown_table(names, _seed_rows(per_seed)), "",
        "### Continuations (seed 0)", "",
        markdown_table(["prompt", "anchored", "anchored + redirect", "control", "control + LEACE"],
                       _examples(per_seed)), ""]
