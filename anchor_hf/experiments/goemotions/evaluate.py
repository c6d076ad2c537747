"""Evaluate one seed: detection, suppression/ablation effects, efficacy, entanglement, steering, task cost.

Every quantity is measured the same way on the anchored model (along its anchor) and on
the post-hoc baseline (difference-of-means directions on the control model, recipe A, or
on the pre-fine-tune model, recipe B), on held-out test comments with exact labels:

- detection: AUROC of an example's mean alignment `mean_t cos(h_t, v̂)` per layer;
- effects: change of per-token NLL on concept vs non-concept comments under `suppress`
  (full projection at the anchored layers) and `ablate` (every residual write
  orthogonalized, restored after); selectivity ratio = Δconcept / max(|Δother|, `RISE_FLOOR`)
  (`anchor_hf.probes.selectivity_ratio`, the floor in nats);
- efficacy = (NLL of concept comments under the intervention − anchored NLL) ÷
  (never-saw-it NLL − control NLL): the share of "never having seen it" the removal reaches;
- entanglement `ΔL_B / ΔL_A` for related and unrelated emotions (label hierarchy);
- steering: a held-out bag-of-words classifier's concept score of greedy continuations
  as the steer dose grows; task cost: held-out perplexity ratios.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from anchor_hf.config import AnchorConfig
from anchor_hf.errors import AnchorDataError
from .data import EKMAN, LABELS, SENTIMENT, Comment, EmotionConcept, encode_comments, resolve_concept
from anchor_hf.geometry import direction_basis
from anchor_hf.interventions import ablated, steer, suppress
from anchor_hf.layers import resolve_layers
from anchor_hf.probes.detection import auroc, pool_alignment
from anchor_hf.probes.entanglement import entanglement_matrix
from anchor_hf.probes.inputs import pad_batches
from anchor_hf.probes.posthoc import mean_difference
from anchor_hf.probes.scores import token_nll
from anchor_hf.probes.selectivity import selectivity_ratio
from anchor_hf.probes.states import collect_states
from anchor_hf.probes.steerability import summarize_dose_response
from .builder import GoEmotionsEvaluation
from .classifier import BagOfWords

RISE_FLOOR = 1e-3  # nats per token: a non-concept change smaller than this counts as this, so the ratio stays finite


@dataclass
class EvalData:
    """The held-out comments every model is measured on, and the classifier that scores generations."""

    concept: EmotionConcept
    heldout: list[Comment]  # random test comments: perplexity
    concept_test: list[Comment]  # test comments with the concept
    other_test: list[Comment]  # test comments without it
    groups: dict[str, list[Comment]]  # emotion -> test comments with it but without the concept
    related: dict[str, bool]  # emotion -> shares an Ekman or sentiment group with the concept
    posthoc_fit: list[Comment]  # training comments for post-hoc directions
    prompts: torch.Tensor  # [P, k] token ids of prompt prefixes (non-concept test comments)
    classifier: BagOfWords
    classifier_auroc: float  # of the classifier on the test split
    settings: GoEmotionsEvaluation
    max_length: int  # tokens per comment, as in training
    tokenizer: Any

    @classmethod
    def build(cls, splits: dict[str, list[Comment]], concept: EmotionConcept, settings: GoEmotionsEvaluation,
              max_length: int, tokenizer: Any) -> EvalData:
        rng = random.Random(0)
        test, train = splits["test"], splits["train"]
        yes = [c for c in test if concept.holds(c)]
        no = [c for c in test if not concept.holds(c)]
        cap = settings.eval_examples
        concept_test = rng.sample(yes, min(len(yes), max(1, cap // 4)))
        other_test = rng.sample(no, min(len(no), cap))
        heldout = rng.sample(test, min(len(test), cap))
        groups, related = {}, {}
        if not yes:
            raise AnchorDataError(f"the test split has no comment with the concept {concept.name!r}; nothing to "
                                  "evaluate it on")
        for name in settings.entanglement_groups:
            group = resolve_concept(name)
            members = [c for c in test if group.holds(c) and not concept.holds(c)]
            if not members:  # an empty group would reach the tokenizer as an empty batch
                raise AnchorDataError(f"entanglement group {name!r} has no test comment without the concept "
                                      f"{concept.name!r}; drop it from `entanglement_groups`")
            groups[name] = rng.sample(members, min(len(members), max(1, cap // 4)))
            related[name] = _related(concept, group)
        train_yes = [c for c in train if concept.holds(c)]
        train_no = [c for c in train if not concept.holds(c)]
        n_yes = min(len(train_yes), settings.posthoc_examples // 3)
        posthoc_fit = rng.sample(train_yes, n_yes) + rng.sample(train_no, settings.posthoc_examples - n_yes)
        k = settings.steer_prompt_tokens
        prompts = []
        for c in rng.sample(no, len(no)):
            ids = tokenizer(c.text, add_special_tokens=False)["input_ids"]
            if len(ids) >= k + 2:
                prompts.append(ids[:k])
            if len(prompts) == settings.steer_prompts:
                break
        if not prompts:
            raise AnchorDataError(f"no test comment without the concept has {k + 2} tokens or more, so there is no "
                                  f"steering prompt of `steer_prompt_tokens` = {k}")
        classifier = BagOfWords.fit([c.text for c in train], [int(concept.holds(c)) for c in train])
        scores = classifier.score([c.text for c in test])
        clf_auroc = auroc(scores, torch.tensor([concept.holds(c) for c in test]))
        return cls(concept, heldout, concept_test, other_test, groups, related, posthoc_fit,
                   torch.tensor(prompts, dtype=torch.long), classifier, clf_auroc, settings, max_length, tokenizer)

    def batches(self, comments: Sequence[Comment]) -> list[dict[str, torch.Tensor]]:
        """Right-padded model inputs, tokenized as in training (end-of-text token appended)."""
        ids = encode_comments(self.tokenizer, [c.text for c in comments], self.max_length)
        return pad_batches(ids, self.tokenizer.pad_token_id, self.settings.eval_batch_size)


def _related(concept: EmotionConcept, group: EmotionConcept) -> bool:
    """Whether two concepts share an Ekman group or a sentiment group (the label hierarchy)."""
    for grouping in (EKMAN, SENTIMENT):
        for members in grouping.values():
            ids = {LABELS.index(x) for x in members}
            if ids & concept.members and ids & group.members and "neutral" not in members:
                return True
    return False


# ---------------------------------------------------------------------- measurements
def mean_nll(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> float:
    """Token-weighted mean next-token NLL over all examples (log of the perplexity)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            nll = token_nll(model, batch)
            n = (batch["attention_mask"][:, 1:] & batch["attention_mask"][:, :-1]).sum(-1)
            keep = n > 0
            total += float((nll[keep] * n[keep]).sum())
            count += int(n[keep].sum())
    return total / max(count, 1)


def pooled_states(model: nn.Module, layers: Sequence[int],
                  batches: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """Per layer `[N, D]`: each example's mean unit state (its mean alignment with any v̂ is `pooled @ v̂`)."""
    modules = resolve_layers(model, list(layers))
    return collect_states(model, modules, batches, progress=False).pooled


def layer_aurocs(pooled: list[torch.Tensor], directions: Sequence[torch.Tensor], labels: torch.Tensor) -> list[float]:
    """AUROC per layer of the mean alignment with that layer's direction."""
    return [auroc(p @ d, labels) for p, d in zip(pooled, directions)]


def selectivity(base: dict[str, float], under: dict[str, float]) -> dict[str, float]:
    """Rises of concept and other NLL and their ratio (the size of the other rise floored at `RISE_FLOOR`)."""
    rise_c = under["concept"] - base["concept"]
    rise_o = under["other"] - base["other"]
    return {"concept_rise": rise_c, "other_rise": rise_o, "ratio": selectivity_ratio(rise_c, rise_o, RISE_FLOOR)}


def group_nlls(model: nn.Module, data: EvalData, cache: dict[str, Any]) -> dict[str, float]:
    """Mean NLL of the concept, other and each entanglement group."""
    if "batches" not in cache:
        cache["batches"] = {"concept": data.batches(data.concept_test), "other": data.batches(data.other_test),
                            **{g: data.batches(c) for g, c in data.groups.items()}}
    return {name: mean_nll(model, b) for name, b in cache["batches"].items()}


def generate_scores(model: nn.Module, data: EvalData,
                    context: Callable[[], AbstractContextManager[Any]]) -> torch.Tensor:
    """Classifier concept score `[P]` of each prompt's greedy continuation under `context()`."""
    prompts = data.prompts
    with torch.no_grad(), context():
        out = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                             max_new_tokens=data.settings.steer_new_tokens, pad_token_id=data.tokenizer.pad_token_id,
                             eos_token_id=None)
    texts = data.tokenizer.batch_decode(out[:, prompts.shape[1]:], skip_special_tokens=True)
    return data.classifier.score(texts)


def dose_curve(model: nn.Module, data: EvalData, steer_at: Callable[[float], AbstractContextManager[Any]]
               ) -> dict[str, Any]:
    doses = list(data.settings.steer_doses)
    scores = torch.stack([generate_scores(model, data, lambda d=d: steer_at(d)) for d in doses], dim=1)  # [P, C]
    return summarize_dose_response(doses, scores)


def measure_removals(model: nn.Module, data: EvalData, suppress_at: Callable[[], AbstractContextManager[Any]],
                     ablate_at: Callable[[], AbstractContextManager[Any]]) -> dict[str, Any]:
    """Group NLLs bare, under suppression and ablated (weights restored after), and their selectivity."""
    cache: dict[str, Any] = {}
    base = group_nlls(model, data, cache)
    with suppress_at():
        supp = group_nlls(model, data, cache)
    with ablate_at():
        abl = group_nlls(model, data, cache)
    return {"base": base, "suppress": supp, "ablate": abl,
            "suppress_selectivity": selectivity(base, supp), "ablate_selectivity": selectivity(base, abl)}


def entanglement(removals: dict[str, Any], data: EvalData, concept_key: str = "concept") -> dict[str, Any]:
    """`ΔL_B / ΔL_A` per group under suppression and ablation; related vs unrelated means."""
    groups = [concept_key, *data.groups]
    base = torch.tensor([removals["base"][g] for g in groups])
    out: dict[str, Any] = {"groups": groups, "related": data.related}
    for kind in ("suppress", "ablate"):
        under = torch.tensor([[removals[kind][g] for g in groups]])
        row = entanglement_matrix(base, under, [0])["matrix"][0].tolist()
        rel = [v for g, v in zip(groups[1:], row[1:]) if data.related[g]]
        unrel = [v for g, v in zip(groups[1:], row[1:]) if not data.related[g]]
        out[kind] = {"row": row, "related_mean": _mean(rel), "unrelated_mean": _mean(unrel)}
    return out


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def efficacy(rise: float, anchored_nll: float, control_nll: float, neversaw_nll: float) -> float:
    """Share of the never-saw-it gap that a removal reaches: rise ÷ (never-saw NLL − control NLL)."""
    gap = neversaw_nll - control_nll
    return rise / gap if gap > 0 else math.nan


def relative_efficacy(selective: dict[str, float], control: tuple[float, float],
                      neversaw: tuple[float, float]) -> float:
    """Difference-in-differences efficacy: (Δconcept − Δother) ÷ ((N − C) on concept − (N − C) on other).

    The target's efficacy divides by the never-saw-it model's extra loss on concept comments,
    which also holds every difference between two training runs that has nothing to do with
    the concept (seed noise, data mix); subtracting the same difference on other comments
    keeps only the concept-specific part, on both sides of the ratio. Reported beside the
    target's definition, never instead of it.
    """
    gap = (neversaw[0] - control[0]) - (neversaw[1] - control[1])
    rise = selective["concept_rise"] - selective["other_rise"]
    return rise / gap if gap > 0 else math.nan


def per_layer_context(make: Callable[..., Any], layers: Sequence[int], directions: Sequence[torch.Tensor]
                      ) -> Callable[[], AbstractContextManager[Any]]:
    """A context applying `make(layers=[l], direction=d)` at each layer with its own direction."""
    def enter() -> AbstractContextManager[Any]:
        stack = ExitStack()
        for layer, d in zip(layers, directions):
            stack.enter_context(make(layers=[layer], direction=d))
        return stack
    return enter


def posthoc_directions(model: nn.Module, data: EvalData,
                       layers: Sequence[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Difference-of-means direction per layer, and one for ablation (of the layers' mean pooled state)."""
    fit = data.posthoc_fit
    labels = torch.tensor([data.concept.holds(c) for c in fit]).float()
    pooled = pooled_states(model, layers, data.batches(fit))
    per_layer = [mean_difference(p, labels) for p in pooled]
    together = mean_difference(torch.stack(pooled).mean(0), labels)
    return per_layer, together


def load_trained(model_dir: str, base_path: str | None) -> nn.Module:
    """A trained model in eval mode, a LoRA adapter merged into `base_path` so weight edits act on plain weights."""
    import os

    from anchor_hf.io import ADAPTER_CONFIG, load_model

    adapter = os.path.isfile(os.path.join(model_dir, ADAPTER_CONFIG))
    return load_model(model_dir, base_model=base_path if adapter else None, merge_adapter=True)


def no_intervention() -> AbstractContextManager[Any]:
    return nullcontext()


# ---------------------------------------------------------------------- one seed
def _baseline(run: Any, prepared: Any, data: EvalData, seed: int, layers: list[int], v_hat: torch.Tensor,
              log: Any) -> dict[str, Any]:
    """Control, never-saw-it and post-hoc measurements of a seed (shared by every label rate)."""
    from anchor_hf.io import load_model

    control = load_trained(run.model_dir("control", seed), prepared.base_path)
    neversaw = load_trained(run.model_dir("neversaw", seed), prepared.base_path)
    # Recipe A's baseline is the control; recipe B's is the pre-fine-tune model.
    pretrained = prepared.base_path is not None
    posthoc_model = load_model(prepared.base_path) if pretrained else control
    n_blocks = posthoc_model.config.num_hidden_layers
    test = data.concept_test + data.other_test
    labels = torch.tensor([1] * len(data.concept_test) + [0] * len(data.other_test))
    log(f"[goemotions]   post-hoc directions on the {'pre-fine-tune' if pretrained else 'control'} model")
    all_dirs, together = posthoc_directions(posthoc_model, data, range(n_blocks))
    posthoc_aurocs = layer_aurocs(pooled_states(posthoc_model, range(n_blocks), data.batches(test)), all_dirs, labels)
    control_axis = layer_aurocs(pooled_states(control, layers, data.batches(test)), [v_hat] * len(layers), labels)
    dirs = [all_dirs[layer % n_blocks] for layer in layers]
    log("[goemotions]   post-hoc suppression, ablation and steering")
    removals = measure_removals(
        posthoc_model, data, per_layer_context(lambda **kw: suppress(posthoc_model, **kw), layers, dirs),
        lambda: ablated(posthoc_model, direction=together))
    steering = dose_curve(posthoc_model, data, lambda d: per_layer_context(
        lambda **kw: steer(posthoc_model, dose=d, **kw), layers, dirs)())
    heldout = data.batches(data.heldout)
    concept_batches = data.batches(data.concept_test)
    out = {"posthoc_aurocs": posthoc_aurocs, "control_axis_aurocs": control_axis, "posthoc_removals": removals,
           "posthoc_entanglement": entanglement(removals, data), "posthoc_steering": steering,
           "nll_control": mean_nll(control, heldout), "nll_neversaw": mean_nll(neversaw, heldout),
           "concept_nll_control": mean_nll(control, concept_batches),
           "concept_nll_neversaw": mean_nll(neversaw, concept_batches),
           "other_nll_control": mean_nll(control, data.batches(data.other_test)),
           "other_nll_neversaw": mean_nll(neversaw, data.batches(data.other_test))}
    if pretrained:
        out["nll_pretrained"] = mean_nll(posthoc_model, heldout)
        out["concept_nll_posthoc_model"] = removals["base"]["concept"]
    return out


def evaluate_seed(run: Any, prepared: Any, data: EvalData, seed: int, rate: float,
                  baselines: dict[int, dict[str, Any]], log: Any = print) -> dict[str, Any]:
    """Every measurement of one seed at one label rate (`baselines` caches the rate-independent ones)."""
    name = run.concepts[0].column
    folder = run.model_dir("anchored", seed, rate)
    model = load_trained(folder, prepared.base_path)
    cfg = AnchorConfig.from_pretrained(folder)
    anchor = cfg.concept(name)
    v_hat = direction_basis(anchor.dims, anchor.vector, cfg.hidden_size)[:, 0]
    layers = [int(x) for x in cfg.layers]
    if seed not in baselines:
        baselines[seed] = _baseline(run, prepared, data, seed, layers, v_hat, log)
    base = baselines[seed]
    test = data.concept_test + data.other_test
    labels = torch.tensor([1] * len(data.concept_test) + [0] * len(data.other_test))
    log("[goemotions]   anchored detection, suppression, ablation and steering")
    # One pass gives both detectors: mean alignment (the summary's) and the largest alignment over a comment's
    # tokens, the detector the pooled pull (a soft maximum) trains.
    states = collect_states(model, resolve_layers(model, layers), data.batches(test), {"c": (v_hat[:, None], None)},
                            progress=False)
    aurocs = layer_aurocs(states.pooled, [v_hat] * len(layers), labels)
    aurocs_max = [auroc(pool_alignment(cos, states.live, "max"), labels) for cos in states.cos["c"]]
    removals = measure_removals(model, data, lambda: suppress(model, cfg, name), lambda: ablated(model, cfg, name))
    steering = dose_curve(model, data, lambda d: steer(model, cfg, name, d))
    nll = mean_nll(model, data.batches(data.heldout))
    supp, abl = removals["suppress_selectivity"], removals["ablate_selectivity"]
    post = base["posthoc_removals"]
    args = (base["concept_nll_control"], base["concept_nll_neversaw"])
    cn = (base["concept_nll_control"], base["other_nll_control"])  # (concept, other) NLL of the control
    on = (base["concept_nll_neversaw"], base["other_nll_neversaw"])  # ... and of the never-saw-it model
    result = {
        "seed": seed, "label_rate": rate, "layers": layers,
        "auroc_anchored_layers": aurocs, "auroc_posthoc_layers": base["posthoc_aurocs"],
        "auroc_control_axis_layers": base["control_axis_aurocs"],
        "auroc_anchored": max(aurocs), "auroc_posthoc": max(base["posthoc_aurocs"]),
        "auroc_anchored_max_pool_layers": aurocs_max, "auroc_anchored_max_pool": max(aurocs_max),
        "suppression_selectivity_ratio": supp["ratio"], "ablation_selectivity_ratio": abl["ratio"],
        "posthoc_selectivity_ratio": post["suppress_selectivity"]["ratio"],
        "posthoc_ablation_selectivity_ratio": post["ablate_selectivity"]["ratio"],
        "suppression_efficacy": efficacy(supp["concept_rise"], removals["base"]["concept"], *args),
        "ablation_efficacy": efficacy(abl["concept_rise"], removals["base"]["concept"], *args),
        "posthoc_suppression_efficacy": efficacy(post["suppress_selectivity"]["concept_rise"], 0.0, *args),
        "posthoc_ablation_efficacy": efficacy(post["ablate_selectivity"]["concept_rise"], 0.0, *args),
        "suppression_relative_efficacy": relative_efficacy(supp, cn, on),
        "ablation_relative_efficacy": relative_efficacy(abl, cn, on),
        "posthoc_suppression_relative_efficacy": relative_efficacy(post["suppress_selectivity"], cn, on),
        "perplexity_anchored": math.exp(nll), "perplexity_control": math.exp(base["nll_control"]),
        "perplexity_neversaw": math.exp(base["nll_neversaw"]),
        "perplexity_ratio": math.exp(nll - base["nll_control"]),
        "concept_nll_anchored": removals["base"]["concept"], "concept_nll_control": args[0],
        "concept_nll_neversaw": args[1], "other_nll_control": base["other_nll_control"],
        "other_nll_neversaw": base["other_nll_neversaw"],
        "removals": removals, "posthoc_removals": post,
        "entanglement": entanglement(removals, data), "posthoc_entanglement": base["posthoc_entanglement"],
        "steering": steering, "posthoc_steering": base["posthoc_steering"],
    }
    if "nll_pretrained" in base:
        result["perplexity_pretrained"] = math.exp(base["nll_pretrained"])
        result["perplexity_ratio_vs_pretrained"] = math.exp(nll - base["nll_pretrained"])
    return result
