"""The probes that intervene: steerability (steer at many doses) and entanglement (remove each concept).

Like `suite.py`, each `run_*` returns a `Section` with intervals, an optional control model's
numbers beside every value, a verdict per concept and figures; the math is in
`steerability.py`, `entanglement.py` and `uncertainty.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from ..layers import resolve_layers
from .entanglement import measure_entanglement
from .plots import plot_dose_response, plot_entanglement
from .report import markdown_table
from .scores import ReadoutAlignment, token_logprob, token_nll
from .steerability import dose_response, summarize_dose_response
from .suite import UNLABELLED, ProbeContext, Section
from .uncertainty import RESAMPLES
from .verdicts import entanglement_verdicts, fmt, steerability_verdicts

Score = Literal["contrast", "logprob", "alignment"]


# ---------------------------------------------------------------------- steerability
def _dose_table(ctx: ProbeContext, concept: str, doses: Sequence[float], score: Score,
                readout: nn.Module) -> torch.Tensor:
    """`[E, C]` scores of the concept's examples (or of every example, for `alignment`) under `steer`."""
    from ..interventions import steer

    positive = ctx.labels(concept) >= 0.5

    def measure(index: torch.Tensor | None, fn: Any) -> torch.Tensor:
        return dose_response(lambda dose: steer(ctx.model, ctx.cfg, concept, dose), fn, ctx.batches(index), doses,
                             progress=ctx.progress, desc=f"steer {concept}")

    if score == "alignment":
        basis, dims = ctx.places[concept]
        return measure(None, ReadoutAlignment(ctx.model, readout, basis, dims))
    logprob = lambda batch: token_logprob(ctx.model, batch)  # noqa: E731
    table = measure(torch.nonzero(positive).reshape(-1), logprob)
    if score == "contrast":
        table = table - measure(torch.nonzero(~positive).reshape(-1), logprob).nanmean(0, keepdim=True)
    return table


def run_steerability(ctx: ProbeContext, doses: Sequence[float], score: Score = "contrast",
                     readout_layer: int | str = -1, control: ProbeContext | None = None,
                     resamples: int = RESAMPLES, seed: int = 0) -> Section:
    """Dose–response of a concept score under `steer`: per-example slopes, the wrong-way fraction, intervals.

    `contrast`: log-likelihood of each concept example minus the mean log-likelihood of the
    other examples at the same dose. Any large push degrades every text, so the plain
    `logprob` of concept examples falls on both sides of dose 0; the contrast cancels that
    shared damage and keeps what is specific to the concept. `alignment`: mean cos(h, v) at
    the readout layer over every example, which rises with the dose if the push survives
    the layers between the anchored ones and the readout.
    """
    readout_name = resolve_layers(ctx.model, [readout_layer])[0][0]
    results: dict[str, Any] = {"doses": list(doses), "score": score, "concepts": {}, "resamples": resamples}
    if score == "alignment":
        results["readout_layer"] = readout_name

    def summary(c: ProbeContext, concept: str) -> dict[str, Any]:
        readout = resolve_layers(c.model, [readout_layer])[0][1]
        return summarize_dose_response(doses, _dose_table(c, concept, doses, score, readout), resamples=resamples,
                                       seed=seed)

    if control is not None:
        results["control"] = {concept: summary(control, concept) for concept in ctx.concepts}
    rows, curves = [], {}
    for concept in ctx.concepts:
        s = results["concepts"][concept] = summary(ctx, concept)
        b = results.get("control", {}).get(concept)
        curves[concept] = s if b is None else {**s, "control_mean": b["mean"]}
        rows.append([concept, s["examples"], fmt(s["slope_mean"], s["slope_mean_interval"]),
                     *([fmt(b["slope_mean"], b["slope_mean_interval"])] if b else []), s["slope_median"],
                     s["wrong_way_fraction"], s["monotone_fraction"], s["mean"][0], s["mean"][-1]])
    label = {"contrast": "log-prob of concept examples − others'", "logprob": "log-prob of concept examples",
             "alignment": f"mean cos(h, v) at {readout_name}"}[score]
    header = ["concept", "examples", "slope mean [95% CI]", *(["control slope mean"] if control else []),
              "slope median", "wrong-way fraction", "monotone fraction", f"score at c={min(doses):g}",
              f"score at c={max(doses):g}"]
    unit = "" if score == "alignment" else " (mean token log-likelihood per example)"
    text = (f"## Steerability\n\nScore: {label}{unit}, under `steer` (h + c·|h|·v at the anchored layers) for "
            f"doses {sorted(doses)}. Slopes are least-squares per example; wrong way = slope ≤ 0; monotone = rises "
            f"at every dose step. Intervals: 95% bootstrap over the examples ({resamples} resamples).\n\n"
            + markdown_table(header, rows))
    return Section(results, text, {"dose_response": plot_dose_response(curves, label)},
                   steerability_verdicts(results))


# ---------------------------------------------------------------------- entanglement
def group_masks(ctx: ProbeContext, extra_groups: Sequence[str]) -> dict[str, torch.Tensor]:
    """Group name -> `[N]` bool: each concept's labelled examples, each extra label column, and the rest."""
    masks = {c: ctx.labels(c) >= 0.5 for c in ctx.concepts}
    masks.update({g: ctx.data.labels[g] >= 0.5 for g in extra_groups if g not in masks})
    rest = ~torch.stack(list(masks.values())).any(0)
    if bool(rest.any()):
        masks[UNLABELLED] = rest
    return masks


def _entanglement(ctx: ProbeContext, mode: Literal["suppress", "ablate"], extra_groups: Sequence[str],
                  resamples: int, seed: int) -> dict[str, Any]:
    """`measure_entanglement` on the context's model, in eval mode, with per-example held-out losses."""
    from ..interventions import ablated, suppress

    masks = group_masks(ctx, extra_groups)
    batches = ctx.batches()
    losses = lambda: torch.cat([token_nll(ctx.model, b).double().cpu() for b in batches])  # noqa: E731  [N]
    if mode == "suppress":
        interventions = {c: (lambda c=c: suppress(ctx.model, ctx.cfg, c)) for c in ctx.concepts}
    else:
        interventions = {c: (lambda c=c: ablated(ctx.model, ctx.cfg, c)) for c in ctx.concepts}
    was_training = ctx.model.training
    ctx.model.eval()
    try:
        results = measure_entanglement(interventions, losses, masks, progress=ctx.progress, resamples=resamples,
                                       seed=seed)
    finally:
        ctx.model.train(was_training)
    results.update(mode=mode, group_sizes={g: int(m.sum()) for g, m in masks.items()})
    return results


def run_entanglement(ctx: ProbeContext, mode: Literal["suppress", "ablate"] = "suppress",
                     extra_groups: Sequence[str] = (), control: ProbeContext | None = None,
                     resamples: int = RESAMPLES, seed: int = 0) -> Section:
    """Held-out loss of every group while each concept is removed, normalized per row above the noise floor."""
    results = _entanglement(ctx, mode, extra_groups, resamples, seed)
    if control is not None:
        results["control"] = _entanglement(control, mode, extra_groups, resamples, seed)
    groups = results["groups"]
    rows = [[a, fmt(results["own_change"][a_i]), fmt(results["floor"][a_i]),
             *(["below the noise floor"] * len(groups) if results["suppressed"][a_i] else
               [fmt(v, iv) for v, iv in zip(results["matrix"][a_i], results["interval"][a_i])])]
            for a_i, a in enumerate(results["rows"])]
    deltas = [[f"{mode} {a}", *results["delta"][i]] for i, a in enumerate(results["rows"])]
    if control is not None:
        deltas += [[f"control: {mode} {a}", *results["control"]["delta"][i]] for i, a in enumerate(results["rows"])]
    text = (f"## Entanglement ({mode})\n\nE[A, B] = ΔL_B / ΔL_A: change in group B's mean token loss when concept "
            f"A is removed, over A's own change, with 95% bootstrap intervals ({resamples} resamples of the "
            f"examples). A row is reported only when A's own change is above its noise floor ({results['z']:g} "
            "standard errors of A's per-example changes); below it a ratio would be a ratio of noise. Group sizes: "
            f"{results['group_sizes']}.\n\n"
            + markdown_table(["removed A", "own ΔL_A", "noise floor", *groups], rows)
            + "\n\nMean token-loss change ΔL per group" + (" (and the control model's)" if control else "")
            + ":\n\n" + markdown_table(["condition", *groups], deltas)
            + "\n\nMean token loss per group:\n\n"
            + markdown_table(["condition", *groups], [["base", *results["base"]]]
                             + [[f"{mode} {a}", *u] for a, u in zip(results["rows"], results["under"])]))
    figure = plot_entanglement(results["rows"], groups, results["matrix"], f"Entanglement ({mode})",
                               intervals=results["interval"], suppressed=results["suppressed"])
    return Section(results, text, {"entanglement": figure}, entanglement_verdicts(results))
