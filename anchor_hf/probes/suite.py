"""Run the probes on a loaded model: the model plumbing behind `anchor-hf probe`.

Each `run_*` function measures one thing over a `ProbeContext` and returns a `Section`:
the numbers for report.json, a markdown table, and figures. The math lives in the probe
modules (alignment, detection, linear_probe, posthoc, steerability, entanglement); this
file only feeds them states and losses from the model and the interventions.
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
from ..layers import resolve_layers
from .alignment import containment, direction_cosine, labelled_alignment, latch_mass, position_profile, retention
from .detection import auroc, pool_alignment
from .entanglement import measure_entanglement
from .inputs import ProbeData, load_model_and_tokenizer, make_batches
from .linear_probe import fit_linear_probe
from .plots import plot_alignment, plot_detection, plot_dose_response, plot_entanglement
from .posthoc import is_leace_available, leace_direction, mean_difference
from .report import markdown_table
from .scores import ReadoutAlignment, token_logprob, token_nll
from .states import LayerStates, collect_states
from .steerability import dose_response, summarize_dose_response

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNLABELLED = "(unlabelled)"


@dataclass
class Section:
    """One measurement's share of a report."""

    results: dict[str, Any]
    markdown: str
    figures: dict[str, Figure] = field(default_factory=dict)


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


def _margins(states: LayerStates, ctx: ProbeContext, concept: str) -> list[float]:
    w = ctx.labels(concept)
    return [labelled_alignment(cos, states.live, w) - containment(cos, states.live) for cos in states.cos[concept]]


def checkpoint_folders(model_dir: str) -> list[str]:
    """`checkpoint-<step>` subfolders of a training output folder, by step."""
    found = [(int(m.group(1)), os.path.join(model_dir, d)) for d in os.listdir(model_dir)
             if (m := re.fullmatch(r"checkpoint-(\d+)", d)) and os.path.isdir(os.path.join(model_dir, d))]
    return [path for _, path in sorted(found)]


def run_alignment(ctx: ProbeContext, checkpoints: Sequence[str] = (), device: str = "cpu") -> Section:
    """Alignment, margin and containment per layer, latch check, position profiles, retention."""
    states = ctx.states()
    syntax = torch.isin(states.input_ids, syntax_token_ids(ctx.tokenizer)) & states.live
    history: dict[str, list[list[float]]] = {c: [] for c in ctx.concepts}  # concept -> checkpoint -> layer
    for folder in checkpoints:
        model, _ = load_model_and_tokenizer(folder, device)
        ckpt_states = states_of(model, ctx)
        for c in ctx.concepts:
            history[c].append(_margins(ckpt_states, ctx, c))
        del model
    results: dict[str, Any] = {"layers": ctx.layer_names, "checkpoints": list(checkpoints), "concepts": {}}
    rows, curves = [], {}
    for c in ctx.concepts:
        w = ctx.labels(c)
        positive = w >= 0.5
        per_layer = []
        for layer, cos in enumerate(states.cos[c]):
            labelled = labelled_alignment(cos, states.live, w)
            contained = containment(cos, states.live)
            latch = latch_mass(cos, states.live & positive.unsqueeze(-1), syntax, ctx.cfg.concept(c).tau)
            margins = [h[layer] for h in history[c]] + [labelled - contained]
            entry = {"layer": ctx.layer_names[layer], "labelled": labelled,
                     "unlabelled": labelled_alignment(cos, states.live, (~positive).float()),
                     "containment": contained, "margin": labelled - contained,
                     "latch_mass": latch["mass"], "latch_chance": latch["chance"],
                     "margins_over_checkpoints": margins, "retention": retention(margins) if history[c] else math.nan,
                     "profile_labelled": position_profile(cos, states.live, positive).tolist(),
                     "profile_unlabelled": position_profile(cos, states.live, ~positive).tolist()}
            per_layer.append(entry)
            rows.append([c, entry["layer"], labelled, entry["unlabelled"], contained, entry["margin"],
                         latch["mass"], latch["chance"], entry["retention"]])
        results["concepts"][c] = per_layer
        curves[c] = {"labelled": [e["labelled"] for e in per_layer],
                     "containment": [e["containment"] for e in per_layer]}
    table = markdown_table(["concept", "layer", "labelled cos", "unlabelled cos", "containment", "margin",
                            "latch mass", "latch chance", "retention"], rows)
    text = ("## Alignment\n\nMean cos(h, v) over live tokens; margin = labelled − all; containment = all; "
            "latch = softmin weight on syntax tokens (chance = their share); retention = final / peak margin "
            "over checkpoints.\n\n" + table)
    return Section(results, text, {"alignment": plot_alignment(ctx.layer_names, curves)})


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


def run_detection(ctx: ProbeContext, pool: Literal["mean", "max"] = "mean", test_fraction: float = 0.5,
                  seed: int = 0) -> Section:
    """Anchored AUROC (no search) beside a linear probe and post-hoc directions fitted on a train split."""
    states = ctx.states()
    leace = is_leace_available()
    results: dict[str, Any] = {"layers": ctx.layer_names, "pool": pool, "test_fraction": test_fraction,
                               "seed": seed, "leace_available": leace, "concepts": {}}
    rows, curves = [], {}
    for c in ctx.concepts:
        y = ctx.labels(c) >= 0.5
        train, test = stratified_split(y, test_fraction, seed)
        basis = ctx.places[c][0]
        per_layer = []
        for layer, cos in enumerate(states.cos[c]):
            x = states.pooled[layer]
            anchored = pool_alignment(cos, states.live, pool)
            probe = fit_linear_probe(x[train], y[train])
            dm = mean_difference(x[train], y[train])
            entry = {"layer": ctx.layer_names[layer],
                     "anchored_auroc": auroc(anchored[test], y[test]),
                     "anchored_auroc_all": auroc(anchored, y),
                     "probe_auroc": auroc(probe.scores(x[test]), y[test]),
                     "probe_cos": direction_cosine(probe.direction, basis),
                     "mean_diff_auroc": auroc(x[test] @ dm, y[test]),
                     "mean_diff_cos": direction_cosine(dm, basis),
                     "leace_auroc": None, "leace_cos": None}
            if leace:
                r = leace_direction(x[train], y[train])
                entry["leace_auroc"] = auroc(x[test] @ r, y[test])
                entry["leace_cos"] = direction_cosine(r, basis)
            per_layer.append(entry)
            rows.append([c, entry["layer"], entry["anchored_auroc"], entry["probe_auroc"], entry["probe_cos"],
                         entry["mean_diff_auroc"], entry["mean_diff_cos"], entry["leace_auroc"], entry["leace_cos"]])
        results["concepts"][c] = per_layer
        curves[c] = {k: [e[f"{k}_auroc"] for e in per_layer] for k in ("anchored", "probe", "mean_diff", "leace")
                     if per_layer[0][f"{k}_auroc"] is not None}
    table = markdown_table(["concept", "layer", "anchored AUROC", "probe AUROC", "cos(probe, v)",
                            "mean-diff AUROC", "cos(mean-diff, v)", "LEACE AUROC", "cos(LEACE, v)"], rows)
    text = (f"## Detection\n\nAUROC on a held-out {test_fraction:.0%} split (stratified, seed {seed}); anchored "
            f"score = {pool} cos(h, v) over tokens, fitted nothing; probe and post-hoc directions fitted on the "
            "rest, on mean unit states." + ("" if leace else " LEACE skipped: `concept-erasure` is not installed.")
            + "\n\n" + table)
    return Section(results, text, {"detection": plot_detection(ctx.layer_names, curves)})


# ---------------------------------------------------------------------- steerability
def run_steerability(ctx: ProbeContext, doses: Sequence[float],
                     score: Literal["contrast", "logprob", "alignment"] = "contrast",
                     readout_layer: int | str = -1) -> Section:
    """Dose–response of a concept score under `steer`: per-example slopes and the wrong-way fraction.

    `contrast`: log-likelihood of each concept example minus the mean log-likelihood of the
    other examples at the same dose. Any large push degrades every text, so the plain
    `logprob` of concept examples falls on both sides of dose 0; the contrast cancels that
    shared damage and keeps what is specific to the concept. `alignment`: mean cos(h, v) at
    the readout layer over every example, which rises with the dose if the push survives
    the layers between the anchored ones and the readout.
    """
    from ..interventions import steer

    readout_name, readout = resolve_layers(ctx.model, [readout_layer])[0]
    results: dict[str, Any] = {"doses": list(doses), "score": score, "concepts": {}}
    if score == "alignment":
        results["readout_layer"] = readout_name
    rows, curves = [], {}
    for c in ctx.concepts:
        positive = ctx.labels(c) >= 0.5

        def measure(index: torch.Tensor | None, fn: Any, c: str = c) -> torch.Tensor:  # [E, C]
            return dose_response(lambda dose: steer(ctx.model, ctx.cfg, c, dose), fn, ctx.batches(index), doses,
                                 progress=ctx.progress, desc=f"steer {c}")

        if score == "alignment":
            basis, dims = ctx.places[c]
            table = measure(None, ReadoutAlignment(ctx.model, readout, basis, dims))
        else:
            logprob = lambda batch: token_logprob(ctx.model, batch)  # noqa: E731
            table = measure(torch.nonzero(positive).reshape(-1), logprob)
            if score == "contrast":
                table = table - measure(torch.nonzero(~positive).reshape(-1), logprob).nanmean(0, keepdim=True)
        summary = summarize_dose_response(doses, table)
        results["concepts"][c] = summary
        curves[c] = summary
        rows.append([c, summary["examples"], summary["slope_mean"], summary["slope_median"],
                     summary["wrong_way_fraction"], summary["monotone_fraction"], summary["mean"][0],
                     summary["mean"][-1]])
    label = {"contrast": "log-prob of concept examples − others'", "logprob": "log-prob of concept examples",
             "alignment": f"mean cos(h, v) at {readout_name}"}[score]
    table_md = markdown_table(["concept", "examples", "slope mean", "slope median", "wrong-way fraction",
                               "monotone fraction", f"score at c={min(doses):g}", f"score at c={max(doses):g}"], rows)
    text = (f"## Steerability\n\nScore: {label} (mean token log-likelihood per example), under `steer` "
            f"(h + c·|h|·v at the anchored layers) for doses {sorted(doses)}. Slopes are least-squares per "
            "example; wrong way = slope ≤ 0; monotone = rises at every dose step.\n\n" + table_md)
    if score == "alignment":
        text = text.replace(" (mean token log-likelihood per example)", "")
    return Section(results, text, {"dose_response": plot_dose_response(curves, label)})


# ---------------------------------------------------------------------- entanglement
def group_masks(ctx: ProbeContext, extra_groups: Sequence[str]) -> dict[str, torch.Tensor]:
    """Group name -> `[N]` bool: each concept's labelled examples, each extra label column, and the rest."""
    masks = {c: ctx.labels(c) >= 0.5 for c in ctx.concepts}
    masks.update({g: ctx.data.labels[g] >= 0.5 for g in extra_groups if g not in masks})
    rest = ~torch.stack(list(masks.values())).any(0)
    if bool(rest.any()):
        masks[UNLABELLED] = rest
    return masks


def run_entanglement(ctx: ProbeContext, mode: Literal["suppress", "ablate"] = "suppress",
                     extra_groups: Sequence[str] = ()) -> Section:
    """Held-out loss of every group while each concept is suppressed or ablated, normalized per row."""
    from ..interventions import ablated, suppress

    masks = group_masks(ctx, extra_groups)
    groups = list(masks)
    batches = ctx.batches()

    def group_losses() -> torch.Tensor:
        nll = torch.cat([token_nll(ctx.model, b).double().cpu() for b in batches])  # [N]
        return torch.stack([nll[m].nanmean() for m in masks.values()])

    if mode == "suppress":
        interventions = {c: (lambda c=c: suppress(ctx.model, ctx.cfg, c)) for c in ctx.concepts}
    else:
        interventions = {c: (lambda c=c: ablated(ctx.model, ctx.cfg, c)) for c in ctx.concepts}
    was_training = ctx.model.training
    ctx.model.eval()
    try:
        results = measure_entanglement(interventions, group_losses, groups, progress=ctx.progress)
    finally:
        ctx.model.train(was_training)
    results.update(mode=mode, group_sizes={g: int(m.sum()) for g, m in masks.items()})
    rows = [[a, *m] for a, m in zip(results["rows"], results["matrix"])]
    loss_rows = [["base", *results["base"]]] + [[f"{mode} {a}", *u] for a, u in zip(results["rows"], results["under"])]
    text = (f"## Entanglement ({mode})\n\nE[A, B] = ΔL_B / ΔL_A: change in group B's mean token loss when "
            f"concept A is removed, over A's own change (rows with no own increase are –). Group sizes: "
            f"{results['group_sizes']}.\n\n" + markdown_table(["removed A", *groups], rows)
            + "\n\nMean token loss per group:\n\n" + markdown_table(["condition", *groups], loss_rows))
    figure = plot_entanglement(results["rows"], groups, results["matrix"], f"Entanglement ({mode})")
    return Section(results, text, {"entanglement": figure})
