"""`anchor-hf goemotions`: anchor an emotion in a small causal LM trained on GoEmotions, and evaluate it.

    anchor-hf goemotions --recipe scratch --concept anger --label-rate 0.05 --seeds 3 \
        --out docs/reports/goemotions/scratch_anger --data-dir ../shared/datasets/goemotions
    anchor-hf goemotions --recipe scratch --concept anger --destination neutral --label-rate 0.05 --seeds 3 \
        --out OUT --data-dir ../shared/datasets/goemotions     # + redirect toward `neutral` (redirect_eval.py)

Trains the anchored model (per label rate and seed), a control and a never-saw-it model
(`recipes/goemotions_scratch.yaml` or `recipes/goemotions_smollm2_lora.yaml`), evaluates
them (`anchor_hf.experiments.goemotions.evaluate`) and writes report.md, report.json, summary.json
and figures into OUT. Every argument is checked before anything trains.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from anchor_hf.experiments.options import shard_arg

HELP = "GoEmotions: train anchored, control and never-saw-it LMs for an emotion, evaluate, write a report."


def _rates(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--label-rate takes numbers in (0, 1], comma-separated; got {text!r}") from err


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("goemotions", help=HELP, description=HELP)
    parser.add_argument("--recipe", choices=("scratch", "smollm2"), default="scratch",
                        help="scratch: small Llama + local BPE (recipe A); smollm2: SmolLM2-135M-Instruct (recipe B)")
    parser.add_argument("--concept", default="anger",
                        help="a GoEmotions label (anger), ekman:GROUP or sentiment:GROUP; several comma-separated "
                             "are anchored on separate axes, the first is evaluated (default: anger)")
    parser.add_argument("--destination", default=None,
                        help="a GoEmotions label or group the concept is redirected to (e.g. neutral): its comments "
                             "are labelled and trained to a place of their own, and the report measures redirect "
                             "toward it (default: none)")
    parser.add_argument("--destination-place", choices=("opposite", "axis", "untrained"), default="opposite",
                        help="with --destination: the concept's opposite pole (hinge repels), an own axis, or "
                             "untrained (no destination trained: redirect reflects to the opposite pole; F only "
                             "scores the continuations) (default: opposite)")
    parser.add_argument("--label-rate", type=_rates, default=[0.05],
                        help="share of the concept's comments labelled per visit, e.g. 0.05; several "
                             "comma-separated give a sweep (default: 0.05)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (default: 3)")
    parser.add_argument("--out", default="results/goemotions", help="report folder (default: results/goemotions)")
    parser.add_argument("--data-dir", default=None,
                        help="GoEmotions folder (train/dev/test.tsv or original/…), read in place; default: the "
                             "recipe's dataset_args.data_dir, else the Hub dataset (online only)")
    parser.add_argument("--models-dir", default=None, help="where models are trained (default: OUT/models)")
    parser.add_argument("--recipe-file", default=None, help="another recipe YAML instead of the shipped one")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key (max_steps, dataset_args.label_replay, or a short name such as "
                             "attract or steer_prompts), the value read as YAML (repeatable)")
    parser.add_argument("--train-only", action="store_true", help="train the models, skip evaluation")
    parser.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                        help="with --train-only: train only every N-th model starting at the I-th (0-based), so N "
                             "processes can share the work; then run once more without it to evaluate")
    parser.set_defaults(func=main)


def command_of(args: argparse.Namespace) -> str:
    """The command that reproduces `args`, every option spelled out, for the report."""
    import shlex

    parts = ["anchor-hf", "goemotions", "--recipe", args.recipe, "--concept", args.concept]
    if args.destination is not None:
        parts += ["--destination", args.destination, "--destination-place", args.destination_place]
    parts += ["--label-rate", ",".join(f"{r:g}" for r in args.label_rate), "--seeds", str(args.seeds),
              "--out", args.out]
    for flag, value in (("--data-dir", args.data_dir), ("--models-dir", args.models_dir),
                        ("--recipe-file", args.recipe_file)):
        if value is not None:
            parts += [flag, value]
    for item in args.set:
        parts += ["--set", item]
    return " ".join(shlex.quote(p) for p in parts)


def main(args: argparse.Namespace) -> int:
    import torch

    from .recipe import parse_overrides
    from .runner import GoEmotionsRun, evaluate_all, evaluation_data, prepare, train_all

    if args.shard is not None and not args.train_only:
        from anchor_hf.errors import AnchorConfigError

        raise AnchorConfigError("--shard trains a share of the models only; use it with --train-only")
    run = GoEmotionsRun(recipe=args.recipe, concept=args.concept, label_rates=list(args.label_rate),
                        seeds=args.seeds, out=args.out, data_dir=args.data_dir, models_dir=args.models_dir,
                        overrides=parse_overrides(args.set), recipe_file=args.recipe_file,
                        destination=args.destination, destination_place=args.destination_place)
    if not torch.cuda.is_available() and not run.settings.is_pretrained:
        torch.set_num_threads(1)  # tiny models: one thread is several times faster on a small, shared CPU
    start = time.time()
    prepared = prepare(run)
    data = evaluation_data(run, prepared)  # the whole plan, evaluation included, is checked before training
    train_all(run, shard=args.shard)
    if args.train_only:
        return 0
    summaries = evaluate_all(run, prepared, data, command_of(args))
    for s in summaries:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()})
    print(f"report: {run.out}/report.md ({time.time() - start:.0f}s)")
    return 0
