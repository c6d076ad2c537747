"""The redirect part of a colour-LM report: its summary keys, targets, comparison table, cost and figures.

Names and formulas of the summary keys (docs/method.md §10), over the target group
(similarity ≥ 0.5) of the memorized items, each item with own colour `c_i`, answer `a_i`,
destination colour `d`, squared distances in RGB:
- `redirect_remaining`: `mean_i |a_i − d|² / mean_i |c_i − d|²` under redirect (1 = unmoved);
- `redirect_target_error`: the target group's mean error `|a_i − c_i|²/3` under redirect;
- `redirect_dissimilar_rise`: the error rise of dissimilar items (similarity < 0.1);
- `redirect_random_remaining`: `redirect_remaining` for a random direction of equal norm;
- `heldout_error_ratio`: median over seeds of each seed's anchored ÷ control held-out error;
- `target_base_error_anchored`: the target group's error in the anchored model, unedited;
- `leace_target_error`: the target group's error under LEACE at every anchored slice of the control.
All are medians over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from anchor_hf.probes.stats import median
from .figures import plot_swatches, plot_toward_destination

REDIRECT_KEYS = ("destination", "redirect_remaining", "redirect_target_error", "redirect_dissimilar_rise",
                 "redirect_random_remaining", "heldout_error_ratio", "target_base_error_anchored",
                 "leace_target_error")
# (row label, model, intervention) of the comparison table, in order
COMPARISON = (("suppress (projection out of v̂)", "anchored", "suppress"),
              ("repel (rotate to alignment 0)", "anchored", "repel"),
              ("ablate (every residual write)", "anchored", "ablate"),
              ("redirect → untrained opposite pole", "nodest", "redirect"),
              ("redirect → trained destination", "anchored", "redirect"),
              ("redirect along a random direction (control)", "anchored", "redirect_random"),
              ("redirect along a random direction (control)", "nodest", "redirect_random"),
              ("suppress", "nodest", "suppress"),
              ("LEACE, every anchored slice", "control", "leace"),
              ("LEACE, every anchored slice", "anchored", "leace"),
              ("post-hoc mean-difference suppress", "control", "suppress"))
MODEL_LABEL = {"anchored": "anchored with destination", "nodest": "anchored, no destination",
               "control": "control (un-anchored)"}


def _median(values: Sequence[float | None]) -> float:
    """Median over seeds, leaving out a seed without a value (the per-seed tables show every seed)."""
    return median(values, nan="omit")


def _effect(results: Sequence[dict[str, Any]], kind: str, name: str, key: str) -> float:
    return _median([r[kind]["effects"][name][key] for r in results
                    if kind in r and name in r[kind]["effects"]])


def heldout_ratios(results: Sequence[dict[str, Any]], kind: str = "anchored") -> list[float]:
    """Per seed: `kind`'s held-out error ÷ the control's (paired by seed)."""
    return [r[kind]["heldout_error"] / r["control"]["heldout_error"] if r["control"]["heldout_error"] > 0
            else math.nan for r in results if kind in r]  # a perfect control: no ratio


def summarize_redirect(results: Sequence[dict[str, Any]], destination: str) -> dict[str, Any]:
    """The redirect summary keys (`REDIRECT_KEYS`), medians over seeds."""
    return {"destination": destination,
            "redirect_remaining": _effect(results, "anchored", "redirect", "remaining"),
            "redirect_target_error": _effect(results, "anchored", "redirect", "target_error"),
            "redirect_dissimilar_rise": _effect(results, "anchored", "redirect", "dissimilar_rise"),
            "redirect_random_remaining": _effect(results, "anchored", "redirect_random", "remaining"),
            "heldout_error_ratio": _median(heldout_ratios(results)),
            "target_base_error_anchored": _effect(results, "anchored", "suppress", "target_base"),
            "leace_target_error": _effect(results, "control", "leace", "target_error")}


def destination_ceiling(results: Sequence[dict[str, Any]]) -> float:
    """The target group's error if every answer were the destination (median over seeds): the most a
    redirect that lands there can reach, so `redirect_target_error` cannot exceed it by much."""
    return _median([r.get("destination_target_error") for r in results])


def redirect_targets(summary: dict[str, Any], auroc: float, exact_match: tuple[float, float] | None,
                     ceiling: float | None = None) -> list[list[Any]]:
    """The redirect must-reach targets: (target, measured, met); `ceiling` (`destination_ceiling`) is
    shown beside the target error."""
    s = summary
    at = "" if ceiling is None or math.isnan(ceiling) else f" (every answer at the destination: {ceiling:.4f})"
    rows = [["redirect_remaining ≤ 0.4 with redirect_random_remaining ≥ 0.9",
             f"{s['redirect_remaining']:.3f}, random {s['redirect_random_remaining']:.3f}",
             s["redirect_remaining"] <= 0.4 and s["redirect_random_remaining"] >= 0.9],
            ["redirect_dissimilar_rise ≤ 0.01", f"{s['redirect_dissimilar_rise']:.4f}",
             s["redirect_dissimilar_rise"] <= 0.01],
            ["heldout_error_ratio ≤ 1.05", f"{s['heldout_error_ratio']:.3f}", s["heldout_error_ratio"] <= 1.05],
            ["target_base_error_anchored ≤ 0.01", f"{s['target_base_error_anchored']:.4f}",
             s["target_base_error_anchored"] <= 0.01],
            ["AUROC ≥ 0.95", f"{auroc:.3f}", auroc >= 0.95],
            ["redirect_target_error ≥ 2 × leace_target_error",
             f"{s['redirect_target_error']:.4f} vs 2 × {s['leace_target_error']:.4f}{at}",
             s["redirect_target_error"] >= 2 * s["leace_target_error"]]]
    if exact_match is not None:
        rows.append(["held-out exact match within 0.01 of the control",
                     f"{exact_match[0]:.4f} vs {exact_match[1]:.4f}", exact_match[0] >= exact_match[1] - 0.01])
    return [[t, m, "yes" if ok else "no"] for t, m, ok in rows]


def comparison_rows(results: Sequence[dict[str, Any]], trained: bool) -> list[list[Any]]:
    """One row per (intervention, model) present: medians of the target and collateral numbers.

    `trained`: the anchored model has a trained destination (else it was anchored without one
    and its redirect goes to the untrained opposite pole).
    """
    rows = []
    for label, kind, name in COMPARISON:
        if not any(kind in r and name in r[kind]["effects"] for r in results):
            continue
        model = MODEL_LABEL[kind] if trained or kind != "anchored" else MODEL_LABEL["nodest"]
        if not trained and (kind, name) == ("anchored", "redirect"):
            label = "redirect → untrained opposite pole"
        rows.append([label, model, *(_effect(results, kind, name, k) for k in
                                                  ("target_base", "target_error", "remaining", "dissimilar_rise",
                                                   "ratio", "mean_error"))])
    return rows


def aware_rows(results: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Remaining over the target names the intervention-aware steps trained on vs those withheld from them."""
    rows = []
    for name, label in (("redirect", "redirect → destination"), ("redirect_random", "random-direction redirect")):
        values = [r["anchored"]["effects"].get(name, {}) for r in results]
        if all("remaining_withheld" in v for v in values):
            rows.append([label, _median([v["remaining_trained"] for v in values]),
                         _median([v["remaining_withheld"] for v in values])])
    return rows


def cost_rows(results: Sequence[dict[str, Any]], seeds: Sequence[int]) -> list[list[Any]]:
    """Per seed, then median / min / max: held-out errors and the paired ratios to the control."""
    has_nodest = all("nodest" in r for r in results)
    rows = []
    for s, r in zip(seeds, results):
        a, c = r["anchored"], r["control"]
        n = r.get("nodest")
        rows.append([s, a["heldout_error"], n["heldout_error"] if n else None, c["heldout_error"],
                     a["heldout_error"] / c["heldout_error"], n["heldout_error"] / c["heldout_error"] if n else None,
                     a.get("heldout_exact_match"), c.get("heldout_exact_match")])
    ratios = heldout_ratios(results)
    nodest = heldout_ratios(results, "nodest") if has_nodest else []
    for label, pick in (("median", statistics.median), ("min", min), ("max", max)):
        rows.append([label, None, None, None, pick(ratios), pick(nodest) if nodest else None, None, None])
    return rows


def redirect_figures(result: dict[str, Any]) -> dict[str, Any]:
    """Swatches of the target names under redirect, and their answers between own colour and destination."""
    raw = result["raw"]
    task = raw["task"]
    items = task.train
    a, n = raw["anchored"]["effects"], raw.get("nodest", {}).get("effects")
    if "redirect" not in a:
        return {}
    destination = torch.tensor(result["destination_rgb"])
    order = torch.argsort(items.sim, descending=True)
    pick = torch.cat([order[:28], order[-6:]])
    label = (lambda it: f"{it[0]}+{it[1]}") if task.is_mixing else (lambda it: it.name)
    rows = {"true": items.rgb[pick], "anchored": a["base"]["rgb"][pick], "suppressed": a["suppress"]["rgb"][pick],
            "redirected": a["redirect"]["rgb"][pick], "random-direction redirect": a["redirect_random"]["rgb"][pick]}
    if n is not None:
        rows["no destination: reflected"] = n["redirect"]["rgb"][pick]
    swatches = plot_swatches([label(items.items[i]) for i in pick], rows)
    target = items.target
    trained = n is not None  # a run with a trained destination also trains the model without one
    panels = {"suppress": a["suppress"]["rgb"][target],
              "redirect → trained destination" if trained else "redirect → untrained opposite pole":
                  a["redirect"]["rgb"][target],
              "random-direction redirect": a["redirect_random"]["rgb"][target]}
    if n is not None:
        panels["no destination: redirect → untrained opposite pole"] = n["redirect"]["rgb"][target]
    toward = plot_toward_destination(panels, items.rgb[target], destination, items.sim[target])
    return {"redirect_swatches": swatches, "toward_destination": toward}
