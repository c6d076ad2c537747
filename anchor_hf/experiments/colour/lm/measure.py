"""Where the concept sits in a colour LM: alignment, margin, containment, AUROC per layer (docs/method.md §6).

States are read at the anchored layers exactly as the regularizer saw them in training
(`probes.collect_states`) over the full training lines, and scored against the exact
labels (similarity ≥ 0.5). Each quantity is per layer:
- `containment`: mean cos(h, v̂) over every live position of every line;
- `margin`: mean over the target lines' positions minus containment;
- `auroc_max` / `auroc_mean`: detection of target lines by the max / mean of cos over
  the line's positions, no search (the pooled pull is a soft max of cos over the line,
  so the max is the detector matching the training objective);
- `auroc_answer`: the same at the last prompt position (the state that writes the answer);
- `margin_line_max`: margin of each line's max cos (target lines' mean minus all lines' mean),
  the margin at the positions the pooled pull acts on.
Retention comes from the training log (`retention_from_log`).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import torch
from torch import nn

from anchor_hf.config import AnchorConfig
from anchor_hf.geometry import concept_place
from anchor_hf.probes.alignment import containment, margin, retention
from anchor_hf.probes.detection import auroc, pool_alignment
from anchor_hf.probes.inputs import pad_batches
from anchor_hf.probes.posthoc import mean_difference
from anchor_hf.probes.states import LayerStates, collect_states
from anchor_hf.probes.suite import anchored_modules
from .task import ItemSet


def batches(lines: list[list[int]], pad_id: int, batch_size: int = 128) -> list[dict[str, torch.Tensor]]:
    """Right-padded batches of encoded lines, with attention masks."""
    return pad_batches(lines, pad_id, batch_size)


def read_states(model: nn.Module, cfg: AnchorConfig, concept: str, lines: list[list[int]], pad_id: int,
                keep_states: bool = False) -> LayerStates:
    """States of `lines` at `cfg`'s anchored layers, with cos against the concept's place."""
    place = concept_place(cfg.concept(concept), cfg.hidden_size)
    return collect_states(model, anchored_modules(model, cfg), batches(lines, pad_id), {concept: place},
                          keep_states=keep_states, progress=False)


def answer_positions(lines: list[list[int]], answer_length: int) -> torch.Tensor:
    """Index `[N]` of the last prompt position of each line (`answer_length` tokens + `<eos>` follow it)."""
    return torch.tensor([len(x) - answer_length - 2 for x in lines])


def layer_metrics(states: LayerStates, concept: str, items: ItemSet, answer_at: torch.Tensor) -> list[dict[str, float]]:
    """Per anchored layer: containment, margin, AUROC (max, mean, answer position)."""
    labels = items.target
    rows = []
    for layer, cos in enumerate(states.cos[concept]):
        live = states.live
        row = {"layer": states.names[layer], "containment": containment(cos, live),
               "margin": margin(cos, live, labels.float())}
        both = bool(labels.any()) and not bool(labels.all())
        at_answer = cos[torch.arange(len(cos)), answer_at]
        row["auroc_max"] = auroc(pool_alignment(cos, live, "max"), labels) if both else math.nan
        row["auroc_mean"] = auroc(pool_alignment(cos, live, "mean"), labels) if both else math.nan
        row["auroc_answer"] = auroc(at_answer, labels) if both else math.nan
        line_max = pool_alignment(cos, live, "max")  # [N]: the position the pooled pull acts on most
        row["margin_line_max"] = float(line_max[labels].mean() - line_max.mean()) if both else math.nan
        rows.append(row)
    return rows


def posthoc_directions(states: LayerStates, items: ItemSet) -> list[torch.Tensor]:
    """Difference-of-means direction `[D]` per layer from each line's mean unit state (docs/method.md §6 baseline)."""
    return [mean_difference(pooled, items.target) for pooled in states.pooled]


def retention_from_log(model_dir: str, concept: str) -> dict[str, float]:
    """Retention (final / peak) of the logged training margin `cos_labelled − cos_unlabelled`.

    The margin here uses the labels drawn per visit and is averaged over each logging window,
    so it is noisy where few labels fell in a window; windows without labels are skipped.
    """
    path = os.path.join(model_dir, "trainer_state.json")
    if not os.path.isfile(path):
        return {"retention": math.nan, "final_margin_log": math.nan}
    with open(path, encoding="utf-8") as f:
        history = json.load(f).get("log_history", [])
    lab, unlab = f"anchor/{concept}/cos_labelled", f"anchor/{concept}/cos_unlabelled"
    margins = [h[lab] - h[unlab] for h in history if lab in h and unlab in h]
    return {"retention": retention(margins), "final_margin_log": margins[-1] if margins else math.nan}


def summarize_layers(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Means over the anchored layers of each per-layer quantity."""
    keys = [k for k in rows[0] if k != "layer"]
    return {k: float(torch.tensor([r[k] for r in rows], dtype=torch.float64).nanmean()) for k in keys}
