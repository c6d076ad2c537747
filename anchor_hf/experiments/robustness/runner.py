"""Run the three attacks on the five arms and collect every number the report shows.

`check_triple` validates a model triple against its data before anything runs (so a long
multi-seed run cannot fail at its last triple on a typo). Each arm is built once for the
fingerprint and the probes, then rebuilt fresh for every relearning curve (a curve trains
its copy). The relearning draws of k examples are the same for every arm, so arms differ
only in the model.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from anchor_hf.binding import bind
from anchor_hf.config import AnchorConfig
from anchor_hf.errors import AnchorConfigError, AnchorError
from anchor_hf.io import load_model
from .arms import ARMS, build_arms, posthoc_direction
from .examples import RemovalData, batches, example_nll
from .extraction import guardedness_gap, pooled_states, probe_aurocs
from .fingerprint import fingerprint
from .relearn import RelearnSettings, half_recovery_step, recovered_fraction, relearn_curves, steps_to_reach
from .stats import auroc_standard_error, median

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelDirs:
    """The three trained models: anchored, its un-anchored control, and the never-saw-it model."""

    anchored: str
    control: str
    never: str

    def __post_init__(self) -> None:
        paths = {"--model": self.anchored, "--control": self.control, "--never": self.never}
        for flag, path in paths.items():
            if not os.path.isfile(os.path.join(path, "config.json")):
                raise AnchorConfigError(f"`{flag}` = {path!r} is not a saved model folder (no config.json)")
            if os.path.isfile(os.path.join(path, "adapter_config.json")):
                raise AnchorConfigError(f"`{flag}` = {path!r} holds a LoRA adapter; merge it into its base model "
                                        "(`merge_and_unload`) and save that: ablation edits full weights")
        if len({os.path.realpath(p) for p in paths.values()}) < 3:
            raise AnchorConfigError(f"--model, --control and --never must be three different models, got {paths}")
        if not os.path.isfile(os.path.join(self.anchored, "anchor_config.json")):
            raise AnchorConfigError(f"`--model` = {self.anchored!r} has no anchor_config.json: it must be the "
                                    "anchored model")
        self._check_never()

    def _check_never(self) -> None:
        """Refuse a `--never` model whose saved training record says it saw the concept."""
        from anchor_hf.experiments.colour.spec import load_spec

        spec = load_spec(self.never)
        if spec is not None and not spec.exclude_target:
            raise AnchorConfigError(f"`--never` = {self.never!r} was trained on the full colour corpus "
                                    "(colour_spec.json: exclude_target false); train it with --neversaw")
        summary = os.path.join(self.never, "train_summary.json")
        if os.path.isfile(summary):
            with open(summary, encoding="utf-8") as f:
                kind = json.load(f).get("kind")
            if kind != "neversaw":
                raise AnchorConfigError(f"`--never` = {self.never!r} is a {kind!r} model (train_summary.json); it "
                                        "must be the model trained without the concept (kind neversaw)")


def _skeleton(path: str) -> nn.Module:
    """The saved model's architecture on the meta device: its module names and widths, no weights read."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))


def check_triple(dirs: ModelDirs, data: RemovalData) -> AnchorConfig:
    """The anchored model's config, after checking the concept is anchored, that the config fits all three
    models (`bind` on weightless copies: module names, width) and that the tokenizers agree."""
    from transformers import AutoTokenizer

    cfg = AnchorConfig.from_pretrained(dirs.anchored)
    if data.concept not in [c.name for c in cfg.concepts]:
        raise AnchorConfigError(f"concept {data.concept!r} is not anchored in {dirs.anchored}; its anchor "
                                f"config has {[c.name for c in cfg.concepts]}")
    for flag, path in (("--model", dirs.anchored), ("--control", dirs.control), ("--never", dirs.never)):
        try:
            bind(cfg, _skeleton(path))
        except AnchorError as err:  # found here, not after the first attacks have run
            raise type(err)(f"`{flag}` = {path!r}: {err}") from err
    vocab = AutoTokenizer.from_pretrained(dirs.anchored).get_vocab()
    for flag, path in (("--control", dirs.control), ("--never", dirs.never)):
        if AutoTokenizer.from_pretrained(path).get_vocab() != vocab:
            raise AnchorConfigError(f"`{flag}` = {path!r} has another tokenizer than `--model` = {dirs.anchored!r}; "
                                    "the three models must share one")
    return cfg


def _arm_measures(model: nn.Module, source: dict[str, torch.Tensor], never: dict[str, torch.Tensor],
                  fit_b: list[Any], test_b: list[Any], data: RemovalData, nll: dict[str, torch.Tensor],
                  fit: list[torch.Tensor] | None = None) -> dict[str, Any]:
    """Losses, collateral, extraction and fingerprint of one (edited) model (`fit`: its fit-set states, if read)."""
    if fit is None:
        _, fit = pooled_states(model, fit_b)
    names, test = pooled_states(model, test_b)
    aurocs = probe_aurocs(fit, data.fit_labels, test, data.test_labels)
    n_pos = int(data.test_labels.sum())
    best = max(range(len(aurocs)), key=lambda i: aurocs[i])
    return {"concept_nll": float(nll["concept"].mean()), "other_nll": float(nll["other"].mean()),
            "removed_gap": float(nll["concept"].mean() - source["concept"].mean()),
            "collateral": float(nll["other"].mean() - source["other"].mean()),
            "probe_layers": names, "probe_auroc": aurocs, "probe_auroc_max": aurocs[best],
            "probe_auroc_max_layer": names[best],
            "probe_auroc_max_se": auroc_standard_error(aurocs[best], n_pos, len(data.test_labels) - n_pos),
            "guardedness_gap": guardedness_gap(fit, data.fit_labels),
            "fingerprint": fingerprint(nll["concept"], never["concept"], nll["other"], never["other"])}


def _relearn(arms: dict[str, Any], data: RemovalData, sets: dict[str, list[Any]], base: dict[str, Any],
             relearn: RelearnSettings, seed: int, log: Log) -> dict[str, Any]:
    """Recovery curves of every arm for every k, and their summaries (relative and absolute)."""
    out: dict[str, Any] = {}
    done: set[int] = set()
    for k in relearn.ks:
        used = min(k, len(data.relearn_pool))
        if used in done:
            log(f"[robustness] k={k} is capped at the pool's {used} examples, already run: skipped")
            continue
        done.add(used)
        if used < k:
            log(f"[robustness] k={k} is capped at the pool's {used} examples")
        draws = [random.Random(seed * 1_000 + r).sample(range(len(data.relearn_pool)), used)
                 for r in range(relearn.repeats)]
        per_arm: dict[str, Any] = {}
        for name in ARMS:
            arm = arms[name]
            curves = []
            for r, draw in enumerate(draws):
                log(f"[robustness] relearning: {name}, k={used}, draw {r + 1}/{len(draws)}")
                curves.append(relearn_curves(arm.make(), [data.relearn_pool[i] for i in draw], sets, data.pad_id,
                                             relearn.steps, relearn.learning_rate, relearn.batch_size,
                                             seed=seed + r, eval_every=relearn.eval_every))
            reference = float(base[arm.source]["concept"].mean())
            halves = [half_recovery_step(c["concept"], reference, relearn.eval_every) for c in curves]
            per_arm[name] = {"reference": reference, "curves": [c["concept"] for c in curves],
                             "other_curves": [c["other"] for c in curves], "half_steps": halves,
                             "half_steps_median": median(halves),
                             "recovered_fraction": [recovered_fraction(c["concept"], reference) for c in curves]}
        # Absolute view: the never-saw model's half-gap level, the same loss for every arm.
        control = float(base["control"]["concept"].mean())
        level = control + (per_arm["never"]["curves"][0][0] - control) / 2
        for name in ARMS:
            entry = per_arm[name]
            entry["steps_to_never_half_level"] = [steps_to_reach(c, level, relearn.eval_every) for c in entry["curves"]]
            entry["end_minus_never"] = [c[-1] - n[-1] for c, n in zip(entry["curves"], per_arm["never"]["curves"])]
            entry["concept_drop"] = [c[0] - c[-1] for c in entry["curves"]]
            entry["other_drop"] = [c[0] - c[-1] for c in entry["other_curves"]]
        out[str(used)] = {"k": k, "k_used": used, "never_half_level": level, "arms": per_arm}
    return out


def run_attacks(dirs: ModelDirs, data: RemovalData, relearn: RelearnSettings, seed: int = 0,
                batch_size: int = 64, log: Log = print, cfg: AnchorConfig | None = None) -> dict[str, Any]:
    """Every robustness measurement (relearning, extraction, fingerprint) for one anchored / control / never-saw triple.

    `cfg`: the anchored model's config as `check_triple` returned it (checked here when None).
    """
    cfg = check_triple(dirs, data) if cfg is None else cfg
    anchored, control, never = (load_model(p, merge_adapter=True) for p in (dirs.anchored, dirs.control, dirs.never))
    sets = {"concept": batches(data.concept_eval, data.pad_id, batch_size),
            "other": batches(data.other_eval, data.pad_id, batch_size)}
    fit_b, test_b = batches(data.probe_fit, data.pad_id, batch_size), batches(data.probe_test, data.pad_id, batch_size)

    def losses(model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: example_nll(model, b) for name, b in sets.items()}

    log("[robustness] losses of the unedited models; post-hoc direction on the control")
    base = {"anchored": losses(anchored), "control": losses(control)}
    base_never = losses(never)
    _, control_fit = pooled_states(control, fit_b)
    direction = posthoc_direction(control_fit, data.fit_labels)
    arms = build_arms(anchored, cfg, data.concept, control, never, direction)

    results: dict[str, Any] = {"arms": {}, "references": {}}
    for name, model, fit in (("anchored", anchored, None), ("control", control, control_fit)):  # before removal
        log(f"[robustness] extraction and fingerprint: {name} (unedited reference)")
        results["references"][name] = _arm_measures(model, base[name], base_never, fit_b, test_b, data, base[name],
                                                     fit)
    for name in ARMS:
        arm = arms[name]
        log(f"[robustness] extraction and fingerprint: {name}")
        model = arm.make()
        nll = base_never if name == "never" else losses(model)
        results["arms"][name] = {"description": arm.description, "source": arm.source,
                                 **_arm_measures(model, base[arm.source], base_never, fit_b, test_b, data, nll)}
    results["relearn"] = _relearn(arms, data, sets, base, relearn, seed, log)
    results["settings"] = {"relearn": asdict(relearn), "seed": seed, "batch_size": batch_size,
                           "model": dirs.anchored, "control": dirs.control, "never": dirs.never}
    results["concept"] = data.concept
    results["notes"] = data.notes
    results["posthoc_cos_with_anchor"] = _cos_with_anchor(direction, cfg, data.concept)
    return results


def _cos_with_anchor(direction: torch.Tensor, cfg: AnchorConfig, concept: str) -> float:
    """|cos| (norm of the projection, for a subspace) between the post-hoc direction and the anchor."""
    from anchor_hf.geometry import direction_basis

    c = cfg.concept(concept)
    basis = direction_basis(c.dims, c.vector, cfg.hidden_size)
    return float(torch.linalg.vector_norm(basis.T.float() @ direction.float()))


SUMMARY_KEYS = ("concept", "relearn_half_steps_ablated", "relearn_half_steps_posthoc", "relearn_half_steps_never",
                "probe_auroc_max_ablated", "probe_auroc_max_posthoc", "probe_auroc_max_never",
                "fingerprint_pvalue_ablated", "relearn_half_steps_redirected", "probe_auroc_max_redirected",
                "fingerprint_pvalue_redirected")


def summary_of(results: dict[str, Any]) -> dict[str, Any]:
    """The flat `summary.json` values of one triple (relearning at the largest k; inf = beyond the budget)."""
    largest = results["relearn"][max(results["relearn"], key=int)]["arms"]
    arms = results["arms"]
    return {"concept": results["concept"],
            "relearn_half_steps_ablated": largest["ablated"]["half_steps_median"],
            "relearn_half_steps_posthoc": largest["posthoc"]["half_steps_median"],
            "relearn_half_steps_never": largest["never"]["half_steps_median"],
            "probe_auroc_max_ablated": arms["ablated"]["probe_auroc_max"],
            "probe_auroc_max_posthoc": arms["posthoc"]["probe_auroc_max"],
            "probe_auroc_max_never": arms["never"]["probe_auroc_max"],
            "fingerprint_pvalue_ablated": arms["ablated"]["fingerprint"]["pvalue"],
            "relearn_half_steps_redirected": largest["redirected"]["half_steps_median"],
            "probe_auroc_max_redirected": arms["redirected"]["probe_auroc_max"],
            "fingerprint_pvalue_redirected": arms["redirected"]["fingerprint"]["pvalue"]}
