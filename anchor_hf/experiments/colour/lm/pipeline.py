"""Train anchored + control colour LMs over seeds with `anchor-hf train`, evaluate, and report.

The recipes (`recipes/colour_{names,mixing}_{destination,anchored,control}.yaml`) are
launched through the one training entry point (`commands.train.run`) with a few overrides:
output folder, seed, corpus, target colour (the concept is renamed after the target so metric
keys read `anchor/blue/...`), the destination colour (the destination concept is renamed after
it), and any extra `--key value` flags. Per seed: `anchored` (the target with its trained
destination), `nodest` (the same target recipe without a destination: the arm redirected to
its untrained opposite pole) and `control`; with `destination="opposite"` the anchored model is
the recipe without a destination and there is no `nodest`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from anchor_hf.config import OPPOSITE
from anchor_hf.errors import AnchorConfigError
from ..spec import ColourSpec
from ..target import DEFAULT_DESTINATION, parse_target
from anchor_hf.resources import recipes_dir
from anchor_hf.train_args import load_mapping, read_recipe

KINDS = ("anchored", "nodest", "control", "neversaw")  # neversaw: the control without the target colour


@dataclass
class ColourRun:
    """What `anchor-hf colour` runs.

    Args:
        concept: target colour; corpus: xkcd, colornames or mixing; seeds: training seeds 0..n-1.
        out: output folder (models under `out/models/`, report files directly in `out`).
        data_dir: folder of colornames.csv (corpus colornames).
        max_steps: override the recipes' training steps (None keeps them).
        anchored_args, control_args, common_args: extra `--key value` flags for the trainings.
        retrain: train again even where a finished model exists.
        neversaw: also train never-saw-it models (`models/neversaw_seed{i}`): removal is measured against them..
        destination: the redirect destination colour (`#rrggbb`, a hue or an XKCD name), trained as a
            second concept on the target's opposite pole; or "opposite": no trained destination,
            redirect to the untrained opposite pole.
        aware_steps: intervention-aware steps after training (`aware.py`; names corpora only): the
            anchored model continues with redirected concept lines answering the destination, the
            control continues as many steps without them; 0 = none.
        redirect_onset: None for the full redirect, or `a`: the graded redirect `falloff=(a, 1, 1)`,
            in the intervention-aware steps and in the evaluation alike.
    """

    concept: str = "red"
    corpus: str = "xkcd"
    seeds: int = 3
    out: str = "results/colour"
    data_dir: str | None = None
    max_steps: int | None = None
    anchored_args: list[str] = field(default_factory=list)
    control_args: list[str] = field(default_factory=list)
    common_args: list[str] = field(default_factory=list)
    retrain: bool = False
    neversaw: bool = False
    destination: str = DEFAULT_DESTINATION
    aware_steps: int = 0
    redirect_onset: float | None = None
    recipe_dir: str = field(default_factory=lambda: str(recipes_dir()))

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise AnchorConfigError(f"`seeds` must be an int >= 1, got {self.seeds!r}")
        if self.corpus not in ("xkcd", "colornames", "mixing"):
            raise AnchorConfigError(f"`corpus` must be 'xkcd', 'colornames' or 'mixing', got {self.corpus!r}")
        if self.corpus == "colornames" and self.data_dir is None:
            raise AnchorConfigError("`corpus` = 'colornames' needs `--data-dir` (the folder of colornames.csv, "
                                    "e.g. ../shared/datasets/colornames)")
        if self.max_steps is not None and self.max_steps < 1:
            raise AnchorConfigError(f"`max_steps` must be >= 1, got {self.max_steps}")
        for kind in self.kinds():
            if not os.path.isfile(self.recipe(kind)):
                raise AnchorConfigError(f"recipe {self.recipe(kind)} not found; `recipe_dir` = {self.recipe_dir!r} "
                                        "must hold the colour recipes (they ship in the repository's recipes/)")
        _ = self.target_name  # raises on an unknown colour
        if not isinstance(self.destination, str) or not self.destination.strip():
            raise AnchorConfigError(f"`destination` must be a colour ('#rrggbb', a hue or an XKCD name) or "
                                    f"'opposite', got {self.destination!r}")
        if self.has_destination:  # raises on an unknown colour, or the target colour itself
            ColourSpec(corpus=self.corpus, concept=self.concept, destination=self.destination)  # type: ignore[arg-type]
        if isinstance(self.aware_steps, bool) or not isinstance(self.aware_steps, int) or self.aware_steps < 0:
            raise AnchorConfigError(f"`aware_steps` must be an int >= 0, got {self.aware_steps!r}")
        if self.aware_steps and self.corpus == "mixing":
            raise AnchorConfigError("`aware_steps` (intervention-aware steps) are implemented for the names corpora "
                                    "(xkcd, colornames), not the mixing language")
        if self.redirect_onset is not None and not 0.0 <= self.redirect_onset < 1.0:
            raise AnchorConfigError(f"`redirect_onset` must be in [0, 1) or None, got {self.redirect_onset!r}")

    @property
    def falloff(self) -> tuple[float, float, float] | None:
        """The redirect's falloff lobe: None, or `(onset, 1, 1)`."""
        return None if self.redirect_onset is None else (self.redirect_onset, 1.0, 1.0)

    def aware(self, kind: str) -> Any:
        """The extra steps of `kind` (`anchored`: with redirected lines; `nodest` and `control`: as many without)."""
        from .aware import AwareSteps

        return AwareSteps(steps=self.aware_steps, weight=1.0 if kind == "anchored" else 0.0,
                          onset=self.redirect_onset)

    @property
    def target_name(self) -> str:
        return ColourSpec(corpus=self.corpus, concept=self.concept).target.name  # type: ignore[arg-type]

    @property
    def has_destination(self) -> bool:
        """True when the destination is a colour trained as its own concept (not the untrained opposite pole)."""
        return self.destination.strip().lower() != OPPOSITE

    @property
    def destination_name(self) -> str:
        """The destination concept's name (`c808080` for `#808080`), or "opposite"."""
        return parse_target(self.destination).name if self.has_destination else OPPOSITE

    def kinds(self) -> tuple[str, ...]:
        """The models trained per seed, in order."""
        kinds = ("anchored", "nodest", "control") if self.has_destination else ("anchored", "control")
        return kinds + (("neversaw",) if self.neversaw else ())

    def recipe(self, kind: str) -> str:
        """The recipe of a kind: `anchored` is the destination recipe when there is one; `nodest` is the same
        recipe with the destination concept and its labels left out (same layers, same steps), so the two
        differ only by the trained destination; `neversaw` the control recipe on data without the target."""
        stem = "mixing" if self.corpus == "mixing" else "names"
        name = {"anchored": "destination" if self.has_destination else "anchored", "nodest": "destination",
                "neversaw": "control"}.get(kind, kind)
        return os.path.join(self.recipe_dir, f"colour_{stem}_{name}.yaml")

    def model_dir(self, kind: str, seed: int) -> str:
        return os.path.join(self.out, "models", f"{kind}_seed{seed}")

    def train_argv(self, kind: str, seed: int, folder: str | None = None) -> list[str]:
        """The `anchor-hf train` arguments of one model (kind `anchored`, `nodest`, `control` or `neversaw`),
        written to `folder` (default `model_dir(kind, seed)`)."""
        if kind not in KINDS:
            raise AnchorConfigError(f"`kind` must be one of {KINDS}, got {kind!r}")
        recipe = read_recipe(self.recipe(kind), _allowed())
        anchor = load_mapping(recipe["anchor_config"], "anchor_config")
        target, *destinations = anchor["concepts"]
        target["name"] = self.target_name
        if kind == "anchored":  # the destination recipe's second concept is the destination
            target["destination"] = self.destination_name
            for concept in destinations:
                concept["name"] = self.destination_name
        elif kind == "nodest":  # the destination recipe without its destination
            target.pop("destination", None)
            anchor["concepts"] = [target]
        argv = ["--config", self.recipe(kind), "--output_dir", folder or self.model_dir(kind, seed),
                "--seed", str(seed),
                "--dataset_args.concept", self.concept, "--anchor_config", json.dumps(anchor)]
        if kind == "anchored" and self.has_destination:
            argv += ["--dataset_args.destination", self.destination]
        elif kind == "nodest":
            argv += ["--dataset_args.destination", "null"]  # no destination labels either
        if self.corpus != "mixing":
            argv += ["--dataset_args.source", self.corpus]
        if self.data_dir is not None:
            argv += ["--dataset_args.data_dir", self.data_dir]
        if self.max_steps is not None:
            argv += ["--max_steps", str(self.max_steps)]
        if kind == "neversaw":
            argv += ["--dataset_args.exclude_target", "true"]
        anchored = kind in ("anchored", "nodest")
        return argv + list(self.common_args) + list(self.anchored_args if anchored else self.control_args)

    def spec(self) -> ColourSpec:
        """The corpus spec the anchored recipe (with overrides) trains on."""
        from anchor_hf.train_args import parse_train_args

        from ..builders import spec_of

        _, data_args, _, _ = parse_train_args(self.train_argv("anchored", 0))
        return spec_of(data_args.dataset, load_mapping(data_args.dataset_args or {}, "dataset_args"))


def _allowed() -> set[str]:
    from anchor_hf.train_args import make_parser

    return {a.dest for a in make_parser()._actions if a.dest != "help"}


def _finished(model_dir: str, aware: bool = False) -> bool:
    """A trained model is there (and, for continued models, the record of its extra steps, written last)."""
    from .aware import AWARE_FILE

    files = ("anchor_config.json", "trainer_state.json", *((AWARE_FILE,) if aware else ()))
    return all(os.path.isfile(os.path.join(model_dir, f)) for f in files)


def train_all(run: ColourRun, log: Any = print, shard: tuple[int, int] | None = None) -> None:
    """Train every (kind, seed) model that is not already finished (or all, with `retrain`).

    With `shard=(i, n)` only every n-th model from the i-th, so n processes can share the work.
    """
    from anchor_hf.commands.train import run as train

    from .aware import continue_training

    todo = [(seed, kind) for seed in range(run.seeds) for kind in run.kinds()]
    for seed, kind in todo if shard is None else todo[shard[0]::shard[1]]:
        folder = run.model_dir(kind, seed)
        aware = run.aware_steps > 0 and kind in ("anchored", "nodest", "control")
        if _finished(folder, aware) and not run.retrain:
            log(f"[colour] {kind} seed {seed}: using the finished model in {folder}")
            continue
        start = time.time()
        first = run.model_dir(f"{kind}_pre", seed) if aware else folder  # trained, then continued into `folder`
        if run.retrain or not _finished(first):
            log(f"[colour] training {kind} seed {seed} -> {first}")
            train(run.train_argv(kind, seed, first))
        if aware:
            log(f"[colour] {run.aware_steps} intervention-aware steps for {kind} seed {seed} -> {folder}")
            continue_training(first, folder, run.aware(kind), seed)
        log(f"[colour] {kind} seed {seed} trained in {time.time() - start:.0f}s")


def evaluate_all(run: ColourRun, command: str, log: Any = print) -> dict[str, Any]:
    """Evaluate every seed, write the report into `run.out`; returns the summary."""
    import torch

    from .evaluate import evaluate_pair
    from .report import summarize, write

    spec = run.spec()
    results = []
    for seed in range(run.seeds):
        log(f"[colour] evaluating seed {seed}")
        nodest = run.model_dir("nodest", seed) if run.has_destination else None
        results.append(evaluate_pair(run.model_dir("anchored", seed), run.model_dir("control", seed), spec,
                                     run.target_name, nodest, seed, run.falloff))
    label_fraction = float(torch.tensor(spec.train_dataset(spec.tokenizer())["concept"]).mean())
    summary = summarize(results, run.target_name, run.corpus, label_fraction, run.destination)
    setup = {"spec": spec.to_dict(), **{f"{kind}_argv": run.train_argv(kind, 0) for kind in run.kinds()},
             "aware_steps": run.aware(kind="anchored").__dict__ if run.aware_steps else None,
             "redirect_falloff": run.falloff}
    write(run.out, results, list(range(run.seeds)), summary, command, setup, spec.corpus == "mixing")
    return summary
