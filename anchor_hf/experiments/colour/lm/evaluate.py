"""Evaluate one anchored model beside its un-anchored control on a colour corpus (one seed).

Everything the report needs comes from here: task metrics (memorized and held-out RGB
error; exact match on held-out mixing lines), the per-layer geometry of the concept in
both models (the control with the same fixed axis), and the interventions: along the
anchor in the anchored model, along post-hoc difference-of-means directions in the
control (METHOD.md §5, §6).
"""

from __future__ import annotations

from typing import Any

import torch

from anchor_hf.config import AnchorConfig
from ..spec import ColourSpec
from anchor_hf.geometry import direction_basis
from anchor_hf.probes.posthoc import mean_difference
from .decode import rgb_error
from .effects import anchored_interventions, measure_effects, posthoc_interventions
from .measure import answer_positions, layer_metrics, posthoc_directions, read_states, retention_from_log, \
    summarize_layers
from .task import ColourTask

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


def evaluate_pair(anchored_dir: str, control_dir: str, spec: ColourSpec, concept: str) -> dict[str, Any]:
    """All measurements of one seed; tensors kept under `raw` for figures."""
    task = ColourTask(spec)
    answer_length = ANSWER_LENGTH["mixing" if task.is_mixing else "names"]
    result: dict[str, Any] = {"raw": {}}
    for kind, model_dir in (("anchored", anchored_dir), ("control", control_dir)):
        model, tokenizer, cfg = load(model_dir)
        lines, items = task.state_lines(tokenizer)
        states = read_states(model, cfg, concept, lines, tokenizer.pad_token_id, keep_states=True)
        at = answer_positions(lines, answer_length)
        layers = layer_metrics(states, concept, items, at)
        entry: dict[str, Any] = {**task_metrics(model, tokenizer, task), "layers": layers,
                                 **summarize_layers(layers)}
        c = cfg.concept(concept)
        basis = direction_basis(c.dims, c.vector, cfg.hidden_size)
        answer_states = states.states[-1][torch.arange(len(lines)), at]  # [N, D] last anchored layer
        if kind == "anchored":
            entry.update(retention_from_log(model_dir, concept))
            effects = measure_effects(model, tokenizer, task, anchored_interventions(cfg, concept))
        else:
            directions = posthoc_directions(states, items)
            pooled = mean_difference(torch.cat(states.pooled), items.target.repeat(len(states.pooled)))
            entry["posthoc_cos_with_axis"] = [float(d @ basis[:, 0]) for d in directions]
            effects = measure_effects(model, tokenizer, task, posthoc_interventions(cfg, directions, pooled))
        entry["effects"] = {k: {m: v for m, v in e.items() if m not in ("rgb", "error")} for k, e in effects.items()
                            if k != "base"}
        result[kind] = entry
        result["raw"][kind] = {"effects": effects, "answer_states": answer_states, "basis": basis,
                               "state_rgb": items.rgb}
    result["raw"]["task"] = task
    return result
