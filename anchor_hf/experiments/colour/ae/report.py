"""`report.md` for a `repro-paper` run: measured medians beside the paper's numbers and the targets.

The paper's numbers (docs/method.md §7) and the targets are the only numbers typed
here; every measured number comes from the results of the run being reported.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from ..maths import NAMED_COLOURS

# summary key, what it is, the paper's number, comparison, target
TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    ("anchored_suppression_red_mse", "anchored, suppression: red MSE", "0.284", ">=", 0.25),
    ("anchored_suppression_lime_mse", "anchored, suppression: lime MSE", "0.000", "<=", 0.01),
    ("anchored_suppression_purple_mse", "anchored, suppression: purple MSE", "0.000", "<=", 0.01),
    ("anchored_suppression_r2", "anchored, suppression: R² vs sim²", "0.95 ± 0.02", ">=", 0.93),
    ("isolated_ablation_red_mse", "isolated, ablation: red MSE", "0.343", ">=", 0.30),
    ("isolated_ablation_cyan_mse", "isolated, ablation: cyan MSE", "0.000", "<=", 0.02),
    ("isolated_ablation_r2", "isolated, ablation: R² vs sim³", "0.86 ± 0.15", ">=", 0.86),
    ("baseline_max_named_mse", "baseline: worst named-colour MSE", "≤ 0.001", "<=", 0.002),
    ("geometry_success_rate", "runs that induce the geometry", "60/60", ">=", 0.9),
)
TIME_LIMIT_S = 600.0


def verdict(value: float, op: str, target: float) -> str:
    """'pass', or 'miss by X' (how far the value is on the wrong side of the target)."""
    if math.isnan(value):
        return "miss (no value)"
    ok = value >= target if op == ">=" else value <= target
    return "pass" if ok else f"miss by {abs(value - target):.3g}"


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"


def _spread(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    return f"{_fmt(min(finite))}–{_fmt(max(finite))}" if finite else "–"


def render_report(results: dict[str, Any]) -> str:
    """The markdown report of one `run_paper` result."""
    summary, runs, env = results["summary"], results["runs"], results["environment"]
    seeds = results["seeds"]
    per = {(r["variant"], r["seed"]): r for r in runs}

    def series(key: str) -> list[float]:
        variant, cond, what = {
            "anchored_suppression_red_mse": ("anchored", "suppress", "red"),
            "anchored_suppression_lime_mse": ("anchored", "suppress", "lime"),
            "anchored_suppression_purple_mse": ("anchored", "suppress", "purple"),
            "anchored_suppression_r2": ("anchored", "suppress", None),
            "isolated_ablation_red_mse": ("isolated", "ablate", "red"),
            "isolated_ablation_cyan_mse": ("isolated", "ablate", "cyan"),
            "isolated_ablation_r2": ("isolated", "ablate", None),
        }[key]
        cell = [per[variant, s]["conditions"][cond] for s in seeds]
        return [c["r2"] if what is None else c["named_mse"][what] for c in cell]

    lines = ["# Colour autoencoder: the paper's results through anchor_hf", "",
             "Produced by (from the repository root):", "", "```", results["command"], "```", "",
             f"{len(seeds)} seeds per variant (seeds {seeds[0]}–{seeds[-1]}), medians over seeds. "
             f"Wall time of the whole command: **{env['total_seconds']:.0f} s** "
             f"(training {env['train_seconds']:.0f} s) on {env['cpu_count']} CPU cores with "
             f"{env['torch_threads']} torch thread(s); load average before/after: "
             f"{env['load_average_before'][0]:.1f} / {env['load_average_after'][0]:.1f} "
             "(other work on the machine slows it).", ""]
    if results.get("max_steps_override"):
        lines += [f"**Smoke run: every recipe cut to {results['max_steps_override']} steps; the numbers below "
                  "say nothing about the method.**", ""]
    lines += ["## Against the paper", "", "| | paper | target | measured (median) | range over seeds | verdict |",
              "|---|---|---|---|---|---|"]
    for key, label, paper, op, target in TARGETS:
        value = float(summary[key])
        spread = _spread(series(key)) if key.startswith(("anchored", "isolated")) else "–"
        lines.append(f"| {label} | {paper} | {op} {target:g} | {_fmt(value)} | {spread} | "
                     f"{verdict(value, op, target)} |")
    total = env["total_seconds"]
    lines.append(f"| all seeds of both variants, wall time | – | < {TIME_LIMIT_S:.0f} s | {total:.0f} s | – | "
                 f"{verdict(total, '<=', TIME_LIMIT_S)} |")
    attraction_only = [per["anchored", s]["conditions"]["ablate"]["named_mse"]["cyan"] for s in seeds
                       if "ablate" in per["anchored", s]["conditions"]]
    if attraction_only:  # docs/method.md §5: without repulsion, other colours leak onto the axis and die with it
        lines.append(f"| anchored (attraction only), ablation: cyan MSE | 0.341 | reported | "
                     f"{_fmt(statistics.median(attraction_only))} | {_spread(attraction_only)} | – |")
    drawn = [r["labels_drawn"][results["recipes"][r["variant"]]["concept"]] for r in runs]
    lines += [f"| red labels drawn per run | 83 ± 8 (0.09%) | reported | {statistics.median(drawn):.0f} "
              f"({100 * summary['labels_fraction']:.3f}%) | {min(drawn)}–{max(drawn)} | – |", ""]

    lines += ["## Per run", "",
              "| variant | seed | red labels | geometry | red cos | ring / leak | baseline worst named | "
              "intervention | red | lime | purple | cyan | R² |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        g, cond = r["geometry"], results["recipes"][r["variant"]]["intervention"]
        c = r["conditions"][cond]
        extra = "; ".join(f"{k.replace('_ring_alignment', ' ring')} {v:.3f}" for k, v in g.items()
                          if k.endswith("ring_alignment") or k == "leak")
        concept = results["recipes"][r["variant"]]["concept"]
        lines.append(f"| {r['variant']} | {r['seed']} | {r['labels_drawn'][concept]} | "
                     f"{'ok' if g['success'] else 'missed'} | {g['red_cos']:.3f} | {extra} | "
                     f"{r['conditions']['baseline']['max_named_mse']:.5f} | {cond} | "
                     + " | ".join(f"{c['named_mse'][n]:.4f}" for n in ("red", "lime", "purple", "cyan"))
                     + f" | {c['r2']:.3f} |")
    lines.append("")

    lines += ["## Named colours (median MSE over seeds)", "",
              "| colour | " + " | ".join(f"{v} {c}" for v in results["recipes"]
                                         for c in ("baseline", "suppress", "ablate")) + " |",
              "|---|" + "---|" * (3 * len(results["recipes"]))]
    for colour in NAMED_COLOURS:
        cells = []
        for v in results["recipes"]:
            for cond in ("baseline", "suppress", "ablate"):
                vals = [per[v, s]["conditions"][cond]["named_mse"][colour] for s in seeds
                        if cond in per[v, s]["conditions"]]
                cells.append(f"{statistics.median(vals):.4f}" if vals else "–")
        lines.append(f"| {colour} | " + " | ".join(cells) + " |")
    lines.append("")

    lines += ["## Figures (first seed, not a chosen one)", ""]
    for variant, path in results["figures"].items():
        lines += [f"![{variant}]({path})", ""]

    criteria = sorted({r["geometry"]["criterion"] for r in runs})
    lines += ["## Definitions", "",
              "- Per-colour error: MSE over the three channels; grid = the 8³ RGB grid (`linspace(0, 1, 8)` "
              "per channel); named colours = the 12 hues at 30° steps (s = v = 1) plus black, gray, white.",
              "- Suppression: `anchor_hf.interventions.suppress` (full projection of the red direction where "
              "its alignment is > 0) on the normalized bottleneck; ablation: `ablate_axes` on the encoder's "
              "last layer (rows + bias) and the decoder's first layer (columns) of the red axis.",
              "- R²: squared Pearson correlation between grid error and similarity to red raised to 2 "
              "(suppression) or 3 (ablation); similarity as in docs/method.md §6 (hue term blended by the mean "
              "vibrancy of the pair, times (1−|Δs|)(1−|Δv|)).",
              "- Geometry (decided before scoring): " + "; ".join(f"`{c}`" for c in criteria) + ". red_cos = "
              "cosine of pure red's latent with the red anchor; ring = mean alignment of the 12 pure hues with "
              "the vibrant plane; leak = mean |cos| with the red axis of grid colours whose similarity to red is 0.",
              "- Labels: per-visit Bernoulli draws of p_red = 0.08·[r(1 − g/2 − b/2)]^8 over the colours a run "
              "sees; labels_fraction = red labels / colours seen.",
              "- Loss weights in the recipes are in anchor_hf's units (separation = mean over pairs; the "
              "paper summed over the batch), see the recipe headers.", ""]
    return "\n".join(lines)
