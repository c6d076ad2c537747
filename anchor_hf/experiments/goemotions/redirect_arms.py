"""The interventions compared under redirect's measure on one seed (`redirect_eval` says what is measured).

Every arm acts at the anchored slices (the config's layers) of the model it edits:

| arm | model | edit |
|---|---|---|
| `redirect` | anchored | `redirect` to the config's destination (`untrained`: to the opposite pole) |
| `redirect_weights` | anchored | `redirect_weights`, the permanent edit of every residual write |
| `redirect_random` | anchored | the same edit along a seeded random unit direction r (to −r, or to the |
| | | trained destination made orthogonal to r): a model that reacts to any edit moves here too |
| `suppress` | anchored | `suppress` (projection out of v̂) |
| `leace_anchored` | anchored | LEACE fitted per token at each slice on the anchored model |
| `leace` | control | LEACE fitted per token at each slice on the control |
| `posthoc_suppress` | control | difference-of-means direction per slice, projected out |
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

import torch
from torch import nn

from anchor_hf.config import AnchorConfig
from anchor_hf.geometry import concept_place
from anchor_hf.interventions import erase, redirect, redirect_weights, suppress
from anchor_hf.layers import resolve_layers
from anchor_hf.probes import collect_states, fit_leace_eraser
from .redirect_eval import Context, RedirectData, continue_and_score
from .redirect_reading import comment_nll

ANCHORED_ARMS = ("redirect", "redirect_weights", "redirect_random", "suppress", "leace_anchored")
CONTROL_ARMS = ("leace", "posthoc_suppress")
EXAMPLES = 8  # continuations kept per arm for the report


def leace_erasers(model: nn.Module, layers: Sequence[int], batches: list[dict[str, torch.Tensor]],
                  labels: torch.Tensor) -> list[Any]:
    """One LEACE eraser per layer, fitted on every live token's state with its comment's label `[N]`."""
    states = collect_states(model, resolve_layers(model, list(layers)), batches, keep_states=True, progress=False)
    token_labels = labels[:, None].expand_as(states.live)[states.live].float()  # [tokens]
    return [fit_leace_eraser(h[states.live], token_labels) for h in states.states]


def stacked(make: Any, layers: Sequence[int], per_layer: Sequence[Any]) -> Context:
    """A context entering `make(item, layer)` for each layer with its own eraser or direction."""
    def enter() -> AbstractContextManager[Any]:
        stack = ExitStack()
        for layer, item in zip(layers, per_layer):
            stack.enter_context(make(item, layer))
        return stack
    return enter


def random_destination(cfg: AnchorConfig, concept: str, r: torch.Tensor, to: str | None) -> Any:
    """The random arm's destination, the same geometry as the real one: `"opposite"` (`-r`) when the real
    destination is the concept's opposite pole, else the trained destination made orthogonal to `r`."""
    target = cfg.concept(concept).destination if to is None else to
    if target == "opposite":
        return "opposite"
    v_hat = concept_place(cfg.concept(concept), cfg.hidden_size)[0][:, 0]
    d = concept_place(cfg.concept(target), cfg.hidden_size)[0][:, 0]
    if float(d @ v_hat) < -0.5:  # the destination shares the concept's axis, at its opposite pole
        return "opposite"
    d = d - (d @ r) * r
    return d / d.norm()


def anchored_contexts(model: nn.Module, cfg: AnchorConfig, concept: str, to: str | None, layers: list[int],
                      erasers: list[Any], seed: int) -> dict[str, Context]:
    """The reversible arms on the anchored model (`redirect_weights` is a weight edit: see `evaluate_redirect`)."""
    r = torch.randn(cfg.hidden_size, generator=torch.Generator().manual_seed(10_000 + seed))
    r = r / r.norm()
    random_to = random_destination(cfg, concept, r, to)
    return {"redirect": lambda: redirect(model, cfg, concept, to=to),
            "redirect_random": lambda: redirect(model, direction=r, to=random_to, layers=layers),
            "suppress": lambda: suppress(model, cfg, concept),
            "leace_anchored": stacked(lambda e, layer: erase(model, e, layers=[layer]), layers, erasers)}


def evaluate_redirect(run: Any, prepared: Any, data: Any, seed: int, rate: float, log: Any = print) -> dict[str, Any]:
    """Continuations (per prompt) and held-out NLLs (per comment) of every arm on one seed, for the bootstrap."""
    from .evaluate import load_trained, posthoc_directions

    rd: RedirectData = prepared.redirect
    folder = run.model_dir("anchored", seed, rate)
    model, control = (load_trained(f, prepared.base_path) for f in (folder, run.model_dir("control", seed)))
    cfg, concept = AnchorConfig.from_pretrained(folder), run.concepts[0].column
    to = None if rd.plan.is_trained else "opposite"
    layers = [int(x) for x in cfg.layers]
    fit = data.posthoc_fit
    labels = torch.tensor([rd.plan.concept.holds(c) for c in fit])
    log("[goemotions]   redirect: LEACE erasers and post-hoc directions")
    erasers = {"anchored": leace_erasers(model, layers, data.batches(fit), labels),
               "control": leace_erasers(control, layers, data.batches(fit), labels)}
    directions, _ = posthoc_directions(control, data, layers)

    def run_arm(edited: nn.Module, context: Context = nullcontext) -> tuple[dict[str, Any], dict[str, Any]]:
        """(continuations of E prompts, NLL of held-out E and F comments) under `context`."""
        with context():
            reading = {side: comment_nll(edited, ids, pad, batch)
                       for side, ids in (("concept", rd.concept_comments), ("destination", rd.destination_comments))}
        return continue_and_score(edited, rd.concept_prompts, rd, control, context).to_json(EXAMPLES), reading

    pad, batch = rd.tokenizer.pad_token_id, rd.settings.eval_batch_size
    out: dict[str, Any] = {"seed": seed, "arms": {}, "unedited": {}, "destination": {},
                           "reading": {"arms": {}, "unedited": {}}}
    log("[goemotions]   redirect: unedited continuations of both prompt sets")
    for name, edited in (("anchored", model), ("control", control)):
        out["unedited"][name], out["reading"]["unedited"][name] = run_arm(edited)
        out["destination"][name] = continue_and_score(edited, rd.destination_prompts, rd, control).to_json(EXAMPLES)
    contexts = anchored_contexts(model, cfg, concept, to, layers, erasers["anchored"], seed)
    contexts["leace"] = stacked(lambda e, layer: erase(control, e, layers=[layer]), layers, erasers["control"])
    contexts["posthoc_suppress"] = stacked(lambda d, layer: suppress(control, direction=d, layers=[layer]),
                                           layers, directions)
    for name, context in contexts.items():
        log(f"[goemotions]   redirect: arm {name}")
        edited = control if name in CONTROL_ARMS else model
        out["arms"][name], out["reading"]["arms"][name] = run_arm(edited, context)
    permanent = copy.deepcopy(model)
    redirect_weights(permanent, cfg, concept, to=to)
    out["arms"]["redirect_weights"], out["reading"]["arms"]["redirect_weights"] = run_arm(permanent)
    out["prompt_examples"] = rd.tokenizer.batch_decode(rd.concept_prompts[:EXAMPLES].tolist())
    out["destination_label"] = cfg.concept(concept).destination if to is None else to
    return out
