"""`anchor-hf goemotions`: train anchored / control / never-saw-it models over seeds and label rates, evaluate, report.

Every model trains through the one training driver (`train.train_model`) on the run's
recipe: the shipped one (or `--recipe-file`) with the `--set` overrides, the run's concepts
and the resolved tokenizer and model, written to `MODELS/recipe.yaml` so any model can be
retrained alone with `anchor-hf train --config MODELS/recipe.yaml`. Control and
never-saw-it models do not depend on the label rate, so a sweep over rates trains them once
per seed. Finished models are reused (so an interrupted run resumes, and evaluation can be
re-run alone); the report always records the exact command.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from anchor_hf.errors import AnchorConfigError
from anchor_hf.io import write_text
from .data import Comment, EmotionConcept, load_goemotions, resolve_concept, resolve_concepts
from .destination import DestinationPlan, check_training_labels, resolve_destination, with_destination
from .recipe import GoEmotionsRecipe, check, load_recipe, recipe_path

RECIPE_NAME = "recipe.yaml"


@dataclass
class GoEmotionsRun:
    """What one `anchor-hf goemotions` invocation does.

    Args:
        recipe: `scratch` (recipe A) or `smollm2` (recipe B).
        concept: one concept, or several comma-separated (each on its own axis; the first is evaluated).
        label_rates: label rates to train anchored models at (one report each, plus a sweep plot).
        seeds: training seeds 0..seeds-1.
        out: report folder; models_dir: where models go (default `out/models`).
        data_dir: GoEmotions folder (None = the recipe's `dataset_args.data_dir`, else the Hub, online only).
        overrides: recipe keys to override; recipe_file: another recipe file.
        destination: a label or group the concept is redirected to (`destination.py`), or None;
        destination_place: `opposite`, `axis` or `untrained` (where its place is trained, if at all).
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
    destination: str | None = None
    destination_place: str = "opposite"

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
        if self.data_dir is not None and not os.path.isdir(self.data_dir):
            raise AnchorConfigError(f"`--data-dir` = {self.data_dir!r} is not a folder")
        self.concepts: list[EmotionConcept] = resolve_concepts(self.concept)
        overrides = dict(self.overrides)
        overrides["dataset_args.concept"] = ",".join(c.name for c in self.concepts)
        overrides["dataset_args.label_rate"] = self.label_rates[0]
        if self.data_dir is not None:
            overrides["dataset_args.data_dir"] = self.data_dir
        self.settings: GoEmotionsRecipe = load_recipe(self.recipe_file or recipe_path(self.recipe), overrides)
        self._check_groups()
        self.plan: DestinationPlan | None = None
        if self.destination is not None:
            self.plan = resolve_destination(self.destination, self.concepts, self.destination_place,
                                            self.settings.data.destination_label_rate)
        elif self.destination_place != "opposite":
            raise AnchorConfigError("`--destination-place` places a destination; give `--destination` too")
        self.models = self.models_dir or os.path.join(self.out, "models")

    def _check_groups(self) -> None:
        """Refuse an entanglement group inside the evaluated concept (`anger` for `anger`, `annoyance` for
        `ekman:anger`): no comment has it without the concept, and its empty list used to reach the
        tokenizer after every model had trained."""
        concept = self.concepts[0]
        for i, name in enumerate(self.settings.evaluation.entanglement_groups):
            if resolve_concept(name).members <= concept.members:
                raise AnchorConfigError(
                    f"`entanglement_groups[{i}]` = {name!r} lies inside the evaluated concept {concept.name!r}, so "
                    "no comment has it without the concept; drop it from the recipe "
                    "(`--set entanglement_groups=[...]`)")

    @property
    def recipe_path(self) -> str:
        """Where the run's recipe is written (`prepare`), for every training to read."""
        return os.path.join(self.models, RECIPE_NAME)

    def model_dir(self, kind: str, seed: int, rate: float | None = None) -> str:
        name = f"{kind}_seed{seed}" if rate is None else f"{kind}_rate{rate:g}_seed{seed}"
        return os.path.join(self.models, name)

    def report_dir(self, rate: float) -> str:
        return self.out if len(self.label_rates) == 1 else os.path.join(self.out, f"rate_{rate:g}")

    def anchor(self, active: bool) -> dict[str, Any]:
        """The anchor config mapping of the anchored models (`active`) or of the controls."""
        from .train import anchor_config

        cfg = self.settings.mapping["anchor_config"]
        mapping = anchor_config(self.settings.template, cfg["layers"], self.concepts, cfg.get("separation", 0.0),
                                active)
        if active and self.trained_destination is not None:
            mapping["concepts"] = with_destination(mapping["concepts"][0], self.plan, axis=len(self.concepts))
        return mapping

    @property
    def trained_destination(self) -> str | None:
        """The destination label the anchored models train (None without one, or with an untrained place)."""
        return self.plan.destination.name if self.plan is not None and self.plan.is_trained else None


@dataclass
class Prepared:
    """Data, tokenizer and model shared by every model of a run."""

    splits: dict[str, list[Comment]]
    tokenizer: Any
    base_path: str | None  # recipe B: the pretrained folder (LoRA adapters are merged into it for evaluation)
    redirect: Any = None  # with a destination: its prompts, comments and classifiers (`redirect_eval.RedirectData`)


def prepare(run: GoEmotionsRun, log: Any = print) -> Prepared:
    """Read the data, build the tokenizer (a BPE trained once, or the pretrained model's), write the run's recipe."""
    from anchor_hf.io import load_tokenizer
    from anchor_hf.registry import resolve_model

    from .tokenizer import train_bpe

    splits = load_goemotions(run.settings.data.data_dir)
    if run.plan is not None:  # the destination must label some of its training comments at every rate
        check_training_labels(run.plan, splits["train"], run.label_rates, run.settings.data.label_scheme)
    recipe = copy.deepcopy(run.settings.mapping)
    recipe["anchor_config"] = run.anchor(active=True)
    if run.settings.is_pretrained:
        log("[goemotions] preparing the pretrained model (a packaged GGUF is converted once)")
        base = resolve_model(recipe["model_name_or_path"], os.path.join(run.models, "base"))
        recipe["model_name_or_path"] = base
        tokenizer = load_tokenizer(base)
    else:
        base = None
        folder = os.path.join(run.models, "tokenizer")
        tokenizer = train_bpe([c.text for c in splits["train"]], run.settings.data.vocab_size, folder)
        recipe["tokenizer_name_or_path"] = folder
    check(recipe)
    write_text(run.recipe_path, "# written by anchor-hf goemotions: the recipe every model of this run trains on\n"
               + yaml.safe_dump(recipe, sort_keys=False))
    return Prepared(splits, tokenizer, base)


def jobs(run: GoEmotionsRun) -> list[tuple[str, int, float, str]]:
    """(kind, seed, label rate, folder) of every model the run needs, seed by seed."""
    out = []
    for seed in range(run.seeds):
        out += [("anchored", seed, r, run.model_dir("anchored", seed, r)) for r in run.label_rates]
        rate = run.label_rates[0]  # unused by the controls (anchor weights 0), but their columns need one
        out.append(("control", seed, rate, run.model_dir("control", seed)))
        out.append(("neversaw", seed, rate, run.model_dir("neversaw", seed)))
    return out


def train_all(run: GoEmotionsRun, log: Any = print, shard: tuple[int, int] | None = None) -> None:
    """Train every model the run needs that is not finished yet (with `shard=(i, n)`, every n-th from the i-th)."""
    from .train import train_model

    todo = jobs(run)
    anchors = {True: run.anchor(active=True), False: run.anchor(active=False)}
    for kind, seed, rate, folder in todo if shard is None else todo[shard[0]::shard[1]]:
        destination = run.trained_destination if kind == "anchored" else None
        train_model(run.recipe_path, kind, seed, rate, anchors[kind == "anchored"], folder, log, destination)


def evaluation_data(run: GoEmotionsRun, prepared: Prepared) -> Any:
    """The held-out comments every model is measured on (`evaluate.EvalData`, and with a destination
    `redirect_eval.RedirectData` in `prepared.redirect`). Built before any model trains, so a concept
    or group without test comments is refused before hours of work."""
    from .evaluate import EvalData
    from .redirect_eval import RedirectData

    settings = run.settings
    if run.plan is not None:  # both sides must give held-out prompts; kept in `prepared` for the evaluation
        prepared.redirect = RedirectData.build(prepared.splits, run.plan, settings.evaluation,
                                               settings.data.max_length, prepared.tokenizer)
    return EvalData.build(prepared.splits, run.concepts[0], settings.evaluation, settings.data.max_length,
                          prepared.tokenizer)


def evaluate_all(run: GoEmotionsRun, prepared: Prepared, data: Any, command: str, log: Any = print
                 ) -> list[dict[str, Any]]:
    """Evaluate every seed at every rate on `data` (`evaluation_data`); writes one report per rate (and a
    sweep); returns the summaries."""
    from .evaluate import evaluate_seed
    from .redirect_arms import evaluate_redirect
    from .report import write_report, write_sweep

    baseline: dict[int, dict[str, Any]] = {}  # per seed: control/never-saw/post-hoc results, shared by the rates
    summaries = []
    for rate in run.label_rates:
        per_seed = []
        for seed in range(run.seeds):
            log(f"[goemotions] evaluating label rate {rate:g}, seed {seed}")
            result = evaluate_seed(run, prepared, data, seed, rate, baseline, log)
            if prepared.redirect is not None:
                result["redirect"] = evaluate_redirect(run, prepared, data, seed, rate, log)
            per_seed.append(result)
        summaries.append(write_report(run, data, rate, per_seed, command, prepared.redirect))
    if len(run.label_rates) > 1:
        write_sweep(run, summaries, command)
    return summaries
