"""`anchor-hf repro-paper`: reproduce the paper's colour-autoencoder results (docs/method.md §7).

    anchor-hf repro-paper --seeds 10 --out docs/reports/colour_ae

Trains every seed of the "anchored" (suppression) and "isolated" (ablation) recipes, and
writes DIR/results.json, DIR/summary.json, DIR/report.md (measured medians beside the
paper's numbers, with this command) and DIR/figures/*.png. Inputs are checked before any
training starts.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from anchor_hf.resources import recipe_path

HELP = "Reproduce the paper's colour-autoencoder results (suppression and ablation of red) over seeds."


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("repro-paper", help=HELP, description=HELP)
    parser.add_argument("--seeds", type=int, required=True,
                        help="seeds per variant (the targets are medians over >= 10)")
    parser.add_argument("--out", required=True,
                        help="output folder for results.json, summary.json, report.md, figures/")
    parser.add_argument("--anchored", default=str(recipe_path("colour_ae_anchored")),
                        help="recipe of the anchored (suppression) variant")
    parser.add_argument("--isolated", default=str(recipe_path("colour_ae_isolated")),
                        help="recipe of the isolated (ablation) variant")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cut every recipe to this many steps (smoke runs only; marked in the report)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: these models are too small to gain from more)")
    parser.add_argument("--quiet", action="store_true", help="no line per finished run")
    parser.set_defaults(func=main)


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out, paths as given, for the report."""
    parts = ["anchor-hf", "repro-paper", "--seeds", str(args.seeds), "--out", args.out,
             "--anchored", _relative(args.anchored), "--isolated", _relative(args.isolated),
             "--first-seed", str(args.first_seed), "--threads", str(args.threads)]
    if args.max_steps is not None:
        parts += ["--max-steps", str(args.max_steps)]
    return shlex.join(parts)


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path


def main(args: argparse.Namespace) -> int:
    import torch

    from anchor_hf.errors import AnchorConfigError
    from .runner import run_paper

    if args.seeds < 1:
        raise AnchorConfigError(f"`--seeds` must be >= 1, got {args.seeds}")
    if args.max_steps is not None and args.max_steps < 1:
        raise AnchorConfigError(f"`--max-steps` must be >= 1, got {args.max_steps}")
    if args.threads < 1:
        raise AnchorConfigError(f"`--threads` must be >= 1, got {args.threads}")
    for flag, path in (("--anchored", args.anchored), ("--isolated", args.isolated)):
        if not os.path.isfile(path):
            raise AnchorConfigError(f"`{flag}` = {path!r} is not a file; pass the recipe YAML")
    torch.set_num_threads(args.threads)
    recipes = {"anchored": _relative(args.anchored), "isolated": _relative(args.isolated)}  # as in the command
    summary = run_paper(args.seeds, args.out, recipes,
                        first_seed=args.first_seed, max_steps=args.max_steps, command=command_line(args),
                        progress=None if args.quiet else print)
    print(f"wrote {os.path.join(args.out, 'report.md')}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0
