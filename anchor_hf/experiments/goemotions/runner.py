"""`anchor-hf goemotions`: train anchored / control / never-saw-it models over seeds and label rates, evaluate, report.

Control and never-saw-it models do not depend on the label rate, so a sweep over rates
trains them once per seed. Finished models are reused (so an interrupted run resumes, and
evaluation can be re-run alone); the report always records the exact command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .data import Comment, EmotionConcept, load_goemotions, resolve_concepts
from anchor_hf.errors import AnchorConfigError
from .recipe import GoEmotionsRecipe, load_recipe, recipe_path


@dataclass
class GoEmotionsRun:
    """What one `anchor-hf goemotions` invocation does.

    Args:
        recipe: `scratch` (recipe A) or `smollm2` (recipe B).
        concept: one concept, or several comma-separated (each on its own axis; the first is evaluated).
        label_rates: label rates to train anchored models at (one report each, plus a sweep plot).
        seeds: training seeds 0..seeds-1.
        out: report folder; models_dir: where models go (default `out/models`).
        data_dir: GoEmotions folder (None = the Hub, online only).
        overrides: recipe keys to override; recipe_file: another recipe file.
    """

    recipe: str = "scratch"
    concept: str = "anger"
    label_rates: list[float] = field(default_factory=lambda: [0.05])
    seeds: int = 3
    out: str = "results/goemotions"
    data_dir: str | None = None
    models_dir: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    recipe_file: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise AnchorConfigError(f"`--seeds` must be an int >= 1, got {self.seeds!r}")
        if not self.label_rates:
            raise AnchorConfigError("`--label-rate` must give at least one rate in (0, 1]")
        for rate in self.label_rates:
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
                raise AnchorConfigError(f"`--label-rate` values must be in (0, 1], got {rate!r}")
        if len(set(self.label_rates)) != len(self.label_rates):
            raise AnchorConfigError(f"`--label-rate` repeats a rate: {self.label_rates}")
        self.concepts: list[EmotionConcept] = resolve_concepts(self.concept)
        self.settings: GoEmotionsRecipe = load_recipe(self.recipe_file or recipe_path(self.recipe), self.overrides)
        if self.settings.recipe != self.recipe:
            raise AnchorConfigError(f"`--recipe` = {self.recipe!r}, but the recipe file says recipe: "
                                    f"{self.settings.recipe!r}")
        if self.data_dir is not None and not os.path.isdir(self.data_dir):
            raise AnchorConfigError(f"`--data-dir` = {self.data_dir!r} is not a folder")
        self.models = self.models_dir or os.path.join(self.out, "models")

    def model_dir(self, kind: str, seed: int, rate: float | None = None) -> str:
        name = f"{kind}_seed{seed}" if rate is None else f"{kind}_rate{rate:g}_seed{seed}"
        return os.path.join(self.models, name)

    def report_dir(self, rate: float) -> str:
        return self.out if len(self.label_rates) == 1 else os.path.join(self.out, f"rate_{rate:g}")


@dataclass
class Prepared:
    """Data, tokenizer and model factory shared by every model of a run."""

    splits: dict[str, list[Comment]]
    tokenizer: Any
    make_model: Any
    base_path: str | None  # recipe B: the pretrained folder (LoRA adapters are merged into it for evaluation)


def prepare(run: GoEmotionsRun, log: Any = print) -> Prepared:
    """Read the data, build the tokenizer (trained BPE, or the pretrained model's) and the model factory."""
    from .models import load_tokenizer, pretrained_factory, pretrained_path, scratch_factory
    from .tokenizer import train_bpe

    splits = load_goemotions(run.data_dir)
    recipe = run.settings
    if recipe.recipe == "scratch":
        tokenizer = train_bpe([c.text for c in splits["train"]], recipe.vocab_size, os.path.join(run.models, "tokenizer"))
        return Prepared(splits, tokenizer, scratch_factory(recipe, tokenizer), None)
    log("[goemotions] preparing the pretrained model (the packaged GGUF is converted once)")
    path = pretrained_path(recipe, os.path.join(run.models, "base"))
    return Prepared(splits, load_tokenizer(path), pretrained_factory(recipe, path), path)


def jobs(run: GoEmotionsRun) -> list[tuple[str, int, float, str]]:
    """(kind, seed, label rate, folder) of every model the run needs, seed by seed."""
    out = []
    for seed in range(run.seeds):
        out += [("anchored", seed, r, run.model_dir("anchored", seed, r)) for r in run.label_rates]
        rate = run.label_rates[0]  # unused by the controls (anchor weights 0), but their columns need one
        out.append(("control", seed, rate, run.model_dir("control", seed)))
        out.append(("neversaw", seed, rate, run.model_dir("neversaw", seed)))
    return out


def train_all(run: GoEmotionsRun, prepared: Prepared, log: Any = print, shard: tuple[int, int] | None = None) -> None:
    """Train every model the run needs that is not finished yet (with `shard=(i, n)`, every n-th from the i-th)."""
    from .train import train_model

    todo = jobs(run)
    for kind, seed, rate, folder in todo if shard is None else todo[shard[0]::shard[1]]:
        train_model(kind, seed, rate, run.settings, run.concepts, prepared.splits["train"], prepared.tokenizer,
                    prepared.make_model, folder, log)


def evaluate_all(run: GoEmotionsRun, prepared: Prepared, command: str, log: Any = print) -> list[dict[str, Any]]:
    """Evaluate every seed at every rate; writes one report per rate (and a sweep); returns the summaries."""
    from .evaluate import EvalData, evaluate_seed
    from .report import write_report, write_sweep

    data = EvalData.build(prepared.splits, run.concepts[0], run.settings, prepared.tokenizer)
    baseline: dict[int, dict[str, Any]] = {}  # per seed: control/never-saw/post-hoc results, shared by the rates
    summaries = []
    for rate in run.label_rates:
        per_seed = []
        for seed in range(run.seeds):
            log(f"[goemotions] evaluating label rate {rate:g}, seed {seed}")
            per_seed.append(evaluate_seed(run, prepared, data, seed, rate, baseline, log))
        summaries.append(write_report(run, data, rate, per_seed, command))
    if len(run.label_rates) > 1:
        write_sweep(run, summaries, command)
    return summaries

