"""Write a GoEmotions report: report.md, report.json, figures and the flat summary.json (fixed keys).

Numbers are medians over seeds; every per-seed number is in the tables and in report.json,
and the exact command heads the report. Files are written atomically (`probes.report`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from anchor_hf.probes.plots import plot_detection, plot_dose_response, plot_entanglement
from anchor_hf.probes.report import markdown_table, write_json, write_report as write_files
from anchor_hf.probes.stats import median as seed_median
from .redirect_report import redirect_figure, redirect_section, summarize_redirect

SUMMARY_KEYS = ("recipe", "concept", "label_rate", "seeds", "auroc_anchored", "auroc_posthoc",
                "suppression_selectivity_ratio", "posthoc_selectivity_ratio", "suppression_efficacy",
                "ablation_efficacy", "perplexity_ratio")
TARGETS_A = {"auroc_anchored": ("≥", 0.90), "suppression_selectivity_ratio": ("≥", 3.0),
             "suppression_efficacy": ("≥", 0.5), "ablation_efficacy": ("≥", 0.5)}


def median(values: Sequence[float | None]) -> float:
    """Median over seeds; a seed without a value (a NaN efficacy: no never-saw gap) is left out.

    The per-seed tables beside each median show every seed."""
    return seed_median(values, nan="omit")


def summarize(recipe: str, concept: str, rate: float, per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The flat summary: exactly `SUMMARY_KEYS`, metrics as medians over seeds."""
    out: dict[str, Any] = {"recipe": recipe, "concept": concept, "label_rate": rate, "seeds": len(per_seed)}
    for key in SUMMARY_KEYS[4:]:
        out[key] = median([s[key] for s in per_seed])
    return out


def _checks(summary: dict[str, Any], recipe: str, per_seed: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(target, measured, met?) rows of the GoEmotions targets."""
    rows = []
    if recipe == "scratch":
        for key, (op, bound) in TARGETS_A.items():
            rows.append((f"{key} {op} {bound:g}", f"{summary[key]:.4g}", _yes(summary[key] >= bound)))
        ratio = summary["perplexity_ratio"]
        rows.append(("perplexity within 3% of control", f"{ratio:.4f}", _yes(abs(ratio - 1) <= 0.03)))
        rows.append(("anchored selectivity ≥ post-hoc", f"{summary['suppression_selectivity_ratio']:.4g} vs "
                     f"{summary['posthoc_selectivity_ratio']:.4g}",
                     _yes(summary["suppression_selectivity_ratio"] >= summary["posthoc_selectivity_ratio"])))
    else:
        rows.append(("anchored AUROC > pre-fine-tune best post-hoc", f"{summary['auroc_anchored']:.4f} vs "
                     f"{summary['auroc_posthoc']:.4f}", _yes(summary["auroc_anchored"] > summary["auroc_posthoc"])))
        ratio = summary["perplexity_ratio"]
        rows.append(("perplexity moves < 5% (anchored ÷ control)", f"{ratio:.4f}", _yes(abs(ratio - 1) < 0.05)))
        pre = median([s.get("perplexity_ratio_vs_pretrained", math.nan) for s in per_seed])
        rows.append(("perplexity moves < 5% (anchored ÷ pre-fine-tune)", f"{pre:.4f}", _yes(abs(pre - 1) < 0.05)))
    return rows


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _figures(per_seed: Sequence[dict[str, Any]], concept: str) -> dict[str, Figure]:
    first = per_seed[0]
    layers = [f"layers.{x}" for x in first["layers"]]
    n_post = len(first["auroc_posthoc_layers"])
    post_at = [first["auroc_posthoc_layers"][x % n_post] for x in first["layers"]]
    detection = plot_detection(layers, {concept: {"anchored (axis)": first["auroc_anchored_layers"],
                                                  "post-hoc (diff. of means)": post_at,
                                                  "control along the axis": first["auroc_control_axis_layers"]}})
    steering = plot_dose_response({"anchored": first["steering"], "post-hoc": first["posthoc_steering"]},
                                  "classifier concept score of the continuation")
    ent, post = first["entanglement"], first["posthoc_entanglement"]
    groups = [concept if g == "concept" else g for g in ent["groups"]]
    matrix = [ent["suppress"]["row"], ent["ablate"]["row"], post["suppress"]["row"], post["ablate"]["row"]]
    entangle = plot_entanglement(["anchored suppress", "anchored ablate", "post-hoc suppress", "post-hoc ablate"],
                                 groups, matrix, f"Entanglement (seed {first['seed']})")
    return {"detection": detection, "steering": steering, "entanglement": entangle}


def _seed_table(per_seed: Sequence[dict[str, Any]]) -> str:
    keys = ["auroc_anchored", "auroc_anchored_max_pool", "auroc_posthoc",
            "suppression_selectivity_ratio", "ablation_selectivity_ratio",
            "posthoc_selectivity_ratio", "posthoc_ablation_selectivity_ratio", "suppression_efficacy",
            "ablation_efficacy", "posthoc_suppression_efficacy", "posthoc_ablation_efficacy",
            "suppression_relative_efficacy", "ablation_relative_efficacy", "posthoc_suppression_relative_efficacy",
            "perplexity_ratio"]
    rows = [[k, *[s[k] for s in per_seed], median([s[k] for s in per_seed])] for k in keys]
    return markdown_table(["metric", *[f"seed {s['seed']}" for s in per_seed], "median"], rows)


def _effects_table(per_seed: Sequence[dict[str, Any]]) -> str:
    rows = []
    for s in per_seed:
        for label, removals in (("anchored", s["removals"]), ("post-hoc", s["posthoc_removals"])):
            for kind in ("suppress", "ablate"):
                sel = removals[f"{kind}_selectivity"]
                rows.append([s["seed"], label, kind, removals["base"]["concept"], removals[kind]["concept"],
                             sel["concept_rise"], removals["base"]["other"], removals[kind]["other"],
                             sel["other_rise"], sel["ratio"]])
    return markdown_table(["seed", "model", "intervention", "concept NLL", "under", "Δ concept", "other NLL",
                           "under", "Δ other", "ratio"], rows)


def _gap_table(per_seed: Sequence[dict[str, Any]]) -> str:
    rows = [[s["seed"], s["concept_nll_anchored"], s["concept_nll_control"], s["concept_nll_neversaw"],
             s["concept_nll_neversaw"] - s["concept_nll_control"], s["other_nll_control"], s["other_nll_neversaw"],
             s["perplexity_anchored"], s["perplexity_control"], s["perplexity_neversaw"]] for s in per_seed]
    return markdown_table(["seed", "concept NLL anchored", "control", "never-saw", "gap (never-saw − control)",
                           "other NLL control", "other NLL never-saw", "ppl anchored", "ppl control",
                           "ppl never-saw"], rows)


def _entanglement_table(per_seed: Sequence[dict[str, Any]]) -> str:
    rows = []
    for s in per_seed:
        for label, ent in (("anchored", s["entanglement"]), ("post-hoc", s["posthoc_entanglement"])):
            for kind in ("suppress", "ablate"):
                rows.append([s["seed"], label, kind, *ent[kind]["row"][1:], ent[kind]["related_mean"],
                             ent[kind]["unrelated_mean"]])
    first = per_seed[0]["entanglement"]
    names = [f"{g} ({'related' if first['related'][g] else 'unrelated'})" for g in first["groups"][1:]]
    return markdown_table(["seed", "model", "intervention", *names, "related mean", "unrelated mean"], rows)


def _steering_table(per_seed: Sequence[dict[str, Any]]) -> str:
    rows = []
    for s in per_seed:
        for label, curve in (("anchored", s["steering"]), ("post-hoc", s["posthoc_steering"])):
            rows.append([s["seed"], label, *curve["mean"], curve["slope_mean"], curve["wrong_way_fraction"]])
    doses = per_seed[0]["steering"]["doses"]
    return markdown_table(["seed", "direction", *[f"dose {d:g}" for d in doses], "mean slope", "wrong-way share"],
                          rows)


def write_report(run: Any, data: Any, rate: float, per_seed: Sequence[dict[str, Any]], command: str,
                 redirect_data: Any = None) -> dict[str, Any]:
    """Write the report of one label rate into `run.report_dir(rate)`; returns the flat summary.

    With `redirect_data` (a run with a destination) the summary and report also hold the redirect measures.
    """
    concept = run.concepts[0].name
    summary = summarize(run.recipe, concept, rate, per_seed)
    folder = run.report_dir(rate)
    redirect_md, figures = [], _figures(per_seed, concept)
    if redirect_data is not None:  # `redirect_report.py`
        extra, views = summarize_redirect(per_seed, redirect_data.settings.redirect_resamples)
        summary.update(extra)
        redirect_md = redirect_section(summary, views, per_seed, redirect_data, run.destination_place)
        figures["redirect"] = redirect_figure(views["continuation"])
    baseline = "the control model" if run.recipe == "scratch" else "the pre-fine-tune SmolLM2"
    md = [f"# GoEmotions: `{concept}` anchored, recipe {run.recipe}, label rate {rate:g}", "",
          "Command (every number below comes from this run):", "", f"```\n{command}\n```", "",
          f"Seeds: {len(per_seed)}; metrics are medians over seeds. Held-out test comments: "
          f"{len(data.concept_test)} with `{concept}`, {len(data.other_test)} without, {len(data.heldout)} random "
          f"(perplexity). Post-hoc baseline: difference-of-means directions on {baseline}, fitted on "
          f"{len(data.posthoc_fit)} training comments. Steering classifier: bag-of-words logistic regression "
          f"on the training split, test AUROC {data.classifier_auroc:.3f}.", "",
          "## Targets", "", markdown_table(["target", "measured", "met"], _checks(summary, run.recipe,
                                                                                                per_seed)), "",
          "## Summary (summary.json)", "", markdown_table(["key", "value"], list(summary.items())), "",
          *redirect_md,
          "## Per seed", "", _seed_table(per_seed), "",
          "AUROC: held-out detection by an example's mean alignment with the anchor (anchored, max over the "
          "anchored layers) or with the post-hoc direction (max over all layers); auroc_anchored_max_pool (not a "
          "summary key): the same by an example's largest alignment, the detector the pooled pull trains. "
          "Selectivity ratio: rise of "
          f"concept-comment NLL ÷ rise of other-comment NLL (floored at {1e-3:g} nats). Efficacy: concept NLL rise "
          "under the intervention ÷ (never-saw-it − control concept NLL), undefined (–) when that gap is not "
          "positive. Relative efficacy (not a summary key): the same with the rise and the gap each minus their "
          "value on other comments (difference in differences), which removes run-to-run shifts that are not "
          "about the concept.", "",
          "## Detection per layer", "", markdown_table(
              ["seed", *[f"anchored L{x}" for x in per_seed[0]["layers"]],
               *[f"control axis L{x}" for x in per_seed[0]["layers"]],
               *[f"post-hoc L{i}" for i in range(len(per_seed[0]["auroc_posthoc_layers"]))]],
              [[s["seed"], *s["auroc_anchored_layers"], *s["auroc_control_axis_layers"], *s["auroc_posthoc_layers"]]
               for s in per_seed]), "", "![detection](detection.png)", "",
          "## Suppression and ablation: per-token NLL (nats)", "", _effects_table(per_seed), "",
          "## Efficacy denominators", "", _gap_table(per_seed), "",
          "## Entanglement ΔL_B / ΔL_A (related = shares an Ekman or sentiment group)", "",
          _entanglement_table(per_seed), "", "![entanglement](entanglement.png)", "",
          "## Steering dose-response (classifier score of greedy continuations)", "", _steering_table(per_seed), "",
          "![steering](steering.png)", ""]
    results = {"command": command, "recipe": run.settings.mapping, "summary": summary, "per_seed": list(per_seed),
               "classifier_test_auroc": data.classifier_auroc}
    write_files(folder, results, "\n".join(md), figures)
    write_json(os.path.join(folder, "summary.json"), summary)
    return summary


def plot_sweep(summaries: Sequence[dict[str, Any]]) -> Figure:
    """Detection AUROC and suppression selectivity against the label rate (log x)."""
    fig = Figure(figsize=(9.0, 3.6))
    rates = [s["label_rate"] for s in summaries]
    for i, (keys, ylabel) in enumerate(((("auroc_anchored", "auroc_posthoc"), "held-out AUROC"),
                                        (("suppression_selectivity_ratio", "posthoc_selectivity_ratio"),
                                         "selectivity ratio"),
                                        (("suppression_efficacy", "ablation_efficacy"), "efficacy"))):
        ax = fig.add_subplot(1, 3, i + 1)
        for j, key in enumerate(keys):
            ax.plot(rates, [s[key] for s in summaries], "o-", color=f"C{j}", label=key)
        ax.set_xscale("log")
        ax.set_xlabel("label rate")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def write_sweep(run: Any, summaries: Sequence[dict[str, Any]], command: str) -> None:
    """`OUT/report.md` + `label_rate_sweep.png` + `sweep.json` across the label rates."""
    rows = [[s[k] for k in SUMMARY_KEYS[2:]] for s in summaries]
    md = [f"# GoEmotions label-rate sweep: `{run.concepts[0].name}`, recipe {run.recipe}", "",
          "Command:", "", f"```\n{command}\n```", "", markdown_table(list(SUMMARY_KEYS[2:]), rows), "",
          "Per-rate reports: " + ", ".join(f"[{s['label_rate']:g}](rate_{s['label_rate']:g}/report.md)"
                                           for s in summaries), "", "![sweep](label_rate_sweep.png)", ""]
    write_files(run.out, {"command": command, "summaries": list(summaries)}, "\n".join(md),
                {"label_rate_sweep": plot_sweep(summaries)})
    write_json(os.path.join(run.out, "sweep.json"), list(summaries))
