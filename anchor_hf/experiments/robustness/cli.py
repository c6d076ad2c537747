"""`anchor-hf robustness`: does removing an anchored concept stick? Relearning, extraction, fingerprint.

    anchor-hf robustness --data colour --concept red --data-dir ../shared/datasets/colornames \
        --model M/anchored_seed0 --control M/control_seed0 --never M/neversaw_seed0 --out OUT

Compares five arms (anchored + ablation, anchored + redirect_weights to its destination,
anchored + suppression, control + post-hoc ablation, never-saw-it) under three attacks
(`anchor_hf.experiments.robustness`) and writes report.md, report.json, summary.json and
figures into OUT. Give `--model`, `--control` and `--never` several folders each (one per
seed, in the same order) for medians over seeds. Every argument is checked before any model is loaded.
"""

from __future__ import annotations

import argparse
import shlex
import time
from typing import Any

HELP = "Attack a removed concept (relearning, probes, fingerprint) against a never-saw-it model; write a report."
# GoEmotions: in an exploratory run on the 600-step models (not kept as a report), fine-tuning at 1e-3 on 10 or
# 100 anger comments raised every arm's held-out anger loss, so no recovery could be measured; --lr overrides.
LEARNING_RATES = {"colour": 1e-3, "goemotions": 1e-4}
EVAL_EVERY = {"colour": 1, "goemotions": 5}  # GoEmotions: ~700 held-out comments per evaluation, so every 5th step


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--k takes positive integers, comma-separated; got {text!r}") from err
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"--k takes positive integers, comma-separated; got {text!r}")
    return ks


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("robustness", help=HELP, description=HELP)
    parser.add_argument("--model", nargs="+", required=True, help="anchored model folder(s)")
    parser.add_argument("--control", nargs="+", required=True, help="control model folder(s), same order")
    parser.add_argument("--never", nargs="+", required=True, help="never-saw-it model folder(s), same order")
    parser.add_argument("--concept", required=True,
                        help="the anchored concept: a colour (red) or a GoEmotions label or group (anger, ekman:anger)")
    parser.add_argument("--data", choices=("colour", "goemotions"), required=True,
                        help="colour: the colour-name corpus the models were trained on; goemotions: GoEmotions")
    parser.add_argument("--data-dir", default=None,
                        help="colour: folder of colornames.csv (unseen target-colour names to relearn from; "
                             "without it the held-out names); goemotions: the GoEmotions folder (else the Hub)")
    parser.add_argument("--out", default="results/robustness", help="report folder (default: results/robustness)")
    parser.add_argument("--k", type=_ks, default=(10, 100), help="relearning set sizes (default: 10,100)")
    parser.add_argument("--steps", type=int, default=100, help="relearning steps per curve (default: 100)")
    parser.add_argument("--lr", type=float, default=None,
                        help="relearning learning rate (default: colour 1e-3, goemotions 1e-4)")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="measure the held-out loss every N relearning steps (default: colour 1, goemotions 5)")
    parser.add_argument("--batch-size", type=int, default=10, help="relearning batch size (default: 10)")
    parser.add_argument("--repeats", type=int, default=3, help="draws of k examples per arm (default: 3)")
    parser.add_argument("--max-length", type=int, default=32, help="goemotions: training sequence length (32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data draws (default: 0)")
    parser.set_defaults(func=main)


def command_line(args: argparse.Namespace) -> str:
    parts = ["anchor-hf", "robustness", "--data", args.data, "--concept", args.concept]
    if args.data_dir is not None:
        parts += ["--data-dir", args.data_dir]
    for flag in ("model", "control", "never"):
        parts += [f"--{flag}", *getattr(args, flag)]
    parts += ["--out", args.out, "--k", ",".join(str(k) for k in args.k), "--steps", str(args.steps),
              "--lr", f"{learning_rate(args):g}", "--eval-every", str(eval_every(args)),
              "--batch-size", str(args.batch_size), "--repeats", str(args.repeats), "--seed", str(args.seed)]
    if args.data == "goemotions":
        parts += ["--max-length", str(args.max_length)]
    return " ".join(shlex.quote(p) for p in parts)


def learning_rate(args: argparse.Namespace) -> float:
    return LEARNING_RATES[args.data] if args.lr is None else args.lr


def eval_every(args: argparse.Namespace) -> int:
    return EVAL_EVERY[args.data] if args.eval_every is None else args.eval_every


def _writable(out: str) -> None:
    """Refuse an output folder that cannot be written, before hours of work."""
    import os

    from anchor_hf.errors import AnchorConfigError

    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise AnchorConfigError(f"--out = {out!r} cannot be written ({parent!r} is not a writable folder)")


def main(args: argparse.Namespace) -> int:
    import torch

    from anchor_hf.errors import AnchorConfigError
    from .relearn import RelearnSettings
    from .report import write
    from .runner import ModelDirs, check_triple, run_attacks
    from .sources import colour_data, goemotions_data

    if not len(args.model) == len(args.control) == len(args.never):
        raise AnchorConfigError(f"--model, --control and --never need one folder per seed each, got "
                                f"{len(args.model)}, {len(args.control)} and {len(args.never)}")
    if args.max_length < 2:
        raise AnchorConfigError(f"--max-length must be >= 2, got {args.max_length}")
    if args.steps >= 1 and eval_every(args) >= 1 and args.steps % eval_every(args):
        raise AnchorConfigError(f"--eval-every {eval_every(args)} must divide --steps {args.steps}")
    relearn = RelearnSettings(ks=args.k, steps=args.steps, learning_rate=learning_rate(args),
                              batch_size=args.batch_size, repeats=args.repeats, eval_every=eval_every(args))
    _writable(args.out)
    triples = [ModelDirs(*paths) for paths in zip(args.model, args.control, args.never)]
    if torch.get_num_threads() > 1 and not torch.cuda.is_available():
        torch.set_num_threads(1)  # small models: one thread is faster on a small shared CPU
    start = time.time()
    prepared = []
    for dirs in triples:  # every triple's data and models are checked before any attack runs
        if args.data == "colour":
            data = colour_data(dirs.anchored, args.concept, args.data_dir, seed=args.seed)
        else:
            data = goemotions_data(dirs.anchored, args.concept, args.data_dir, max_length=args.max_length,
                                   seed=args.seed)
        prepared.append((dirs, data, check_triple(dirs, data)))
    per_triple = []
    for i, (dirs, data, cfg) in enumerate(prepared):
        print(f"[robustness] triple {i + 1}/{len(prepared)}: {dirs.anchored}")
        per_triple.append(run_attacks(dirs, data, relearn, seed=args.seed, cfg=cfg))
    summary = write(args.out, per_triple, command_line(args))
    width = max(len(k) for k in summary)
    print(f"\n{summary['concept']}: {len(triples)} triple(s), medians")
    for key, value in summary.items():
        print(f"  {key:<{width}}  {value}")
    print(f"\nreport: {args.out}/report.md ({time.time() - start:.0f}s)")
    return 0
