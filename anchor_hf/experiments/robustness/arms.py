"""The five arms every attack compares, built fresh on demand.

- `ablated`: the anchored model with the concept's direction removed from every residual
  write (`ablate`): a permanent weight edit;
- `redirected`: the anchored model with every residual write's concept component moved to
  its destination (`redirect_weights`, docs/method.md §10): the config's trained destination,
  or the untrained opposite pole when it names none; a permanent weight edit that replaces
  the concept with something definite instead of removing it;
- `suppressed`: the anchored model with `suppress` hooks at its anchored layers, which stay
  on while an attacker fine-tunes it (a deployed, hooked model);
- `posthoc`: the control model with a post-hoc difference-of-means direction ablated, the
  same edit without anchoring (the direction is fitted on the control's own states);
- `never`: the model trained without the concept's examples, the gold standard.

Each arm also names its `source`, the model before removal, whose loss is the level a
relearning attack tries to get back to (`never` uses the control: what learning the
concept is worth; `redirected` the anchored model, like `ablated`). Arms are built from
deep copies, so an attack can train one freely.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from anchor_hf.config import AnchorConfig
from anchor_hf.interventions import ablate, redirect_weights, suppress
from anchor_hf.probes.posthoc import mean_difference

ARMS = ("ablated", "redirected", "suppressed", "posthoc", "never")
REMOVALS = ("ablated", "redirected")  # the permanent edits of the anchored model, judged by the same targets


@dataclass
class Arm:
    """One arm: `make()` returns a fresh edited copy; `source` is `anchored` or `control`."""

    name: str
    make: Callable[[], nn.Module]
    source: str
    description: str


def posthoc_direction(pooled: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Difference of class means of the block outputs' pooled states, averaged over blocks `[D]`.

    `pooled` holds the residual slices of `extraction.pooled_states` (embedding first); the
    blocks are averaged, as in the GoEmotions evaluation's post-hoc ablation.
    """
    blocks = pooled[1:] if len(pooled) > 1 else pooled
    unit = [p / p.norm(dim=-1, keepdim=True).clamp_min(1e-12) for p in blocks]
    return mean_difference(torch.stack(unit).mean(0), labels)


def build_arms(anchored: nn.Module, cfg: AnchorConfig, concept: str, control: nn.Module, never: nn.Module,
               posthoc: torch.Tensor) -> dict[str, Arm]:
    """The five arms; `posthoc` is the control's post-hoc direction `[D]`."""
    destination = cfg.concept(concept).destination or "opposite"

    def ablated() -> nn.Module:
        model = copy.deepcopy(anchored)
        ablate(model, cfg, concept)
        return model.eval()

    def redirected() -> nn.Module:
        model = copy.deepcopy(anchored)
        redirect_weights(model, cfg, concept, to=destination)
        return model.eval()

    def suppressed() -> nn.Module:
        model = copy.deepcopy(anchored)
        suppress(model, cfg, concept)  # the handle is dropped on purpose: the hooks live as long as the copy
        return model.eval()

    def posthoc_ablated() -> nn.Module:
        model = copy.deepcopy(control)
        ablate(model, direction=posthoc)
        return model.eval()

    return {
        "ablated": Arm("ablated", ablated, "anchored", "anchored model, anchor direction ablated from every write"),
        "redirected": Arm("redirected", redirected, "anchored",
                          f"anchored model, every write's anchor component moved to {destination!r} (redirect_weights)"
                          + ("" if destination != "opposite" else ": the untrained opposite pole, no destination "
                             "was trained")),
        "suppressed": Arm("suppressed", suppressed, "anchored",
                          "anchored model, suppress hooks at the anchored layers (kept on while fine-tuning)"),
        "posthoc": Arm("posthoc", posthoc_ablated, "control",
                       "control model, post-hoc difference-of-means direction ablated from every write"),
        "never": Arm("never", lambda: copy.deepcopy(never).eval(), "control",
                     "never-saw-it model (trained without the concept's examples)"),
    }
