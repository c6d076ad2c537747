"""Evaluate one anchored model beside its un-anchored control on a colour corpus (one seed).

Everything the report needs comes from here: task metrics (memorized and held-out RGB
error; exact match on held-out mixing lines), the per-layer geometry of the concept in
every model (the control with the same fixed axis), and the interventions: along the
anchor in the anchored models (suppress, repel, ablate, redirect and its random-direction
control; the model without a destination redirected to its untrained opposite pole), along
post-hoc difference-of-means directions in the control, and LEACE at every anchored slice
of the anchored model and the control (docs/method.md §5, §6; docs/method.md §10).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from anchor_hf.config import OPPOSITE, AnchorConfig
from anchor_hf.geometry import concept_place
from anchor_hf.probes.posthoc import mean_difference
from ..spec import ColourSpec
from ..target import DEFAULT_DESTINATION, parse_target
from .decode import rgb_error
from .aware import AWARE_FILE
from .effects import anchored_interventions, measure_effects, posthoc_interventions, remaining
from .leace import fit_erasers, leace_intervention
from .measure import answer_positions, layer_metrics, posthoc_directions, read_states, retention_from_log, \
    summarize_layers
from .task import ColourTask, ItemSet

ANSWER_LENGTH = {"names": 6, "mixing": 1}


def load(model_dir: str) -> tuple[Any, Any, AnchorConfig]:
    """(model in eval mode, tokenizer, anchor config) saved by `anchor-hf train`."""
    from anchor_hf.io import load_model, load_tokenizer

    return load_model(model_dir), load_tokenizer(model_dir), AnchorConfig.from_pretrained(model_dir)


def task_metrics(model: Any, tokenizer: Any, task: ColourTask) -> dict[str, float | None]:
    """Memorized and held-out RGB error, and held-out exact match for mixing."""
    out: dict[str, float | None] = {}
    for split, items in (("train", task.train), ("heldout", task.heldout)):
        rgb, words = task.answer(model, tokenizer, items.items)
        out[f"{split}_error"] = float(rgb_error(rgb, items.rgb).mean())
        out[f"{split}_exact_match"] = task.exact_match(words, items.items)
    return out


def evaluate_pair(anchored_dir: str, control_dir: str, spec: ColourSpec, concept: str,
                  nodest_dir: str | None = None, seed: int = 0,
                  falloff: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """All measurements of one seed; tensors kept under `raw` for figures.

    `anchored_dir` holds the anchored model (trained with a destination when the run has
    one), `nodest_dir` the same recipe without a destination (redirected to its untrained
    opposite pole), `control_dir` the un-anchored control. Every intervention reports
    `remaining` toward the run's destination colour (`#808080` for the untrained opposite pole).
    """
    task = ColourTask(spec)
    destination = torch.tensor(parse_target(spec.destination or DEFAULT_DESTINATION).rgb)
    items = task.train
    at_destination = rgb_error(destination.expand_as(items.rgb), items.rgb)[items.target].mean()
    result: dict[str, Any] = {"raw": {}, "destination_rgb": destination.tolist(),
                              "destination_target_error": float(at_destination)}  # every answer at the destination
    models = [("anchored", anchored_dir), ("control", control_dir)]
    if nodest_dir is not None:
        models.insert(1, ("nodest", nodest_dir))
    for kind, model_dir in models:
        entry, raw = _evaluate_model(kind, model_dir, task, concept, destination, seed, falloff)
        result[kind], result["raw"][kind] = entry, raw
    result["raw"]["task"] = task
    return result


def withheld_split(model_dir: str, task: ColourTask) -> torch.Tensor | None:
    """`[N]` bool over the memorized items: the names an intervention-aware model never saw redirected."""
    path = os.path.join(model_dir, AWARE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        names = set(json.load(f)["withheld"])
    return torch.tensor([item.name in names for item in task.train.items])


def remaining_parts(pred: torch.Tensor, task: ColourTask, withheld: torch.Tensor,
                    destination: torch.Tensor) -> dict[str, float]:
    """`remaining_withheld` and `remaining_trained`: remaining over the two parts of the target group."""
    items = task.train
    return {f"remaining_{part}": remaining(pred, ItemSet(items.items, items.rgb, items.sim, items.target & mask),
                                           destination)
            for part, mask in (("withheld", withheld), ("trained", ~withheld))}


def _evaluate_model(kind: str, model_dir: str, task: ColourTask, concept: str, destination: torch.Tensor,
                    seed: int, falloff: tuple[float, float, float] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Task metrics, geometry and interventions of one model (`anchored`, `nodest` or `control`)."""
    model, tokenizer, cfg = load(model_dir)
    lines, items = task.state_lines(tokenizer)
    states = read_states(model, cfg, concept, lines, tokenizer.pad_token_id, keep_states=True)
    at = answer_positions(lines, ANSWER_LENGTH["mixing" if task.is_mixing else "names"])
    layers = layer_metrics(states, concept, items, at)
    entry: dict[str, Any] = {**task_metrics(model, tokenizer, task), "layers": layers, **summarize_layers(layers)}
    basis = concept_place(cfg.concept(concept), cfg.hidden_size)[0]
    answer_states = states.states[-1][torch.arange(len(lines)), at]  # [N, D] last anchored layer
    if kind == "control":
        directions = posthoc_directions(states, items)
        pooled = mean_difference(torch.cat(states.pooled), items.target.repeat(len(states.pooled)))
        entry["posthoc_cos_with_axis"] = [float(d @ basis[:, 0]) for d in directions]
        interventions = posthoc_interventions(cfg, directions, pooled)
    else:
        entry.update(retention_from_log(model_dir, concept))
        redirect_to = OPPOSITE if kind == "nodest" else cfg.concept(concept).destination
        interventions = anchored_interventions(cfg, concept, redirect_to, seed, falloff)
        if kind == "nodest":  # the arm without a destination: its own suppression and the untrained redirect
            interventions = {k: v for k, v in interventions.items() if k in ("suppress", "redirect", "redirect_random")}
    if kind != "nodest":
        interventions["leace"] = (leace_intervention(cfg, fit_erasers(states, items.target)), 2)
    effects = measure_effects(model, tokenizer, task, interventions, destination)
    entry["effects"] = {k: {m: v for m, v in e.items() if m not in ("rgb", "error")} for k, e in effects.items()
                        if k != "base"}
    withheld = withheld_split(model_dir, task)
    for name in ("redirect", "redirect_random"):
        if withheld is not None and name in effects:
            entry["effects"][name].update(remaining_parts(effects[name]["rgb"], task, withheld, destination))
    raw = {"effects": effects, "answer_states": answer_states, "basis": basis, "state_rgb": items.rgb}
    return entry, raw
