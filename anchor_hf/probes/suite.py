"""Run the probes on a loaded model: the model plumbing behind `anchor-hf probe`.

Each `run_*` function measures one thing over a `ProbeContext` and returns a `Section`:
the numbers for report.json (each with its 95% bootstrap interval over the examples), a
markdown table, a one-line verdict per concept, and figures. Given a `control` context (an
un-anchored model probed with the same config and data), every number gets its baseline
beside it. The math lives in the probe modules (alignment, detection, linear_probe,
posthoc, uncertainty, verdicts); this file feeds them states from the model, and
`effects.py` does the same for the measures that intervene (steerability, entanglement).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from ..binding import bind
from ..config import AnchorConfig
from ..geometry import concept_place
from .alignment import containment, direction_cosine, labelled_alignment, latch_mass, position_profile, retention
from .detection import auroc, pool_alignment
from .inputs import ProbeData, load_model_and_tokenizer, make_batches
from .linear_probe import fit_linear_probe
from .plots import plot_alignment, plot_detection
from .posthoc import is_leace_available, leace_direction, mean_difference
from .report import markdown_table
from .states import LayerStates, collect_states
from .uncertainty import RESAMPLES, bootstrap_interval
from .verdicts import alignment_verdicts, detection_verdicts, fmt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNLABELLED = "(unlabelled)"


@dataclass
class Section:
    """One measurement's share of a report: numbers, markdown, one verdict line per concept, figures."""

    results: dict[str, Any]
    markdown: str
    figures: dict[str, Figure] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)


def anchored_modules(model: nn.Module, cfg: AnchorConfig) -> list[tuple[str, nn.Module]]:
    """The config's anchored `(name, module)` pairs on `model`, fitted by `binding.bind`."""
    return bind(cfg, model).sites


@dataclass
class ProbeContext:
    """A loaded model, its anchor config, the probed concepts and the data, with states cached."""

    model: nn.Module
    tokenizer: Any
    cfg: AnchorConfig
    concepts: list[str]
    data: ProbeData
    batch_size: int = 16
    max_length: int = 128
    progress: bool = True
    _states: LayerStates | None = None

    def __post_init__(self) -> None:
        binding = bind(self.cfg, self.model)
        self.modules = binding.sites
        self.places = {name: concept_place(self.cfg.concept(name), binding.hidden_size) for name in self.concepts}

    @property
    def layer_names(self) -> list[str]:
        return [name for name, _ in self.modules]

    def labels(self, concept: str) -> torch.Tensor:
        """Label probabilities `[N]` of a concept (its `label_column`)."""
        return self.data.labels[self.cfg.concept(concept).column]

    def batches(self, index: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
        texts = self.data.texts if index is None else [self.data.texts[i] for i in index.tolist()]
        return make_batches(self.tokenizer, texts, self.batch_size, self.max_length)

    def states(self) -> LayerStates:
        if self._states is None:
            self._states = states_of(self.model, self)
        return self._states

    def with_model(self, model: nn.Module, tokenizer: Any) -> ProbeContext:
        """The same config, concepts and data on another model (a control), with its own state cache."""
        return ProbeContext(model=model, tokenizer=tokenizer, cfg=self.cfg, concepts=self.concepts, data=self.data,
                            batch_size=self.batch_size, max_length=self.max_length, progress=self.progress)


def states_of(model: nn.Module, ctx: ProbeContext) -> LayerStates:
    """States of `model` (the context's, or a checkpoint's) at the context's layers over its data."""
    modules = ctx.modules if model is ctx.model else anchored_modules(model, ctx.cfg)
    return collect_states(model, modules, ctx.batches(), ctx.places, progress=ctx.progress)


# ---------------------------------------------------------------------- alignment
def syntax_token_ids(tokenizer: Any) -> torch.Tensor:
    """Ids of special tokens and of tokens with no letter or digit (punctuation, spaces): the latch suspects.

    Tokens are decoded first, so byte-level markers (GPT-2's `Ġ`) do not count as letters.
    """
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    ids = {i for i, t in enumerate(texts) if not any(ch.isalnum() for ch in t)}
    ids |= set(getattr(tokenizer, "all_special_ids", []))
    return torch.tensor(sorted(ids), dtype=torch.long)


def checkpoint_folders(model_dir: str) -> list[str]:
    """`checkpoint-<step>` subfolders of a training output folder, by step."""
    found = [(int(m.group(1)), os.path.join(model_dir, d)) for d in os.listdir(model_dir)
             if (m := re.fullmatch(r"checkpoint-(\d+)", d)) and os.path.isdir(os.path.join(model_dir, d))]
    return [path for _, path in sorted(found)]


def _alignment_entries(ctx: ProbeContext, concept: str, history: list[list[float]], resamples: int,
                       seed: int) -> list[dict[str, Any]]:
    """Per layer: labelled/unlabelled alignment, containment and margin with intervals, latch, profiles."""
    states = ctx.states()
    syntax = torch.isin(states.input_ids, syntax_token_ids(ctx.tokenizer)) & states.live
    w = ctx.labels(concept)
    positive = w >= 0.5
    entries = []
    for layer, cos in enumerate(states.cos[concept]):
        labelled, contained = labelled_alignment(cos, states.live, w), containment(cos, states.live)
        n = cos.shape[0]
        latch = latch_mass(cos, states.live & positive.unsqueeze(-1), syntax, ctx.cfg.concept(concept).tau)
        margins = [h[layer] for h in history] + [labelled - contained]
        entries.append({
            "layer": ctx.layer_names[layer], "labelled": labelled,
            "unlabelled": labelled_alignment(cos, states.live, (~positive).float()),
            "containment": contained, "margin": labelled - contained,
            "containment_interval": bootstrap_interval(lambda i, c=cos: containment(c[i], states.live[i]), n,
                                                       resamples, seed),
            "margin_interval": bootstrap_interval(
                lambda i, c=cos: labelled_alignment(c[i], states.live[i], w[i]) - containment(c[i], states.live[i]),
                n, resamples, seed),
            "latch_mass": latch["mass"], "latch_chance": latch["chance"],
            "margins_over_checkpoints": margins, "retention": retention(margins) if history else math.nan,
            "profile_labelled": position_profile(cos, states.live, positive).tolist(),
            "profile_unlabelled": position_profile(cos, states.live, ~positive).tolist()})
    return entries


def run_alignment(ctx: ProbeContext, checkpoints: Sequence[str] = (), device: str = "cpu",
                  control: ProbeContext | None = None, resamples: int = RESAMPLES, seed: int = 0) -> Section:
    """Alignment, margin and containment per layer (with intervals and the control's), latch, retention."""
    history: dict[str, list[list[float]]] = {c: [] for c in ctx.concepts}  # concept -> checkpoint -> layer
    for folder in checkpoints:
        model, _ = load_model_and_tokenizer(folder, device)
        ckpt_states = states_of(model, ctx)
        for c in ctx.concepts:
            w = ctx.labels(c)
            history[c].append([labelled_alignment(cos, ckpt_states.live, w) - containment(cos, ckpt_states.live)
                               for cos in ckpt_states.cos[c]])
        del model
    results: dict[str, Any] = {"layers": ctx.layer_names, "checkpoints": list(checkpoints), "concepts": {},
                               "resamples": resamples}
    if control is not None:
        results["control"] = {c: _alignment_entries(control, c, [], resamples, seed) for c in ctx.concepts}
    rows, curves = [], {}
    for c in ctx.concepts:
        entries = results["concepts"][c] = _alignment_entries(ctx, c, history[c], resamples, seed)
        base = results.get("control", {}).get(c, [None] * len(entries))
        for e, b in zip(entries, base):
            rows.append([c, e["layer"], e["labelled"], fmt(e["containment"], e["containment_interval"]),
                         fmt(e["margin"], e["margin_interval"]),
                         *([fmt(b["margin"], b["margin_interval"])] if b else []),
                         e["latch_mass"], e["latch_chance"], e["retention"]])
        curves[c] = {key: [e[key] for e in entries] for key in ("labelled", "containment", "margin", "margin_interval")}
        if base[0] is not None:
            curves[c]["control_margin"] = [b["margin"] for b in base]
    header = ["concept", "layer", "labelled cos", "containment [95% CI]", "margin [95% CI]",
              *(["control margin [95% CI]"] if control is not None else []), "latch mass", "latch chance", "retention"]
    text = ("## Alignment\n\nMean cos(h, v) over live tokens; margin = labelled − all; containment = all; "
            "latch = softmin weight on syntax tokens (chance = their share); retention = final / peak margin "
            f"over checkpoints. Intervals: 95% bootstrap over the {len(ctx.data)} examples ({resamples} "
            "resamples).\n\n" + markdown_table(header, rows))
    return Section(results, text, {"alignment": plot_alignment(ctx.layer_names, curves)}, alignment_verdicts(results))


# ---------------------------------------------------------------------- detection
def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) indices with each class split in the same proportion, seeded."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for cls in (True, False):
        idx = torch.nonzero(labels == cls).reshape(-1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n_test = min(max(1, round(test_fraction * idx.numel())), idx.numel() - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def auroc_interval(scores: torch.Tensor, labels: torch.Tensor, resamples: int, seed: int) -> tuple[float, float]:
    """95% bootstrap interval of the AUROC of `scores [n]` for `labels [n]` (resamples missing a class dropped)."""
    def statistic(i: torch.Tensor) -> float:
        y = labels[i]
        return auroc(scores[i], y) if bool(y.any()) and not bool(y.all()) else math.nan

    return bootstrap_interval(statistic, scores.numel(), resamples, seed)


def _detection_entries(ctx: ProbeContext, concept: str, pool: Literal["mean", "max"], test_fraction: float,
                       seed: int, resamples: int) -> list[dict[str, Any]]:
    states, leace = ctx.states(), is_leace_available()
    y = ctx.labels(concept) >= 0.5
    train, test = stratified_split(y, test_fraction, seed)
    basis = ctx.places[concept][0]
    entries = []
    for layer, cos in enumerate(states.cos[concept]):
        x = states.pooled[layer]
        anchored = pool_alignment(cos, states.live, pool)
        probe = fit_linear_probe(x[train], y[train])
        dm = mean_difference(x[train], y[train])
        entry = {"layer": ctx.layer_names[layer],
                 "anchored_auroc": auroc(anchored[test], y[test]),
                 "anchored_auroc_interval": auroc_interval(anchored[test], y[test], resamples, seed),
                 "anchored_auroc_all": auroc(anchored, y),
                 "probe_auroc": auroc(probe.scores(x[test]), y[test]),
                 "probe_auroc_interval": auroc_interval(probe.scores(x[test]), y[test], resamples, seed),
                 "probe_cos": direction_cosine(probe.direction, basis),
                 "mean_diff_auroc": auroc(x[test] @ dm, y[test]), "mean_diff_cos": direction_cosine(dm, basis),
                 "leace_auroc": None, "leace_cos": None}
        if leace:
            r = leace_direction(x[train], y[train])
            entry["leace_auroc"] = auroc(x[test] @ r, y[test])
            entry["leace_cos"] = direction_cosine(r, basis)
        entries.append(entry)
    return entries


def run_detection(ctx: ProbeContext, pool: Literal["mean", "max"] = "mean", test_fraction: float = 0.5,
                  seed: int = 0, control: ProbeContext | None = None, resamples: int = RESAMPLES) -> Section:
    """Anchored AUROC (no search, with its interval and the control's) beside probes fitted on a train split."""
    leace = is_leace_available()
    results: dict[str, Any] = {"layers": ctx.layer_names, "pool": pool, "test_fraction": test_fraction,
                               "seed": seed, "leace_available": leace, "concepts": {}, "resamples": resamples}
    if control is not None:
        results["control"] = {c: _detection_entries(control, c, pool, test_fraction, seed, resamples)
                              for c in ctx.concepts}
    rows, curves, intervals = [], {}, {}
    for c in ctx.concepts:
        entries = results["concepts"][c] = _detection_entries(ctx, c, pool, test_fraction, seed, resamples)
        base = results.get("control", {}).get(c, [None] * len(entries))
        for e, b in zip(entries, base):
            rows.append([c, e["layer"], fmt(e["anchored_auroc"], e["anchored_auroc_interval"]),
                         *([fmt(b["anchored_auroc"], b["anchored_auroc_interval"])] if b else []),
                         fmt(e["probe_auroc"], e["probe_auroc_interval"]), e["probe_cos"], e["mean_diff_auroc"],
                         e["mean_diff_cos"], e["leace_auroc"], e["leace_cos"]])
        curves[c] = {k: [e[f"{k}_auroc"] for e in entries] for k in ("anchored", "probe", "mean_diff", "leace")
                     if entries[0][f"{k}_auroc"] is not None}
        intervals[c] = {k: [e[f"{k}_auroc_interval"] for e in entries] for k in ("anchored", "probe")}
        if base[0] is not None:
            curves[c]["control anchored"] = [b["anchored_auroc"] for b in base]
    header = ["concept", "layer", "anchored AUROC [95% CI]", *(["control anchored AUROC"] if control else []),
              "probe AUROC [95% CI]", "cos(probe, v)", "mean-diff AUROC", "cos(mean-diff, v)", "LEACE AUROC",
              "cos(LEACE, v)"]
    text = (f"## Detection\n\nAUROC on a held-out {test_fraction:.0%} split (stratified, seed {seed}); anchored "
            f"score = {pool} cos(h, v) over tokens, fitted nothing; probe and post-hoc directions fitted on the "
            f"rest, on mean unit states. Intervals: 95% bootstrap over the test examples ({resamples} resamples)."
            + ("" if leace else " LEACE skipped: `concept-erasure` is not installed.") + "\n\n"
            + markdown_table(header, rows))
    return Section(results, text, {"detection": plot_detection(ctx.layer_names, curves, intervals)},
                   detection_verdicts(results))
