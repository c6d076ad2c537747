"""Aggregate colour-LM evaluations over seeds: `summary.json` (medians), `report.md`, figures.

`summary.json` is flat and has exactly the keys `SUMMARY_KEYS` (the redirect keys and their
formulas are in `redirect_report.py`); the report adds every per-seed number, the per-layer
geometry, all interventions, the redirect comparison and cost, and the targets with whether
each was met, beside the exact command that produced them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch

from anchor_hf.probes.report import json_safe, markdown_table, write_json, write_report
from anchor_hf.probes.stats import median as seed_median
from .figures import plot_error_vs_similarity, plot_projection, plot_swatches
from .redirect_report import REDIRECT_KEYS, aware_rows, comparison_rows, cost_rows, destination_ceiling, \
    redirect_figures, redirect_targets, summarize_redirect

SUMMARY_KEYS = ("seeds", "concept", "corpus", "label_fraction", "heldout_error_anchored", "heldout_error_control",
                "auroc_anchored", "auroc_control", "margin", "containment", "suppression_selectivity_ratio",
                "suppression_r2", "suppression_target_error", "posthoc_selectivity_ratio", *REDIRECT_KEYS)
INTERVENTIONS = ("suppress", "repel", "ablate")


def median(values: Sequence[float | None]) -> float:
    """Median over seeds: a seed without a value is left out; the per-seed tables show every seed."""
    return seed_median(values, nan="omit")


def summarize(results: Sequence[dict[str, Any]], concept: str, corpus: str, label_fraction: float,
              destination: str) -> dict[str, Any]:
    """The flat summary: medians over seeds of the headline numbers, then the redirect keys."""
    a = [r["anchored"] for r in results]
    c = [r["control"] for r in results]
    summary = {
        "seeds": len(results), "concept": concept, "corpus": corpus, "label_fraction": label_fraction,
        "heldout_error_anchored": median([x["heldout_error"] for x in a]),
        "heldout_error_control": median([x["heldout_error"] for x in c]),
        "auroc_anchored": median([x["auroc_max"] for x in a]),
        "auroc_control": median([x["auroc_max"] for x in c]),
        "margin": median([x["margin"] for x in a]),
        "containment": median([x["containment"] for x in a]),
        "suppression_selectivity_ratio": median([x["effects"]["suppress"]["ratio"] for x in a]),
        "suppression_r2": median([x["effects"]["suppress"]["r2"] for x in a]),
        "suppression_target_error": median([x["effects"]["suppress"]["target_error"] for x in a]),
        "posthoc_selectivity_ratio": median([x["effects"]["suppress"]["ratio"] for x in c]),
        **summarize_redirect(results, destination),
    }
    return summary


def targets(summary: dict[str, Any], results: Sequence[dict[str, Any]], is_mixing: bool) -> list[list[Any]]:
    """The must-reach targets: (target, measured, met?)."""
    a = [r["anchored"] for r in results]
    c = [r["control"] for r in results]
    base = median([x["effects"]["suppress"]["target_base"] for x in a])
    rel = summary["heldout_error_anchored"] / summary["heldout_error_control"] - 1.0
    rows = [
        ["suppressed target error ≥ 0.10 from a baseline ≤ 0.01",
         f"{summary['suppression_target_error']:.4f} from {base:.4f}",
         summary["suppression_target_error"] >= 0.10 and base <= 0.01],
        ["held-out error within 5% (relative) of control", f"{rel:+.1%}", rel <= 0.05],
        ["AUROC ≥ 0.95 at the anchored layers (control ≈ 0.5)",
         f"{summary['auroc_anchored']:.3f} (control {summary['auroc_control']:.3f})",
         summary["auroc_anchored"] >= 0.95],
        ["containment ≤ 0.15 with margin ≥ 0.4", f"{summary['containment']:.3f}, margin {summary['margin']:.3f}",
         summary["containment"] <= 0.15 and summary["margin"] >= 0.4],
        ["suppression ratio ≥ 5 and R² ≥ 0.8",
         f"{summary['suppression_selectivity_ratio']:.3g}, R² {summary['suppression_r2']:.3f}",
         summary["suppression_selectivity_ratio"] >= 5 and summary["suppression_r2"] >= 0.8],
        ["anchored at least as selective as post-hoc",
         f"{summary['suppression_selectivity_ratio']:.3g} vs {summary['posthoc_selectivity_ratio']:.3g}",
         summary["suppression_selectivity_ratio"] >= summary["posthoc_selectivity_ratio"]],
    ]
    if is_mixing:
        em_a = median([x["heldout_exact_match"] for x in a])
        em_c = median([x["heldout_exact_match"] for x in c])
        rows.insert(2, ["mixing held-out exact match within 0.01 of control", f"{em_a:.4f} vs {em_c:.4f}",
                        em_a >= em_c - 0.01])
    return [[t, m, "yes" if ok else "no"] for t, m, ok in rows]


def _intervention_rows(results: Sequence[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for kind, label in (("anchored", "anchor"), ("control", "post-hoc (control)")):
        for name in INTERVENTIONS:
            e = [r[kind]["effects"][name] for r in results]
            rows.append([f"{name} · {label}", *(median([x[k] for x in e]) for k in
                                                ("target_base", "target_error", "target_rise", "dissimilar_rise",
                                                 "ratio", "r2", "mean_error"))])
    return rows


def _bin_rows(results: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Median error rise per similarity bin, for each intervention."""
    bins = list(results[0]["anchored"]["effects"]["suppress"]["rise_by_similarity"])
    rows = []
    for kind, label in (("anchored", "anchor"), ("control", "post-hoc (control)")):
        for name in INTERVENTIONS:
            e = [r[kind]["effects"][name]["rise_by_similarity"] for r in results]
            rows.append([f"{name} · {label}", *(median([x[b] for x in e]) for b in bins)])
    return bins, rows


def _layer_rows(results: Sequence[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for kind in ("anchored", "control"):
        for i, layer in enumerate(results[0][kind]["layers"]):
            vals = [[r[kind]["layers"][i][k] for r in results] for k in
                    ("auroc_max", "auroc_mean", "auroc_answer", "margin", "margin_line_max", "containment")]
            rows.append([kind, layer["layer"], *(median(v) for v in vals)])
    return rows


def _seed_rows(results: Sequence[dict[str, Any]], seeds: Sequence[int]) -> list[list[Any]]:
    rows = []
    for s, r in zip(seeds, results):
        a, c = r["anchored"], r["control"]
        rows.append([s, a["train_error"], c["train_error"], a["heldout_error"], c["heldout_error"],
                     a.get("heldout_exact_match"), c.get("heldout_exact_match"), a["auroc_max"], c["auroc_max"],
                     a["margin"], a["containment"], a["retention"], a["effects"]["suppress"]["target_error"],
                     a["effects"]["suppress"]["ratio"], a["effects"]["suppress"]["r2"],
                     c["effects"]["suppress"]["ratio"]])
    return rows


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The three figures from one seed's raw measurements."""
    raw = result["raw"]
    task = raw["task"]
    items = task.train
    a, c = raw["anchored"], raw["control"]
    fig_proj = plot_projection({"anchored": (a["answer_states"], a["basis"]),
                                "control (same fixed axis)": (c["answer_states"], c["basis"])}, a["state_rgb"])
    base_a, base_c = a["effects"]["base"]["error"], c["effects"]["base"]["error"]
    fig_err = plot_error_vs_similarity({
        "anchored: suppress": a["effects"]["suppress"]["error"] - base_a,
        "anchored: ablate": a["effects"]["ablate"]["error"] - base_a,
        "control: post-hoc suppress": c["effects"]["suppress"]["error"] - base_c}, items.sim, items.rgb)
    order = torch.argsort(items.sim, descending=True)
    pick = torch.cat([order[:24], order[-8:]])
    label = (lambda it: f"{it[0]}+{it[1]}") if task.is_mixing else (lambda it: it.name)
    fig_sw = plot_swatches([label(items.items[i]) for i in pick], {
        "true": items.rgb[pick], "anchored": a["effects"]["base"]["rgb"][pick],
        "anchored, suppressed": a["effects"]["suppress"]["rgb"][pick],
        "anchored, ablated": a["effects"]["ablate"]["rgb"][pick],
        "control": c["effects"]["base"]["rgb"][pick],
        "control, post-hoc suppressed": c["effects"]["suppress"]["rgb"][pick]})
    return {"projection": fig_proj, "error_vs_similarity": fig_err, "swatches": fig_sw, **redirect_figures(result)}


def _aware_part(results: Sequence[dict[str, Any]]) -> list[str]:
    """The withheld-vs-trained table of a run with intervention-aware steps (nothing otherwise)."""
    rows = aware_rows(results)
    if not rows:
        return []
    return ["### Intervention-aware steps: trained vs withheld target names", "",
            "The anchored model continued training with redirected target lines answering the destination, drawn "
            "∝ their label probability from all but a fixed share of the target names; the control continued as "
            "many steps without them. Remaining over each part of the target group:", "",
            markdown_table(["intervention", "remaining (trained names)", "remaining (withheld names)"], rows), ""]


def _redirect_section(summary: dict[str, Any], results: Sequence[dict[str, Any]], seeds: Sequence[int],
                      is_mixing: bool, falloff: Sequence[float] | None) -> list[str]:
    """The report's redirect part: targets, the comparison on the same models and seeds, cost, figures."""
    trained = summary["destination"] != "opposite"
    exact = None
    if is_mixing:
        exact = (median([r["anchored"]["heldout_exact_match"] for r in results]),
                 median([r["control"]["heldout_exact_match"] for r in results]))
    where = f"the trained destination `{summary['destination']}`" if trained else \
        "the untrained opposite pole (remaining measured toward `#808080`)"
    return ["## Redirect", "",
            f"`redirect(model, cfg, \"{summary['concept']}\")` moves the concept's component of every state at every "
            f"anchored slice to {where}"
            + (f", graded: states with alignment below {falloff[0]:g} to the concept are not moved (falloff "
               f"{tuple(falloff)}); " if falloff else "; ")
            + "remaining = mean |answer − d|² / mean |own colour − d|² over the target "
            "group (1: unmoved, 0: every answer at the destination). The random-direction control applies the same "
            "redirect along random unit directions orthogonal to the concept (and its destination).", "",
            "### Redirect targets", "",
            markdown_table(["target", "measured", "met"], redirect_targets(summary, summary["auroc_anchored"], exact,
                                                                     destination_ceiling(results))),
            "", "### Every intervention on the same models and seeds", "",
            markdown_table(["intervention", "model", "target base", "target error", "remaining", "dissimilar rise",
                            "ratio", "mean error"], comparison_rows(results, trained)), "",
            *_aware_part(results),
            "### Cost: held-out error, paired by seed", "",
            markdown_table(["seed", "held-out A", "held-out no-dest", "held-out C", "A ÷ C", "no-dest ÷ C",
                            "held-out EM A", "held-out EM C"], cost_rows(results, seeds)), "",
            "![redirect swatches](redirect_swatches.png)", "", "![toward the destination](toward_destination.png)",
            ""]


def write(out_dir: str, results: Sequence[dict[str, Any]], seeds: Sequence[int], summary: dict[str, Any],
          command: str, setup: dict[str, Any], is_mixing: bool) -> dict[str, str]:
    """Write summary.json, report.md, report.json and the figures of the first seed into `out_dir`."""
    md = [f"# Colour LM: concept `{summary['concept']}` on `{summary['corpus']}`", "",
          "Produced by:", "", "```bash", command, "```", "",
          f"Seeds {list(seeds)}; medians over seeds unless a table says otherwise. Errors are RGB MSE with "
          "channels in [0, 1] (a mid-grey guess scores 0.25 for pure red). Target group: similarity ≥ 0.5 "
          "(docs/method.md §6); dissimilar: similarity < 0.1. Interventions act on the memorized (training) items.", "",
          "## Targets", "", markdown_table(["target", "measured", "met"], targets(summary, results, is_mixing)), "",
          "## Summary (`summary.json`)", "", markdown_table(["key", "value"], [[k, v] for k, v in summary.items()]), "",
          "## Interventions", "",
          "target_base / target_error: mean error of the target group before / under the intervention; "
          "rises are error increases; ratio = target rise / max(|dissimilar rise|, 1e-4); R² of the rise "
          "against similarity² (suppress, repel) or similarity³ (ablate).", "",
          markdown_table(["intervention", "target base", "target error", "target rise", "dissimilar rise", "ratio",
                          "R²", "mean error"], _intervention_rows(results)), "",
          "### Error rise by similarity to the target (grading)", "",
          markdown_table(["intervention", *(f"sim {b}" for b in _bin_rows(results)[0])], _bin_rows(results)[1]), "",
          *_redirect_section(summary, results, seeds, is_mixing, setup.get("redirect_falloff")),
          "## Geometry per layer", "",
          "AUROC of cos(h, v̂) for target lines: max / mean over the line's positions, and at the answer "
          "position; margin and containment over all positions; margin (line max) of each line's max cos.", "",
          markdown_table(["model", "layer", "AUROC max", "AUROC mean", "AUROC answer", "margin", "margin (line max)",
                          "containment"],
                         _layer_rows(results)), "",
          "## Per seed", "",
          markdown_table(["seed", "train err A", "train err C", "held-out err A", "held-out err C", "held-out EM A",
                          "held-out EM C", "AUROC A", "AUROC C", "margin", "containment", "retention (log)",
                          "suppressed target err", "ratio", "R²", "post-hoc ratio"], _seed_rows(results, seeds)), "",
          "## Setup", "", "```json", json.dumps(json_safe(setup), indent=2), "```", "",
          f"## Figures (seed {seeds[0]})", "",
          "![projection](projection.png)", "", "![error vs similarity](error_vs_similarity.png)", "",
          "![swatches](swatches.png)", ""]
    report = {"summary": summary, "setup": setup, "command": command, "seeds": list(seeds),
              "per_seed": [{k: v for k, v in r.items() if k != "raw"} for r in results]}
    paths = write_report(out_dir, report, "\n".join(md), figures(results[0]))
    paths["summary"] = write_json(os.path.join(out_dir, "summary.json"), summary)
    return paths
