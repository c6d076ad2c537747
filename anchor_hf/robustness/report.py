"""The robustness report: `report.md`, `report.json`, `summary.json` and three figures.

With several model triples (seeds), every headline number is the median over triples;
the per-triple values are listed beside it, so a reader sees the spread.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from ..probes.report import _clean, markdown_table, write_report as write_files
from .arms import ARMS
from .relearn import median
from .runner import SUMMARY_KEYS, summary_of

COLOURS = {"ablated": "C0", "suppressed": "C1", "posthoc": "C2", "never": "C3", "anchored": "C7", "control": "C5"}


def _inf(value: float | None) -> float:
    return math.inf if value is None else value


def summarize(per_triple: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median over triples of each summary value (null half-steps count as beyond the budget)."""
    rows = [summary_of(r) for r in per_triple]
    out: dict[str, Any] = {"concept": rows[0]["concept"]}
    for key in SUMMARY_KEYS[1:]:
        value = median([_inf(r[key]) for r in rows])
        out[key] = None if math.isinf(value) else value
    return out


def _steps(value: float | None) -> str:
    return "beyond budget" if value is None or math.isinf(value) else f"{value:g}"


def _checks(summary: dict[str, Any], budget: int) -> list[list[str]]:
    gap = summary["probe_auroc_max_ablated"] - summary["probe_auroc_max_never"]
    ablated, never = _inf(summary["relearn_half_steps_ablated"]), _inf(summary["relearn_half_steps_never"])
    slower = ablated >= never / 2 if not math.isinf(never) else math.isinf(ablated)
    posthoc_gap = summary["probe_auroc_max_posthoc"] - summary["probe_auroc_max_never"]
    return [
        ["ablated max probe AUROC within 0.05 of never-saw-it",
         f"{summary['probe_auroc_max_ablated']:.3f} vs {summary['probe_auroc_max_never']:.3f} ({gap:+.3f}; "
         f"post-hoc {posthoc_gap:+.3f})", "yes" if gap <= 0.05 else "no"],
        ["ablated relearns no faster than 2x never-saw-it (half-gap steps >= never's / 2)",
         f"{_steps(summary['relearn_half_steps_ablated'])} vs {_steps(summary['relearn_half_steps_never'])} "
         f"(post-hoc {_steps(summary['relearn_half_steps_posthoc'])}; budget {budget} steps)",
         "yes" if slower else "no"],
    ]


def _arm_table(per_triple: Sequence[dict[str, Any]]) -> str:
    rows = []
    for group in ("references", "arms"):
        for name in per_triple[0][group]:
            vals = [r[group][name] for r in per_triple]
            def med(f: Any) -> float:
                return median([f(v) for v in vals])
            rows.append([name + (" (unedited)" if group == "references" else ""),
                         med(lambda v: v["concept_nll"]), med(lambda v: v["removed_gap"]),
                         med(lambda v: v["collateral"]), med(lambda v: v["probe_auroc_max"]),
                         med(lambda v: max(v["guardedness_gap"])),
                         med(lambda v: v["fingerprint"]["mean_diff_concept"]),
                         med(lambda v: v["fingerprint"]["mean_diff_other"]),
                         med(lambda v: v["fingerprint"]["auc"]), med(lambda v: v["fingerprint"]["pvalue"])])
    return markdown_table(["model", "concept NLL", "removed gap", "collateral", "probe AUROC max",
                           "guardedness gap max", "Δ vs never: concept", "Δ vs never: other", "fingerprint AUC",
                           "fingerprint p"], rows)


def _relearn_table(per_triple: Sequence[dict[str, Any]]) -> str:
    rows = []
    for k in per_triple[0]["relearn"]:
        for arm in ARMS:
            entries = [r["relearn"][k]["arms"][arm] for r in per_triple]
            halves = [h for e in entries for h in e["half_steps"]]
            fractions = [f for e in entries for f in e["recovered_fraction"] if not math.isnan(f)]
            gaps = [e["curves"][i][0] - e["reference"] for e in entries for i in range(len(e["curves"]))]
            rows.append([per_triple[0]["relearn"][k]["k_used"], arm, median(gaps),
                         _steps(median(halves)), " ".join(_steps(h) for h in halves),
                         median(fractions) if fractions else math.nan])
    return markdown_table(["k", "arm", "gap at step 0", "half-gap steps (median)", "per draw",
                           "recovered by the end (median)"], rows)


def _layer_table(per_triple: Sequence[dict[str, Any]]) -> str:
    first = per_triple[0]
    layers = first["arms"]["never"]["probe_layers"]
    rows = []
    for group in ("references", "arms"):
        for name in first[group]:
            values = [median([r[group][name]["probe_auroc"][i] for r in per_triple]) for i in range(len(layers))]
            rows.append([name, *values])
    return markdown_table(["model", *layers], rows)


def _figures(per_triple: Sequence[dict[str, Any]]) -> dict[str, Figure]:
    first = per_triple[0]
    ks = list(first["relearn"])
    recovery = Figure(figsize=(4.2 * len(ks), 3.4))
    for i, k in enumerate(ks):
        ax = recovery.add_subplot(1, len(ks), i + 1)
        for arm in ARMS:
            curves = [c for r in per_triple for c in r["relearn"][k]["arms"][arm]["curves"]]
            every = first["settings"]["relearn"]["eval_every"]
            mid = [median([c[s] for c in curves]) for s in range(len(curves[0]))]
            ax.plot([s * every for s in range(len(mid))], mid, color=COLOURS[arm], label=arm)
        for source in ("anchored", "control"):
            ref = median([r["relearn"][k]["arms"]["ablated" if source == "anchored" else "never"]["reference"]
                          for r in per_triple])
            ax.axhline(ref, color=COLOURS[source], linestyle="--", linewidth=0.8, label=f"{source} (before removal)")
        ax.set_title(f"k = {first['relearn'][k]['k_used']}")
        ax.set_xlabel("fine-tuning step")
        ax.set_ylabel("concept-text NLL (median)")
        ax.legend(fontsize=6)
    recovery.tight_layout()

    probes = Figure(figsize=(5.0, 3.4))
    ax = probes.add_subplot(1, 1, 1)
    layers = first["arms"]["never"]["probe_layers"]
    for group, style in (("references", ":"), ("arms", "o-")):
        for name in first[group]:
            values = [median([r[group][name]["probe_auroc"][i] for r in per_triple]) for i in range(len(layers))]
            ax.plot(range(len(layers)), values, style, color=COLOURS[name], label=name)
    ax.set_xticks(range(len(layers)), [x.split(".")[-1] for x in layers], fontsize=7)
    ax.set_xlabel("residual slice (embedding, then block outputs)")
    ax.set_ylabel("held-out probe AUROC (median)")
    ax.legend(fontsize=6)
    probes.tight_layout()

    prints = Figure(figsize=(3.0 * len(ARMS), 2.8))
    for i, arm in enumerate(ARMS):
        ax = prints.add_subplot(1, len(ARMS), i + 1)
        fp = first["arms"][arm]["fingerprint"]
        ax.hist(fp["diff_other"], bins=30, alpha=0.6, density=True, color="C7", label="other texts")
        ax.hist(fp["diff_concept"], bins=30, alpha=0.6, density=True, color=COLOURS[arm], label="concept texts")
        ax.set_title(f"{arm}: p = {fp['pvalue']:.2g}", fontsize=8)
        ax.set_xlabel("NLL(arm) − NLL(never), per text", fontsize=7)
        ax.legend(fontsize=6)
    prints.tight_layout()
    return {"recovery": recovery, "probes": probes, "fingerprint": prints}


def write(out: str, per_triple: Sequence[dict[str, Any]], command: str) -> dict[str, Any]:
    """Write every report file into `out`; returns the summary."""
    summary = summarize(per_triple)
    first = per_triple[0]
    settings = first["settings"]["relearn"]
    md = [f"# Does removal stick? `{summary['concept']}`", "",
          "Command (every number below comes from this run):", "", f"```\n{command}\n```", "",
          f"Model triples (anchored / control / never-saw-it): {len(per_triple)}; headline numbers are medians over "
          "triples. " + " ".join(f"`{r['settings']['model']}`" for r in per_triple), "",
          "Data: " + "; ".join(f"{k}: {v}" for k, v in first["notes"].items()) + ".", "",
          f"Relearning: AdamW, learning rate {settings['learning_rate']:g}, batch {settings['batch_size']}, "
          f"{settings['steps']} steps (held-out loss every {settings['eval_every']}), {settings['repeats']} draws of k examples per arm (the same draws for every "
          "arm). Half-gap steps: the first step at which the concept-text NLL has regained half of what removal "
          "added over the model before removal (the never-saw model: half of its gap over the control); 0 when "
          "there is no gap; 'beyond budget' when the steps ran out first. The summary uses the largest k.", "",
          "## Targets (issue 9)", "", markdown_table(["target", "measured", "met"], _checks(summary,
                                                                                            settings["steps"])), "",
          "## Summary (summary.json)", "", markdown_table(["key", "value"], list(summary.items())), "",
          "## Arms after removal", "",
          "NLL: mean per-text NLL of the scored tokens on the held-out concept texts. Removed gap: concept NLL "
          "minus the model's before removal (anchored for ablated/suppressed, control for post-hoc/never). "
          "Collateral: the same on other texts. Probe AUROC max: best held-out logistic probe over the residual "
          "slices, fitted on the arm's own states. Guardedness gap: whitened distance between the class means minus its "
          "value under shuffled labels, max over slices (about 0 = linearly guarded, the condition LEACE enforces). Fingerprint: per text "
          "d = NLL(model) − NLL(never); AUC = P(d on a concept text > d on another text), p = two-sided "
          "Mann–Whitney test of the two (small p: distinguishable from never-saw on the concept specifically).", "",
          _arm_table(per_triple), "",
          f"Post-hoc direction vs anchor (|cos|): {median([r['posthoc_cos_with_anchor'] for r in per_triple]):.3f}.",
          "", "![fingerprint](fingerprint.png)", "",
          "## Relearning", "", _relearn_table(per_triple), "", "![recovery](recovery.png)", "",
          "## Extraction: held-out probe AUROC per residual slice", "", _layer_table(per_triple), "",
          "![probes](probes.png)", ""]
    results = {"command": command, "summary": summary, "per_triple": list(per_triple)}
    write_files(out, results, "\n".join(md), _figures(per_triple))
    path = os.path.join(out, "summary.json")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_clean(summary), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return summary
