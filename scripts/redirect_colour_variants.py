"""Screen recipes and edits for redirect on the colour names (docs/method.md §10), one table.

Each training variant is `anchor-hf train` on a names recipe with its own anchor config (fully
specified here: layers, the target, its destination and where that sits) and data flags; every
variant of a seed is compared with one control trained on the same seed. Each trained model is
then measured with the colour experiment's own code (`anchor_hf.experiments.colour.lm`): held-out
error (÷ the control's), detection AUROC, the target group's base error, suppression, redirect to
its destination at the config's slices, the random-direction control, and the edit variants
(which slices, graded strength). Writes `variants.json` and `variants.md` into `--out`; the
redirect report quotes that table.

    python scripts/redirect_colour_variants.py --out docs/reports/redirect/variants --seeds 0
    python scripts/redirect_colour_variants.py --out DIR --variants axis2_wte opposite_wte --train-only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

SCHEDULE = {"ramp_end": 0.0, "start": 1.0, "anneal_start": 0.3, "anneal_end": 0.7, "floor": 0.12}
DROP = ["transformer.drop", 0, 1, 2, 3]  # the shipped slices: embedding output (token + position) and 4 blocks
WTE = ["transformer.wte", 0, 1, 2, 3]  # the token embeddings instead of the embedding output


def target(**changes: Any) -> dict[str, Any]:
    """Red as the shipped names recipe anchors it, with `changes`."""
    return {"name": "red", "label_column": "concept", "span_column": "concept_span", "dims": [0], "attract": 1.0,
            "repel": 2.5, "repel_schedule": SCHEDULE, "tau": 0.1, **changes}


def grey(**changes: Any) -> dict[str, Any]:
    """The destination: mid grey, pulled by the achromatic labels of the `destination` column."""
    return {"name": "grey", "label_column": "destination", "span_column": "concept_span", "attract": 1.0,
            "repel": 2.5, "repel_schedule": SCHEDULE, "tau": 0.1, **changes}


def opposite_pole(layers: list[Any], **grey_changes: Any) -> dict[str, Any]:
    """Grey at red's opposite pole; both repel with the hinge (the squared term would push grey off -e0)."""
    return {"layers": layers, "concepts": [target(destination="grey", repel_kind="hinge"),
                                           grey(dims=[0], pole=-1, repel_kind="hinge", **grey_changes)]}


def second_axis(layers: list[Any], **grey_changes: Any) -> dict[str, Any]:
    """Grey on its own axis e1, orthogonal to red's e0; both keep the squared anti-subspace repel."""
    return {"layers": layers, "concepts": [target(destination="grey"), grey(dims=[1], **grey_changes)]}


# variant -> (what it is, anchor config or None for the recipe's own, extra data/training flags)
VARIANTS: dict[str, tuple[str, dict[str, Any] | None, list[str]]] = {
    "no_destination": ("the shipped recipe, no destination: redirect = the untrained opposite pole", None, []),
    "opposite_drop": ("grey on -e0 (hinge repels), slices: embedding output + 4 blocks", opposite_pole(DROP), []),
    "second_axis_drop": ("grey on e1 (squared repels), slices: embedding output + 4 blocks", second_axis(DROP), []),
    "opposite_wte": ("grey on -e0 (hinge repels), slices: token embeddings + 4 blocks", opposite_pole(WTE), []),
    "second_axis_wte": ("grey on e1 (squared repels), slices: token embeddings + 4 blocks", second_axis(WTE), []),
}
# continued variant -> (what it is, the variant it continues, AwareSteps fields); `control_*` pair the cost
AWARE: dict[str, tuple[str, str, dict[str, Any]]] = {
    "opposite_wte+aware150_const": ("150 steps, constant lr 3e-4, λ 1, full redirect", "opposite_wte",
                                    dict(steps=150, learning_rate=3e-4, schedule="constant", warmup=0.0)),
    "opposite_wte+aware150_const_w0.3": ("150 steps, constant lr 3e-4, λ 0.3, full redirect", "opposite_wte",
                                         dict(steps=150, weight=0.3, learning_rate=3e-4, schedule="constant",
                                              warmup=0.0)),
    "opposite_wte+aware150_const_onset0.2": ("150 steps, constant lr 3e-4, λ 1, graded redirect (onset 0.2)",
                                             "opposite_wte", dict(steps=150, learning_rate=3e-4, schedule="constant",
                                                                  warmup=0.0, onset=0.2)),
    "opposite_wte+aware150_linear_onset0.2": ("150 steps, lr 1e-4 decayed linearly, λ 1, onset 0.2", "opposite_wte",
                                              dict(steps=150, learning_rate=1e-4, schedule="linear", warmup=0.0,
                                                   onset=0.2)),
    "opposite_wte+aware300_onset0.2": ("300 steps, lr 1e-3 cosine, λ 1, onset 0.2", "opposite_wte",
                                       dict(steps=300, onset=0.2)),
    "opposite_wte+aware300_w0.3_onset0.2": ("300 steps, lr 1e-3 cosine, λ 0.3, onset 0.2", "opposite_wte",
                                            dict(steps=300, weight=0.3, onset=0.2)),
    "second_axis_wte+aware300_onset0.2": ("300 steps, lr 1e-3 cosine, λ 1, onset 0.2", "second_axis_wte",
                                          dict(steps=300, onset=0.2)),
    "second_axis_wte+aware150_onset0.3": ("150 steps, lr 1e-3 cosine, λ 1, onset 0.3", "second_axis_wte",
                                          dict(steps=150, onset=0.3)),
    "second_axis_wte+aware300_lr3e-4_onset0.3": ("300 steps, lr 3e-4 cosine, λ 1, onset 0.3", "second_axis_wte",
                                                 dict(steps=300, learning_rate=3e-4, onset=0.3)),
}
SCHEDULE_FIELDS = ("steps", "learning_rate", "schedule", "warmup")


def control_of(aware: dict[str, Any] | None) -> str:
    """The control a model's held-out error is paired with: the un-anchored control continued as many
    steps on the same learning-rate schedule (without redirected lines), or the control itself."""
    if aware is None:
        return "control"
    from anchor_hf.experiments.colour.lm.aware import AwareSteps

    fields = {**{k: getattr(AwareSteps, k) for k in SCHEDULE_FIELDS}, **aware}  # the dataclass's defaults
    return (f"control+{fields['steps']}_{fields['schedule']}_lr{fields['learning_rate']:g}"
            f"_warmup{fields['warmup']:g}")


def control_steps(name: str) -> dict[str, Any]:
    """The AwareSteps fields of a continued control named by `control_of` (weight 0: no redirected lines)."""
    for fields in (v[2] for v in AWARE.values()):
        if control_of(fields) == name:
            return {**{k: fields[k] for k in SCHEDULE_FIELDS if k in fields}, "weight": 0.0}
    raise KeyError(name)


def edits(cfg: Any, concept: str, to: str) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """Edit variants applied to each base variant: name -> (what it is, context manager on a model)."""
    from anchor_hf.interventions import redirect

    layers = list(cfg.resolved_layers)
    blocks = [n for n in layers if n.startswith("transformer.h.")]
    out = {"blocks only": ("redirect at the 4 block outputs only",
                           lambda m: redirect(m, cfg, concept, to=to, layers=blocks)),
           "token embeddings + blocks": ("redirect at the token embeddings + 4 blocks",
                                         lambda m: redirect(m, cfg, concept, to=to,
                                                            layers=["transformer.wte", *blocks])),
           "embedding output + blocks": ("redirect at the embedding output (token + position) + 4 blocks",
                                         lambda m: redirect(m, cfg, concept, to=to,
                                                            layers=["transformer.drop", *blocks]))}
    for a in (0.1, 0.2, 0.3):
        out[f"onset {a:g}"] = (f"graded: falloff ({a:g}, 1, 1) at the config's slices",
                               lambda m, a=a: redirect(m, cfg, concept, to=to, falloff=(a, 1.0, 1.0)))
    out["strength 0.5"] = ("strength 0.5 at the config's slices", lambda m: redirect(m, cfg, concept, to=to,
                                                                                   strength=0.5))
    return out


def train(name: str, seed: int, out: str, recipe: str, anchor: dict[str, Any] | None, flags: list[str]) -> str:
    """Train one model with `anchor-hf train` in its own process (skipped when finished); returns its folder."""
    folder = os.path.join(out, "models", f"{name}_seed{seed}")
    if os.path.isfile(os.path.join(folder, "trainer_state.json")):
        return folder
    argv = [sys.executable, "-m", "anchor_hf.cli", "train", "--config", recipe, "--output_dir", folder,
            "--seed", str(seed), "--disable_tqdm", "true", *flags]
    if anchor is not None:
        argv += ["--anchor_config", json.dumps(anchor)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # tiny models: one thread is fastest
    start = time.time()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"[variants] {name} seed {seed} trained in {time.time() - start:.0f}s", flush=True)
    return folder


def continued(name: str, seed: int, out: str, base: str, fields: dict[str, Any]) -> str:
    """Continue `base` with intervention-aware (or plain) steps into `name` (skipped when finished)."""
    from anchor_hf.experiments.colour.lm.aware import AwareSteps, continue_training

    folder = os.path.join(out, "models", f"{name}_seed{seed}")
    if not os.path.isfile(os.path.join(folder, "trainer_state.json")):
        continue_training(base, folder, AwareSteps(**fields), seed)
    return folder


def measure(folder: str, seed: int, onset: float | None, with_edits: bool) -> dict[str, Any]:
    """Task error, AUROC and every redirect measurement of one trained model (the experiment's own code)."""
    import torch

    from anchor_hf.config import OPPOSITE
    from anchor_hf.experiments.colour.lm.effects import anchored_interventions, measure_effects
    from anchor_hf.experiments.colour.lm.evaluate import (ANSWER_LENGTH, load, remaining_parts, task_metrics,
                                                          withheld_split)
    from anchor_hf.experiments.colour.lm.measure import answer_positions, layer_metrics, read_states, \
        summarize_layers
    from anchor_hf.experiments.colour.lm.task import ColourTask
    from anchor_hf.experiments.colour.spec import load_spec
    from anchor_hf.experiments.colour.target import DEFAULT_DESTINATION, parse_target

    model, tokenizer, cfg = load(folder)
    task = ColourTask(load_spec(folder))
    concept = cfg.concepts[0].name
    out: dict[str, Any] = task_metrics(model, tokenizer, task)
    if cfg.concepts[0].attract == 0:  # a control: its held-out error is all that is paired
        return out
    lines, items = task.state_lines(tokenizer)
    states = read_states(model, cfg, concept, lines, tokenizer.pad_token_id)
    out["auroc"] = summarize_layers(layer_metrics(states, concept, items,
                                                  answer_positions(lines, ANSWER_LENGTH["names"])))["auroc_max"]
    to = cfg.concepts[0].destination or OPPOSITE
    chosen = anchored_interventions(cfg, concept, to, seed, None if onset is None else (onset, 1.0, 1.0))
    interventions = {k: chosen[k] for k in ("suppress", "redirect", "redirect_random")}
    if with_edits:
        interventions.update({f"edit: {k}": (f, 2) for k, (_, f) in edits(cfg, concept, to).items()})
    rgb = torch.tensor(parse_target(load_spec(folder).destination or DEFAULT_DESTINATION).rgb)
    effects = measure_effects(model, tokenizer, task, interventions, rgb)
    out["effects"] = {k: {m: e[m] for m in ("target_base", "target_error", "remaining", "dissimilar_rise")}
                      for k, e in effects.items() if k != "base"}
    withheld = withheld_split(folder, task)
    if withheld is not None:
        for name in ("redirect", "redirect_random"):
            out["effects"][name].update(remaining_parts(effects[name]["rgb"], task, withheld, rgb))
    return out


def measured_once(folder: str, seed: int, onset: float | None, with_edits: bool) -> dict[str, Any]:
    """`measure`, kept in `folder/variant_measure.json` so a stopped screen resumes where it was."""
    from anchor_hf.probes.report import write_json

    path = os.path.join(folder, "variant_measure.json")
    weights = os.stat(os.path.join(folder, "model.safetensors"))  # a model trained again is measured again
    key = {"seed": seed, "onset": onset, "with_edits": with_edits, "weights": [weights.st_size, weights.st_mtime_ns]}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            kept = json.load(f)
        if kept.get("key") == key:
            return kept["measured"]
    measured = measure(folder, seed, onset, with_edits)
    write_json(path, {"key": key, "measured": measured})
    return measured


def rows(results: dict[str, Any], seeds: list[int]) -> list[list[Any]]:
    """One row per model (median over seeds) and, for base variants, one per edit."""
    import statistics

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    table = []
    for name, per_seed in results.items():
        if "effects" not in per_seed[0]["measured"]:
            continue
        ratio = med([r["measured"]["heldout_error"] / results[r["control"]][i]["measured"]["heldout_error"]
                     for i, r in enumerate(per_seed)])
        m = [r["measured"] for r in per_seed]
        for key in [k for k in m[0]["effects"] if k not in ("suppress", "redirect_random")]:
            e = [x["effects"][key] for x in m]
            label = name if key == "redirect" else f"{name} · {key}"
            table.append([label, med([x["remaining"] for x in e]),
                          med([x["effects"]["redirect_random"]["remaining"] for x in m]) if key == "redirect" else None,
                          med([x["remaining_withheld"] for x in e]) if "remaining_withheld" in e[0] else None,
                          med([x["target_error"] for x in e]), med([x["dissimilar_rise"] for x in e]),
                          ratio, med([x["effects"]["suppress"]["target_base"] for x in m]),
                          med([x["auroc"] for x in m]),
                          med([x["effects"]["suppress"]["remaining"] for x in m]) if key == "redirect" else None])
    return table


def markdown(results: dict[str, Any], seeds: list[int], command: str) -> str:
    from anchor_hf.probes.report import markdown_table

    described = {**{k: v[0] for k, v in VARIANTS.items()}, **{k: f"{v[1]} + {v[0]}" for k, v in AWARE.items()},
                 "control": "the un-anchored control"}
    for name in results:
        if name.startswith("control+"):
            described[name] = f"the control, continued as the variants paired with it ({control_steps(name)})"
    header = ["model · edit", "remaining", "random remaining", "remaining (withheld names)", "target error",
              "dissimilar rise", "held-out ÷ control", "target base error", "AUROC", "suppress remaining"]
    return "\n".join([
        "# Redirect variants on the colour names", "", "Produced by:", "", "```bash", command, "```", "",
        f"Seeds {seeds}, medians over seeds. Each model is redirected to its destination (grey, `#808080`; the model "
        "without one to its untrained opposite pole) at its anchored slices; `· edit` rows redirect the same model "
        "otherwise. remaining = mean |answer − grey|² / mean |own colour − grey|² over the target group (red, "
        "similarity ≥ 0.5); held-out error is paired with the control of the same seed and the same number of "
        "steps; withheld names: the target names the intervention-aware steps never redirected.", "",
        markdown_table(header, rows(results, seeds)), "", "## What each model is", "",
        markdown_table(["model", "what"], [[k, described[k]] for k in results]), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/reports/redirect/variants")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, *AWARE], choices=[*VARIANTS, *AWARE])
    args = parser.parse_args(argv)
    from anchor_hf.probes.report import write_json
    from anchor_hf.resources import recipe_path

    import torch

    torch.set_num_threads(1)
    chosen = list(dict.fromkeys([*(AWARE[v][1] for v in args.variants if v in AWARE), *args.variants]))
    results: dict[str, Any] = {}
    for seed in args.seeds:
        plan: dict[str, tuple[str, str, dict[str, Any] | None]] = {}  # model -> (folder, control, aware fields)
        control = train("control", seed, args.out, str(recipe_path("colour_names_control")), None, [])
        plan["control"] = (control, "control", None)
        for name in dict.fromkeys(control_of(AWARE[v][2]) for v in chosen if v in AWARE):
            plan[name] = (continued(name, seed, args.out, control, control_steps(name)), name, None)
        for name in chosen:
            if name in VARIANTS:
                _, anchor, flags = VARIANTS[name]
                recipe = "colour_names_anchored" if anchor is None else "colour_names_destination"
                plan[name] = (train(name, seed, args.out, str(recipe_path(recipe)), anchor, flags), "control", None)
            else:
                fields = AWARE[name][2]
                plan[name] = (continued(name, seed, args.out, plan[AWARE[name][1]][0], fields), control_of(fields),
                              fields)
        for name, (folder, paired, fields) in plan.items():
            onset = None if fields is None else fields.get("onset")
            measured = measured_once(folder, seed, onset, with_edits=name in VARIANTS)
            results.setdefault(name, []).append({"seed": seed, "control": paired, "measured": measured})
            print(f"[variants] measured {name} seed {seed}", flush=True)
    command = "python scripts/redirect_colour_variants.py " + " ".join(
        ["--out", args.out, "--seeds", *map(str, args.seeds), "--variants", *args.variants])
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "variants.json"), {"command": command, "results": results})
    text = markdown(results, args.seeds, command)
    tmp = os.path.join(args.out, f"variants.md.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, os.path.join(args.out, "variants.md"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
