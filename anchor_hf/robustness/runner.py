"""Run the three attacks on the four arms and collect every number the report shows.

Order matters only for cost: each arm is built once for the fingerprint and the probes,
then rebuilt fresh for every relearning curve (a curve trains its copy). The relearning
draws of k examples are the same for every arm, so arms differ only in the model.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..config import AnchorConfig
from ..errors import AnchorConfigError
from .arms import ARMS, build_arms, posthoc_direction
from .examples import RemovalData, batches, example_nll
from .extraction import guardedness_gap, pooled_states, probe_aurocs
from .fingerprint import fingerprint
from .relearn import RelearnSettings, half_recovery_step, median, recovered_fraction, relearn_curve


@dataclass(frozen=True)
class ModelDirs:
    """The three trained models: anchored, its un-anchored control, and the never-saw-it model."""

    anchored: str
    control: str
    never: str

    def __post_init__(self) -> None:
        for flag, path in (("--model", self.anchored), ("--control", self.control), ("--never", self.never)):
            if not os.path.isfile(os.path.join(path, "config.json")):
                raise AnchorConfigError(f"`{flag}` = {path!r} is not a saved model folder (no config.json)")
            if os.path.isfile(os.path.join(path, "adapter_config.json")):
                raise AnchorConfigError(f"`{flag}` = {path!r} holds a LoRA adapter; merge it into its base model "
                                        "(`merge_and_unload`) and save that: ablation edits full weights")
        if not os.path.isfile(os.path.join(self.anchored, "anchor_config.json")):
            raise AnchorConfigError(f"`--model` = {self.anchored!r} has no anchor_config.json: it must be the "
                                    "anchored model")


def load_model(path: str) -> nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()


def _arm_measures(model: nn.Module, source: dict[str, torch.Tensor], never: dict[str, torch.Tensor],
                  fit_b: list[Any], test_b: list[Any], data: RemovalData, nll: dict[str, torch.Tensor]
                  ) -> dict[str, Any]:
    """Losses, collateral, extraction and fingerprint of one (edited) model."""
    _, fit = pooled_states(model, fit_b)
    names, test = pooled_states(model, test_b)
    aurocs = probe_aurocs(fit, data.fit_labels, test, data.test_labels)
    print_ = fingerprint(nll["concept"], never["concept"], nll["other"], never["other"])
    return {"concept_nll": float(nll["concept"].mean()), "other_nll": float(nll["other"].mean()),
            "removed_gap": float(nll["concept"].mean() - source["concept"].mean()),
            "collateral": float(nll["other"].mean() - source["other"].mean()),
            "probe_layers": names, "probe_auroc": aurocs, "probe_auroc_max": max(aurocs),
            "guardedness_gap": guardedness_gap(fit, data.fit_labels), "fingerprint": print_}


def run_attacks(dirs: ModelDirs, data: RemovalData, relearn: RelearnSettings, seed: int = 0,
                batch_size: int = 64, log: Any = print) -> dict[str, Any]:
    """Every measurement of issue 9 for one anchored / control / never-saw triple."""
    cfg = AnchorConfig.from_pretrained(dirs.anchored)
    if data.concept not in [c.name for c in cfg.concepts]:
        raise AnchorConfigError(f"concept {data.concept!r} is not anchored in {dirs.anchored}; its anchor "
                                f"config has {[c.name for c in cfg.concepts]}")
    anchored, control, never = (load_model(p) for p in (dirs.anchored, dirs.control, dirs.never))
    concept_b, other_b = batches(data.concept_eval, data.pad_id, batch_size), batches(data.other_eval, data.pad_id,
                                                                                        batch_size)
    fit_b, test_b = batches(data.probe_fit, data.pad_id, batch_size), batches(data.probe_test, data.pad_id, batch_size)

    def losses(model: nn.Module) -> dict[str, torch.Tensor]:
        return {"concept": example_nll(model, concept_b), "other": example_nll(model, other_b)}

    log("[robustness] losses of the unedited models; post-hoc direction on the control")
    base = {"anchored": losses(anchored), "control": losses(control)}
    base_never = losses(never)
    _, control_fit = pooled_states(control, fit_b)
    direction = posthoc_direction(control_fit, data.fit_labels)
    arms = build_arms(anchored, cfg, data.concept, control, never, direction)

    results: dict[str, Any] = {"arms": {}, "references": {}}
    for name, model in (("anchored", anchored), ("control", control)):  # what the removals start from
        log(f"[robustness] extraction and fingerprint: {name} (unedited reference)")
        results["references"][name] = _arm_measures(model, base[name], base_never, fit_b, test_b, data, base[name])
    for name in ARMS:
        arm = arms[name]
        log(f"[robustness] extraction and fingerprint: {name}")
        model = arm.make()
        nll = base_never if name == "never" else losses(model)
        results["arms"][name] = {"description": arm.description, "source": arm.source,
                                 **_arm_measures(model, base[arm.source], base_never, fit_b, test_b, data, nll)}
        del model

    results["relearn"] = {}
    for k in relearn.ks:
        used = min(k, len(data.relearn_pool))
        draws = [random.Random(seed * 1_000 + r).sample(range(len(data.relearn_pool)), used)
                 for r in range(relearn.repeats)]
        per_arm = {}
        for name in ARMS:
            arm = arms[name]
            reference = float(base[arm.source]["concept"].mean())
            curves, halves = [], []
            for r, draw in enumerate(draws):
                log(f"[robustness] relearning: {name}, k={used}, draw {r + 1}/{len(draws)}")
                model = arm.make()
                curve = relearn_curve(model, [data.relearn_pool[i] for i in draw], concept_b, data.pad_id,
                                      relearn.steps, relearn.learning_rate, relearn.batch_size, seed=seed + r,
                                      eval_every=relearn.eval_every)
                curves.append(curve)
                halves.append(half_recovery_step(curve, reference, relearn.eval_every))
                del model
            per_arm[name] = {"reference": reference, "curves": curves, "half_steps": halves,
                             "half_steps_median": median(halves),
                             "recovered_fraction": [recovered_fraction(c, reference) for c in curves]}
        results["relearn"][str(k)] = {"k_used": used, "arms": per_arm}
    results["settings"] = {"relearn": asdict(relearn), "seed": seed, "batch_size": batch_size,
                           "model": dirs.anchored, "control": dirs.control, "never": dirs.never}
    results["concept"] = data.concept
    results["notes"] = data.notes
    results["posthoc_cos_with_anchor"] = _cos_with_anchor(direction, cfg, data.concept)
    return results


def _cos_with_anchor(direction: torch.Tensor, cfg: AnchorConfig, concept: str) -> float:
    from ..geometry import direction_basis

    c = cfg.concept(concept)
    basis = direction_basis(c.dims, c.vector, cfg.hidden_size)
    return float(torch.linalg.vector_norm(basis.T.float() @ direction.float()))


def summary_of(results: dict[str, Any]) -> dict[str, Any]:
    """The flat `summary.json` of issue 9 (relearning at the largest k; null = not within the step budget)."""
    largest = results["relearn"][max(results["relearn"], key=int)]["arms"]

    def steps(arm: str) -> float | None:
        value = largest[arm]["half_steps_median"]
        return None if math.isinf(value) else value

    arms = results["arms"]
    return {"concept": results["concept"],
            "relearn_half_steps_ablated": steps("ablated"),
            "relearn_half_steps_posthoc": steps("posthoc"),
            "relearn_half_steps_never": steps("never"),
            "probe_auroc_max_ablated": arms["ablated"]["probe_auroc_max"],
            "probe_auroc_max_posthoc": arms["posthoc"]["probe_auroc_max"],
            "probe_auroc_max_never": arms["never"]["probe_auroc_max"],
            "fingerprint_pvalue_ablated": arms["ablated"]["fingerprint"]["pvalue"]}


SUMMARY_KEYS = ("concept", "relearn_half_steps_ablated", "relearn_half_steps_posthoc", "relearn_half_steps_never",
                "probe_auroc_max_ablated", "probe_auroc_max_posthoc", "probe_auroc_max_never",
                "fingerprint_pvalue_ablated")
