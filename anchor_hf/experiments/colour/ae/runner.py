"""Run every seed of both colour recipes, score them, and write results, summary, report and figures.

`run_paper` is what `anchor-hf repro-paper` calls. Each seed of each variant trains through
the one training driver (`anchor_hf.commands.train.run`, the recipe plus `--seed` and an
output folder), one after another in this process (the models are tiny; a second process
would only add start-up time). Files are written atomically, so an interrupted run never
leaves a half-written result.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from anchor_hf.errors import AnchorConfigError
from anchor_hf.io import write_text
from anchor_hf.probes.stats import median
from .evaluate import measure_conditions, measure_geometry
from .figures import plot_three_panel
from .files import to_json
from .model import ColourAutoencoder
from .recipe import Variant, load_variant
from .report import render_report

VARIANTS = {"anchored": "suppress", "isolated": "ablate"}  # variant -> the intervention the paper reports on it
SUMMARY_KEYS = ("seeds", "labels_fraction", "geometry_success_rate", "baseline_max_named_mse",
                "anchored_suppression_red_mse", "anchored_suppression_lime_mse", "anchored_suppression_purple_mse",
                "anchored_suppression_r2", "isolated_ablation_red_mse", "isolated_ablation_cyan_mse",
                "isolated_ablation_r2")


@dataclass
class TrainedRun:
    """A trained model with the config it was bound to, and what its training saw."""

    model: ColourAutoencoder
    anchor_config: Any
    labels_drawn: dict[str, int]
    examples_seen: int
    seconds: float


def train_variant(variant: Variant, seed: int, max_steps: int | None = None) -> TrainedRun:
    """Train one seed of a variant with `anchor-hf train` (its recipe, this seed, a temporary output folder).

    Weights, colour draws and label draws all follow `seed`; `max_steps` overrides the
    recipe's (smoke runs).
    """
    from anchor_hf.commands.train import run

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="colour-ae-") as workdir:
        argv = ["--config", variant.path, "--output_dir", workdir, "--seed", str(seed)]
        if max_steps is not None:
            argv += ["--max_steps", str(max_steps)]
        trainer = run(argv, quiet=True)
    collator = trainer.data_collator
    return TrainedRun(model=trainer.model.eval(), anchor_config=trainer.anchor_config,
                      labels_drawn=dict(collator.labels_drawn), examples_seen=collator.examples_seen,
                      seconds=time.perf_counter() - start)


def summarize(runs: Sequence[dict[str, Any]], seeds: Sequence[int]) -> dict[str, float | int]:
    """The flat summary: medians over seeds (geometry: the fraction of all runs that succeeded).

    `labels_fraction` is the median over all runs of (labels of the intervention's concept
    drawn) / (colours seen); `baseline_max_named_mse` is, per seed, the worst named colour
    over both variants without intervention, then the median over seeds.
    """
    by = {(r["variant"], r["seed"]): r for r in runs}

    def named(variant: str, cond: str, colour: str) -> float:
        return median([by[variant, s]["conditions"][cond]["named_mse"][colour] for s in seeds], nan="propagate")

    def r2(variant: str, cond: str) -> float:
        return median([by[variant, s]["conditions"][cond]["r2"] for s in seeds], nan="propagate")

    baseline = [max(by[v, s]["conditions"]["baseline"]["max_named_mse"] for v in VARIANTS) for s in seeds]
    return {
        "seeds": len(seeds),
        "labels_fraction": median([r["labels_fraction"] for r in runs], nan="propagate"),
        "geometry_success_rate": sum(bool(r["geometry"]["success"]) for r in runs) / len(runs),
        "baseline_max_named_mse": median(baseline, nan="propagate"),
        "anchored_suppression_red_mse": named("anchored", "suppress", "red"),
        "anchored_suppression_lime_mse": named("anchored", "suppress", "lime"),
        "anchored_suppression_purple_mse": named("anchored", "suppress", "purple"),
        "anchored_suppression_r2": r2("anchored", "suppress"),
        "isolated_ablation_red_mse": named("isolated", "ablate", "red"),
        "isolated_ablation_cyan_mse": named("isolated", "ablate", "cyan"),
        "isolated_ablation_r2": r2("isolated", "ablate"),
    }


def run_paper(seeds: int, out_dir: str, recipe_paths: dict[str, str], *, first_seed: int = 0,
              max_steps: int | None = None, command: str = "",
              progress: Callable[[str], None] | None = print) -> dict[str, float | int]:
    """Train and score `seeds` seeds of each variant; write DIR/results.json, summary.json, report.md, figures.

    Args:
        seeds: number of seeds per variant (seeds `first_seed`, `first_seed + 1`, ...).
        out_dir: the output folder (created).
        recipe_paths: variant name ("anchored", "isolated") -> recipe YAML.
        first_seed: the first seed.
        max_steps: override every recipe's `max_steps` (smoke runs); recorded in the results.
        command: the command line, written into the report.
        progress: called with one line per finished run (None: silent).

    Returns:
        The summary (also written to DIR/summary.json).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise AnchorConfigError(f"`seeds` must be a positive int, got {seeds!r}")
    if sorted(recipe_paths) != sorted(VARIANTS):
        raise AnchorConfigError(f"recipes must be given for exactly {sorted(VARIANTS)}, got {sorted(recipe_paths)}")
    recipes: dict[str, Variant] = {v: load_variant(p) for v, p in recipe_paths.items()}
    for variant, recipe in recipes.items():
        if recipe.intervention != VARIANTS[variant]:
            raise AnchorConfigError(f"the {variant} recipe ({recipe_paths[variant]}) must set intervention: "
                                    f"{VARIANTS[variant]!r}, got {recipe.intervention!r}")
    seed_list = list(range(first_seed, first_seed + seeds))
    load_before = os.getloadavg()
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    figures: dict[str, str] = {}
    for seed in seed_list:
        for variant, recipe in recipes.items():
            trained = train_variant(recipe, seed, max_steps=max_steps)
            concept = recipe.concept
            conditions = measure_conditions(trained.model, trained.anchor_config, concept)
            geometry = measure_geometry(trained.model, trained.anchor_config, concept)
            drawn = trained.labels_drawn[concept]
            runs.append({"variant": variant, "seed": seed, "train_seconds": trained.seconds,
                         "labels_drawn": trained.labels_drawn, "examples_seen": trained.examples_seen,
                         "labels_fraction": drawn / max(trained.examples_seen, 1), "geometry": geometry,
                         "conditions": conditions})
            if seed == seed_list[0]:  # the first seed, not a chosen one
                name = f"{variant}_{recipe.intervention}.png"
                plot_three_panel(trained.model, trained.anchor_config, concept, recipe.intervention,
                                 os.path.join(out_dir, "figures", name),
                                 f"{variant} (E={trained.model.config.hidden_size}), seed {seed}: "
                                 f"{recipe.intervention}")
                figures[variant] = f"figures/{name}"
            if progress is not None:
                main = conditions[recipe.intervention]
                progress(f"{variant:9s} seed {seed}: {recipe.intervention} red {main['named_mse']['red']:.3f} "
                         f"R² {main['r2']:.3f} | geometry {'ok' if geometry['success'] else 'MISSED'} | "
                         f"{drawn} labels | {trained.seconds:.1f}s")
    seconds = time.perf_counter() - start
    summary = summarize(runs, seed_list)
    environment = {"total_seconds": seconds, "train_seconds": sum(r["train_seconds"] for r in runs),
                   "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
                   "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                   "torch": torch.__version__, "python": platform.python_version()}
    results = {"command": command, "seeds": seed_list, "max_steps_override": max_steps,
               "recipes": {v: {"path": recipe_paths[v], "intervention": r.intervention, "concept": r.concept,
                               "max_steps": max_steps or r.max_steps, "batch_size": r.batch_size}
                           for v, r in recipes.items()},
               "environment": environment, "figures": figures, "summary": summary, "runs": runs}
    write_text(os.path.join(out_dir, "results.json"), to_json(results))
    write_text(os.path.join(out_dir, "summary.json"), to_json(summary))
    write_text(os.path.join(out_dir, "report.md"), render_report(results))
    return summary
