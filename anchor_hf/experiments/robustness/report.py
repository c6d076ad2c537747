"""The robustness report: `report.md`, `report.json`, `summary.json` and three figures.

With several model triples (seeds), every headline number is the median over triples;
the per-triple values are listed beside it, so a reader sees the spread. Each target is
judged on the target's own metric and, beside it, on a check that the metric can fail:
the probe target is marked uninformative when even the unedited anchored model is within
its margin of the never-saw model, and relearning is also compared on one absolute loss
level (the never-saw model's half-gap level) rather than only on each arm's own gap.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

from anchor_hf.probes.report import markdown_table, write_json, write_report as write_files
from .arms import ARMS, REMOVALS
from .runner import SUMMARY_KEYS, summary_of
from .stats import median

COLOURS = {"ablated": "C0", "suppressed": "C1", "posthoc": "C2", "never": "C3", "anchored": "C7", "control": "C5",
           "redirected": "C4"}
PROBE_MARGIN = 0.05  # target: a removed model's max probe AUROC within 0.05 of the never-saw model's


def _inf(value: float | None) -> float:
    return math.inf if value is None else value


def _steps(value: float | None) -> str:
    return "∞" if value is None or math.isinf(value) else f"{value:g}"


def summarize(per_triple: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median over triples of each summary value; half-steps beyond the budget are written as null."""
    rows = [summary_of(r) for r in per_triple]
    out: dict[str, Any] = {"concept": rows[0]["concept"]}
    for key in SUMMARY_KEYS[1:]:
        value = median([_inf(r[key]) for r in rows])
        out[key] = None if math.isinf(value) else value
    return out


def _largest(per_triple: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["relearn"][max(r["relearn"], key=int)] for r in per_triple]


def _over(per_triple: Sequence[dict[str, Any]], get: Callable[[dict[str, Any]], float]) -> float:
    return median([get(r) for r in per_triple])


def _no_faster(steps: float, never: float) -> bool:
    """At least half the never-saw model's steps (both beyond the budget counts as no faster)."""
    return steps >= never / 2 if not math.isinf(never) else math.isinf(steps)


def checks(summary: dict[str, Any], per_triple: Sequence[dict[str, Any]], budget: int) -> list[list[str]]:
    """Rows (target, measured, verdict) of the two robustness targets, with a second view, per permanent removal."""
    return [row for arm in REMOVALS for row in _removal_checks(arm, summary, per_triple, budget)]


def _removal_checks(arm: str, summary: dict[str, Any], per_triple: Sequence[dict[str, Any]],
                    budget: int) -> list[list[str]]:
    """The probe and relearning targets for one removal arm (`ablated` or `redirected`)."""
    never = summary["probe_auroc_max_never"]
    gap = summary[f"probe_auroc_max_{arm}"] - never
    headroom = _over(per_triple, lambda r: r["references"]["anchored"]["probe_auroc_max"]) - never
    se = _over(per_triple, lambda r: r["arms"][arm]["probe_auroc_max_se"])
    probe_ok = "yes" if gap <= PROBE_MARGIN else "no"
    if headroom <= PROBE_MARGIN:
        probe_ok += " (uninformative: the unedited anchored model is itself within the margin)"
    slower = _no_faster(_inf(summary[f"relearn_half_steps_{arm}"]), _inf(summary["relearn_half_steps_never"]))
    largest = _largest(per_triple)
    level = {a: median([s for x in largest for s in x["arms"][a]["steps_to_never_half_level"]]) for a in (arm, "never")}
    level_ok = _no_faster(level[arm], level["never"])
    return [
        [f"{arm} max probe AUROC within 0.05 of never-saw-it",
         f"{summary[f'probe_auroc_max_{arm}']:.3f} ± {se:.3f} vs {never:.3f} ({gap:+.3f}; post-hoc "
         f"{summary['probe_auroc_max_posthoc'] - never:+.3f}; unedited anchored {headroom:+.3f})", probe_ok],
        [f"{arm} relearns no faster than 2x never-saw-it: half of its own gap (target metric)",
         f"{_steps(summary[f'relearn_half_steps_{arm}'])} vs {_steps(summary['relearn_half_steps_never'])} steps "
         f"(post-hoc {_steps(summary['relearn_half_steps_posthoc'])}; budget {budget})", "yes" if slower else "no"],
        ["... the same on one absolute level: steps to the never-saw model's half-gap loss",
         f"{_steps(level[arm])} vs {_steps(level['never'])} steps", "yes" if level_ok else "no"],
    ]


def _arm_table(per_triple: Sequence[dict[str, Any]]) -> str:
    """One row per model: losses, extraction and fingerprint, medians over triples."""
    columns: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        ("concept NLL", lambda v: v["concept_nll"]), ("removed gap", lambda v: v["removed_gap"]),
        ("collateral", lambda v: v["collateral"]), ("probe AUROC max", lambda v: v["probe_auroc_max"]),
        ("± SE", lambda v: v["probe_auroc_max_se"]), ("guardedness gap max", lambda v: max(v["guardedness_gap"])),
        ("Δ vs never: concept", lambda v: v["fingerprint"]["mean_diff_concept"]),
        ("Δ vs never: other", lambda v: v["fingerprint"]["mean_diff_other"]),
        ("fingerprint AUC", lambda v: v["fingerprint"]["auc"]), ("fingerprint p", lambda v: v["fingerprint"]["pvalue"])]
    rows = []
    for group in ("references", "arms"):
        for name in per_triple[0][group]:
            label = name + (" (unedited)" if group == "references" else "")
            rows.append([label, *[median([get(r[group][name]) for r in per_triple]) for _, get in columns]])
    return markdown_table(["model", *[c for c, _ in columns]], rows)


def _relearn_table(per_triple: Sequence[dict[str, Any]]) -> str:
    """One row per (k, arm): relative and absolute recovery, and how much of it is general repair."""
    rows = []
    for k in per_triple[0]["relearn"]:
        for arm in ARMS:
            entries = [r["relearn"][k]["arms"][arm] for r in per_triple]
            pooled = {key: [x for e in entries for x in e[key]] for key in
                      ("half_steps", "steps_to_never_half_level", "recovered_fraction", "end_minus_never",
                       "concept_drop", "other_drop")}
            gaps = [c[0] - e["reference"] for e in entries for c in e["curves"]]
            fractions = [f for f in pooled["recovered_fraction"] if not math.isnan(f)]
            rows.append([per_triple[0]["relearn"][k]["k_used"], arm, median(gaps), _steps(median(pooled["half_steps"])),
                         " ".join(_steps(h) for h in pooled["half_steps"]),
                         _steps(median(pooled["steps_to_never_half_level"])),
                         median(fractions) if fractions else math.nan, median(pooled["end_minus_never"]),
                         median(pooled["concept_drop"]), median(pooled["other_drop"])])
    return markdown_table(["k", "arm", "gap at step 0", "half-gap steps", "per draw", "steps to never's half level",
                           "gap recovered at the end", "end NLL − never's", "concept NLL drop", "other NLL drop"],
                          rows)


def _layer_table(per_triple: Sequence[dict[str, Any]]) -> str:
    first = per_triple[0]
    layers = first["arms"]["never"]["probe_layers"]
    rows = []
    for group in ("references", "arms"):
        for name in first[group]:
            rows.append([name, *[median([r[group][name]["probe_auroc"][i] for r in per_triple])
                                 for i in range(len(layers))]])
    return markdown_table(["model", *layers], rows)


def _recovery_figure(per_triple: Sequence[dict[str, Any]]) -> Figure:
    first = per_triple[0]
    ks = list(first["relearn"])
    every = first["settings"]["relearn"]["eval_every"]
    fig = Figure(figsize=(4.2 * len(ks), 3.4))
    for i, k in enumerate(ks):
        ax = fig.add_subplot(1, len(ks), i + 1)
        for arm in ARMS:
            curves = [c for r in per_triple for c in r["relearn"][k]["arms"][arm]["curves"]]
            mid = [median([c[s] for c in curves]) for s in range(len(curves[0]))]
            ax.plot([s * every for s in range(len(mid))], mid, color=COLOURS[arm], label=arm)
        for source, arm in (("anchored", "ablated"), ("control", "never")):
            ref = median([r["relearn"][k]["arms"][arm]["reference"] for r in per_triple])
            ax.axhline(ref, color=COLOURS[source], linestyle="--", linewidth=0.8, label=f"{source} (before removal)")
        level = median([r["relearn"][k]["never_half_level"] for r in per_triple])
        ax.axhline(level, color=COLOURS["never"], linestyle=":", linewidth=0.8, label="never's half-gap level")
        ax.set_title(f"k = {first['relearn'][k]['k_used']}")
        ax.set_xlabel("fine-tuning step")
        ax.set_ylabel("concept-text NLL (median)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _probe_figure(per_triple: Sequence[dict[str, Any]]) -> Figure:
    first = per_triple[0]
    fig = Figure(figsize=(5.0, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    layers = first["arms"]["never"]["probe_layers"]
    for group, style in (("references", ":"), ("arms", "o-")):
        for name in first[group]:
            values = [median([r[group][name]["probe_auroc"][i] for r in per_triple]) for i in range(len(layers))]
            ax.plot(range(len(layers)), values, style, color=COLOURS[name], label=name)
    ax.set_xticks(range(len(layers)), [x.split(".")[-1] for x in layers], fontsize=7)
    ax.set_xlabel("residual slice (embedding, then block outputs)")
    ax.set_ylabel("held-out probe AUROC (median)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _fingerprint_figure(first: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(3.0 * len(ARMS), 2.8))
    for i, arm in enumerate(ARMS):
        ax = fig.add_subplot(1, len(ARMS), i + 1)
        fp = first["arms"][arm]["fingerprint"]
        ax.hist(fp["diff_other"], bins=30, alpha=0.6, density=True, color="C7", label="other texts")
        ax.hist(fp["diff_concept"], bins=30, alpha=0.6, density=True, color=COLOURS[arm], label="concept texts")
        ax.set_title(f"{arm}: AUC {fp['auc']:.2f}, p = {fp['pvalue']:.2g}", fontsize=8)
        ax.set_xlabel("NLL(arm) − NLL(never), per text", fontsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _method(settings: dict[str, Any]) -> str:
    return (f"Relearning: AdamW, learning rate {settings['learning_rate']:g}, batch {settings['batch_size']}, "
            f"{settings['steps']} steps (held-out losses every {settings['eval_every']}), {settings['repeats']} draws "
            "of k examples per arm, the same draws for every arm. Half-gap steps (the target metric): the first "
            "step at which the concept-text NLL has regained half of what removal added over the model before "
            "removal (anchored for ablated/suppressed, control for post-hoc; the never-saw model: half of its gap "
            "over the control); 0 without a gap; ∞ when the steps ran out first. Steps to never's half level: the "
            "same crossing for one loss level shared by every arm. Concept / other NLL drop: how far each loss "
            "fell by the end (a drop on other texts is fine-tuning repairing general damage, not the concept "
            "coming back). The summary uses the largest k.")


def _arm_notes() -> str:
    return ("NLL: mean per-text NLL of the scored tokens on the held-out concept texts. Removed gap: concept NLL "
            "minus the model's before removal. Collateral: the same on other texts. Probe AUROC max: best held-out "
            "logistic probe over the residual slices, fitted on the model's own states (± its Hanley–McNeil "
            "standard error). Guardedness gap: whitened distance between the class means minus its value under "
            "shuffled labels, max over slices (about 0 = linearly guarded, the condition LEACE enforces). "
            "Fingerprint: per text d = NLL(model) − NLL(never); AUC = P(d on a concept text > d on another), p = "
            "two-sided Mann–Whitney test of the two (small p: distinguishable from never-saw on the concept "
            "specifically; with hundreds of texts read the AUC as the effect size).")


def write(out: str, per_triple: Sequence[dict[str, Any]], command: str) -> dict[str, Any]:
    """Write every report file into `out`; returns the summary."""
    summary = summarize(per_triple)
    first = per_triple[0]
    settings = first["settings"]["relearn"]
    md = [f"# Does removal stick? `{summary['concept']}`", "",
          "Command (every number below comes from this run):", "", f"```\n{command}\n```", "",
          f"Model triples (anchored / control / never-saw-it): {len(per_triple)}; headline numbers are medians over "
          "triples. " + " ".join(f"`{r['settings']['model']}`" for r in per_triple), "",
          "Data: " + "; ".join(f"{k}: {v}" for k, v in first["notes"].items()) + ".", "", _method(settings), "",
          "## Targets", "", markdown_table(["target", "measured", "met"],
                                                     checks(summary, per_triple, settings["steps"])), "",
          "## Summary (summary.json)", "", markdown_table(["key", "value"], list(summary.items())), "",
          "Per triple: " + "; ".join(
              f"{r['settings']['model']}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                        for k, v in summary_of(r).items() if k != "concept")
              for r in per_triple), "",
          "## Arms after removal", "", _arm_notes(), "", _arm_table(per_triple), "",
          f"Post-hoc direction vs anchor (|cos|): {_over(per_triple, lambda r: r['posthoc_cos_with_anchor']):.3f}.",
          "", "![fingerprint](fingerprint.png)", "",
          "## Relearning", "", _relearn_table(per_triple), "", "![recovery](recovery.png)", "",
          "## Extraction: held-out probe AUROC per residual slice", "", _layer_table(per_triple), "",
          "![probes](probes.png)", ""]
    results = {"command": command, "summary": summary, "per_triple": list(per_triple)}
    figures = {"recovery": _recovery_figure(per_triple), "probes": _probe_figure(per_triple),
               "fingerprint": _fingerprint_figure(first)}
    write_files(out, results, "\n".join(md), figures)
    write_json(os.path.join(out, "summary.json"), summary)
    return summary
