"""What an intervention does to each colour: error per colour vs similarity to the target (docs/method.md §5, §6).

For the anchored model: suppression (full projection at every anchored layer), repulsion
(rotate to alignment 0, keeping the norm), directional ablation (every residual write
orthogonalized against v̂, restored after) and, when asked, `redirect` to a destination with its
negative control, the same redirect along a random direction (docs/method.md §10). For the
control model, the same interventions along post-hoc difference-of-means directions (one per
layer; ablation, which edits every write with one direction, uses the direction of all
layers' states together).

With a destination colour `d`, every intervention also reports `remaining`: over the target
group, `mean_i |a_i − d|² / mean_i |c_i − d|²` (answers `a_i`, own colours `c_i`): 0 when every
answer is the destination, 1 when nothing moved, above 1 when answers moved elsewhere.

Selectivity is reported as docs/method.md §6's triple, per intervention:
- efficacy: the target group's error under the intervention (`target_error`, from `target_base`);
- contrast: `ratio`, the target group's error rise over the size of the rise on colours with similarity
  < 0.1 (`anchor_hf.probes.selectivity_ratio`), the latter floored at `RISE_FLOOR` in units of
  mean squared RGB error (one hex step of error is ≈ 1e-5) so a ratio stays finite when
  dissimilar colours do not move at all;
- grading: `r2`, R² of each colour's error rise against similarity² (suppression, repulsion)
  or similarity³ (ablation) under a least-squares line (`anchor_hf.probes.r_squared`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from anchor_hf.config import OPPOSITE, AnchorConfig
from anchor_hf.geometry import concept_place
from anchor_hf.interventions import ablated, redirect, repel, suppress
from anchor_hf.probes import r_squared, selectivity_ratio
from .decode import rgb_error
from .task import ColourTask, ItemSet

DISSIMILAR = 0.1  # similarity below which a colour counts as dissimilar
RISE_FLOOR = 1e-4  # mean squared RGB error: (2.55/255)² = 1e-4, so 2.5 hex steps off on every channel
BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.85, 1.01)  # similarity bins of the graded error-rise table


def selectivity(base: torch.Tensor, under: torch.Tensor, items: ItemSet, power: int = 2) -> dict[str, float]:
    """Efficacy, contrast and grading of one intervention from per-colour errors `[N]` before/after."""
    rise = under - base
    dissimilar = items.sim < DISSIMILAR
    target_rise = float(rise[items.target].mean())
    other_rise = float(rise[dissimilar].mean())
    return {"target_base": float(base[items.target].mean()), "target_error": float(under[items.target].mean()),
            "target_rise": target_rise, "dissimilar_rise": other_rise,
            "ratio": selectivity_ratio(target_rise, other_rise, RISE_FLOOR),
            "r2": r_squared(items.sim.pow(power), rise), "mean_error": float(under.mean()),
            "rise_by_similarity": rise_by_similarity(rise, items.sim)}


def rise_by_similarity(rise: torch.Tensor, sim: torch.Tensor) -> dict[str, float]:
    """Mean error rise per similarity bin (`BINS`), keyed `lo-hi`; NaN for an empty bin."""
    out = {}
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        inside = (sim >= lo) & (sim < hi)
        out[f"{lo:g}-{min(hi, 1.0):g}"] = float(rise[inside].mean()) if bool(inside.any()) else float("nan")
    return out


Intervention = Callable[[nn.Module], AbstractContextManager[Any]]


def remaining(pred: torch.Tensor, items: ItemSet, destination_rgb: torch.Tensor) -> float:
    """`mean_i |a_i − d|² / mean_i |c_i − d|²` over the target group (1: unmoved, 0: all at `d`)."""
    d = destination_rgb.reshape(1, 3).float()
    target = items.target
    moved = (pred[target].float() - d).pow(2).sum(-1).mean()
    start = (items.rgb[target].float() - d).pow(2).sum(-1).mean()
    return float(moved / start.clamp_min(1e-12))


def anchored_interventions(cfg: AnchorConfig, concept: str, redirect_to: str | None = None,
                           seed: int = 0, falloff: tuple[float, float, float] | None = None
                           ) -> dict[str, tuple[Intervention, int]]:
    """name -> (context manager on a model, power of the similarity R² uses).

    With `redirect_to` (a destination concept of `cfg`, or "opposite") also `redirect` there
    and `redirect_random`: the same redirect with the concept's direction (and an orthogonal
    destination's) replaced by random unit directions orthogonal to both, seeded by `seed`.
    Both use `falloff` (None: the full redirect).
    """
    out = {"suppress": (lambda m: suppress(m, cfg, concept), 2),
           "repel": (lambda m: repel(m, cfg, concept, target=0.0), 2),
           "ablate": (lambda m: ablated(m, cfg, concept), 3)}
    if redirect_to is not None:
        out["redirect"] = (lambda m: redirect(m, cfg, concept, to=redirect_to, falloff=falloff), 2)
        u, to = random_redirect(cfg, concept, redirect_to, seed)
        layers = cfg.resolved_layers or cfg.layers
        out["redirect_random"] = (lambda m: redirect(m, direction=u, to=to, layers=layers, falloff=falloff), 2)
    return out


def random_redirect(cfg: AnchorConfig, concept: str, redirect_to: str, seed: int
                    ) -> tuple[torch.Tensor, torch.Tensor | str]:
    """A random unit direction `u` and its destination: `"opposite"`, or a random `w` ⊥ u, both ⊥ v̂ and d̂.

    The negative control of a redirect: it moves states by the same rule but not along the
    concept, so answers should not move toward the destination (a model that had learned to
    read "an edit happened" rather than the place would move them anyway).
    """
    width = cfg.hidden_size
    keep = [concept_place(cfg.concept(concept), width)[0]]
    if redirect_to != OPPOSITE:
        keep.append(concept_place(cfg.concept(redirect_to), width)[0])
    taken = torch.cat(keep, 1)  # [D, 1 or 2]
    g = torch.Generator().manual_seed(seed)
    draws = torch.randn(width, 2, generator=g)
    draws = draws - taken @ (taken.T @ draws)  # orthogonal to the concept and its destination
    q, _ = torch.linalg.qr(draws)
    return q[:, 0], (OPPOSITE if redirect_to == OPPOSITE else q[:, 1])


def posthoc_interventions(cfg: AnchorConfig, directions: Sequence[torch.Tensor],
                          pooled_direction: torch.Tensor) -> dict[str, tuple[Intervention, int]]:
    """The same interventions along post-hoc directions, one per anchored layer."""
    layers = cfg.resolved_layers or cfg.layers

    def per_layer(make: Callable[..., Any]) -> Intervention:
        def enter(m: nn.Module) -> AbstractContextManager[Any]:
            stack = ExitStack()
            for layer, d in zip(layers, directions):
                stack.enter_context(make(m, layers=[layer], direction=d))
            return stack
        return enter

    return {"suppress": (per_layer(lambda m, **kw: suppress(m, **kw)), 2),
            "repel": (per_layer(lambda m, **kw: repel(m, target=0.0, **kw)), 2),
            "ablate": (lambda m: ablated(m, direction=pooled_direction), 3)}


def measure_effects(model: nn.Module, tokenizer: Any, task: ColourTask,
                    interventions: dict[str, tuple[Intervention, int]],
                    destination_rgb: torch.Tensor | None = None) -> dict[str, Any]:
    """Per-colour answers and errors on the memorized items, bare and under each intervention.

    Returns `{"base": {"rgb", "error"}, name: {"rgb", "error", **selectivity}}`, with
    `remaining` (toward `destination_rgb`) in every intervention's entry when it is given.
    """
    items = task.train
    rgb, _ = task.answer(model, tokenizer, items.items)
    base = rgb_error(rgb, items.rgb)
    out: dict[str, Any] = {"base": {"rgb": rgb, "error": base}}
    for name, (enter, power) in tqdm(interventions.items(), desc="interventions", leave=False):
        with enter(model):  # hooks removed, or weights restored, on exit
            pred, _ = task.answer(model, tokenizer, items.items)
        err = rgb_error(pred, items.rgb)
        out[name] = {"rgb": pred, "error": err, **selectivity(base, err, items, power)}
        if destination_rgb is not None:
            out[name]["remaining"] = remaining(pred, items, destination_rgb)
    return out


__all__ = ["selectivity", "remaining", "anchored_interventions", "random_redirect", "posthoc_interventions",
           "measure_effects"]
