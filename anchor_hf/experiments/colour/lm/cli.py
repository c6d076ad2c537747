"""`anchor-hf colour`: train anchored + control colour LMs over seeds, probe, intervene, report.

    anchor-hf colour --concept red --destination '#808080' --seeds 3 --corpus xkcd --out docs/reports/redirect

Trains `recipes/colour_{names,mixing}_{destination,anchored,control}.yaml` through
`anchor-hf train` (finished models in `OUT/models/` are reused unless `--retrain`):
per seed the target anchored with its trained destination, the same without a destination,
and the control (`--destination opposite`: no trained destination, two models per seed).
Evaluates each seed (`anchor_hf.experiments.colour.lm`) and writes `summary.json`,
`report.md`, `report.json` and the figures into OUT, with this exact command in the
report. Every argument is checked before anything trains.
"""

from __future__ import annotations

import argparse
import shlex
import time
from typing import Any

from anchor_hf.experiments.options import COLOUR_DESTINATION as DEFAULT_DESTINATION
from anchor_hf.experiments.options import shard_arg

HELP = "Colour LM validation: train anchored + control models, probe, intervene, write a report."


def add_arguments(parser: argparse.ArgumentParser, out: str, seeds: int, aware_steps: int = 0,
                  redirect_onset: float = -1.0) -> None:
    parser.add_argument("--concept", default="red", help="target colour: a hue (red, orange, ...), an XKCD name, "
                                                         "or #rrggbb (default: red)")
    parser.add_argument("--destination", default=DEFAULT_DESTINATION,
                        help="redirect destination, trained as a second concept on the target's opposite pole: "
                             f"#rrggbb, a hue or an XKCD name (default: {DEFAULT_DESTINATION}); or `opposite`: no "
                             "trained destination, redirect to the untrained opposite pole")
    parser.add_argument("--aware-steps", type=int, default=None,
                        help="intervention-aware steps after training (names corpora): the anchored model continues "
                             "with redirected target lines answering the destination (a fixed share of the target "
                             "names withheld), the control as many steps without them; 0 = none "
                             f"(default: {aware_steps} on the names corpora, 0 on the mixing language)")
    parser.add_argument("--redirect-onset", type=float, default=redirect_onset,
                        help="graded redirect: states with alignment below this are not moved (falloff (a, 1, 1)), "
                             "in the aware steps and the evaluation; a negative value = the full redirect "
                             f"(default: {redirect_onset})")
    parser.set_defaults(aware_default=aware_steps)
    parser.add_argument("--seeds", type=int, default=seeds, help=f"training seeds 0..N-1 (default: {seeds})")
    parser.add_argument("--corpus", choices=("xkcd", "colornames", "mixing"), default="xkcd",
                        help="XKCD names (default), the colornames list (needs --data-dir), or the mixing language")
    parser.add_argument("--out", default=out, help=f"output folder (default: {out})")
    parser.add_argument("--data-dir", default=None, help="folder holding colornames.csv (read in place)")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipes' training steps")
    parser.add_argument("--anchored-args", default="", help="extra `--key value` flags for the anchored training")
    parser.add_argument("--control-args", default="", help="extra `--key value` flags for the control training")
    parser.add_argument("--train-args", default="", help="extra `--key value` flags for both trainings")
    parser.add_argument("--retrain", action="store_true", help="train again even where finished models exist")
    parser.add_argument("--train-only", action="store_true", help="train the models, skip evaluation")
    parser.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                        help="with --train-only: train only every N-th model from the I-th (0-based), so N "
                             "processes can share the work; then run once more without it to evaluate")
    parser.add_argument("--neversaw", action="store_true",
                        help="also train never-saw-it models (the control without the target colour), the gold "
                             "standard that `anchor-hf robustness` compares removal against")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("colour", help=HELP, description=HELP)
    add_arguments(parser, "results/colour", 3)
    parser.set_defaults(func=main)


def aware_steps(args: argparse.Namespace) -> int:
    """`--aware-steps`, or its default: the command's on the names corpora, 0 on the mixing language."""
    if args.aware_steps is not None:
        return args.aware_steps
    return 0 if args.corpus == "mixing" else args.aware_default


def build_run(args: argparse.Namespace) -> Any:
    from .pipeline import ColourRun

    return ColourRun(concept=args.concept, corpus=args.corpus, seeds=args.seeds, out=args.out,
                     data_dir=args.data_dir, max_steps=args.max_steps,
                     anchored_args=shlex.split(args.anchored_args), control_args=shlex.split(args.control_args),
                     common_args=shlex.split(args.train_args), retrain=args.retrain,
                     neversaw=args.neversaw, destination=args.destination, aware_steps=aware_steps(args),
                     redirect_onset=None if args.redirect_onset < 0 else args.redirect_onset)


def print_table(summary: dict[str, Any]) -> None:
    """A short table of the headline numbers."""
    rows = [("held-out error (anchored / control)",
             f"{summary['heldout_error_anchored']:.4f} / {summary['heldout_error_control']:.4f}"),
            ("AUROC (anchored / control)", f"{summary['auroc_anchored']:.3f} / {summary['auroc_control']:.3f}"),
            ("margin / containment", f"{summary['margin']:.3f} / {summary['containment']:.3f}"),
            ("suppressed target error", f"{summary['suppression_target_error']:.4f}"),
            ("selectivity ratio (anchor / post-hoc)",
             f"{summary['suppression_selectivity_ratio']:.3g} / {summary['posthoc_selectivity_ratio']:.3g}"),
            ("suppression R² vs similarity²", f"{summary['suppression_r2']:.3f}"),
            ("label fraction", f"{summary['label_fraction']:.4f}"),
            (f"redirect → {summary['destination']}: remaining (random direction)",
             f"{summary['redirect_remaining']:.3f} ({summary['redirect_random_remaining']:.3f})"),
            ("redirect target error / LEACE on the control",
             f"{summary['redirect_target_error']:.4f} / {summary['leace_target_error']:.4f}"),
            ("redirect dissimilar rise", f"{summary['redirect_dissimilar_rise']:.4f}"),
            ("held-out error ratio anchored ÷ control (per seed, median)", f"{summary['heldout_error_ratio']:.3f}")]
    width = max(len(k) for k, _ in rows)
    print(f"\n{summary['concept']} on {summary['corpus']}, {summary['seeds']} seed(s), medians:")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out, for the report."""
    parts = ["anchor-hf", args.command or "colour", "--concept", args.concept, "--destination", args.destination,
             "--aware-steps", str(aware_steps(args)), "--redirect-onset", f"{args.redirect_onset:g}",
             "--seeds", str(args.seeds), "--corpus", args.corpus, "--out", args.out]
    for flag, value in (("--data-dir", args.data_dir), ("--max-steps", args.max_steps),
                        ("--anchored-args", args.anchored_args), ("--control-args", args.control_args),
                        ("--train-args", args.train_args)):
        if value not in (None, ""):
            parts += [flag, str(value)]
    for flag in ("retrain", "neversaw"):
        if getattr(args, flag):
            parts.append(f"--{flag}")
    return " ".join(shlex.quote(p) for p in parts)


def main(args: argparse.Namespace) -> int:
    import torch

    from .pipeline import evaluate_all, train_all

    if args.shard is not None and not args.train_only:
        from anchor_hf.errors import AnchorConfigError

        raise AnchorConfigError("--shard trains a share of the models only; use it with --train-only")
    run = build_run(args)  # every argument checked before anything trains
    run.spec()
    from anchor_hf.probes.posthoc import is_leace_available

    if not args.train_only and not is_leace_available():
        from anchor_hf.errors import AnchorConfigError

        raise AnchorConfigError("the report compares redirect with LEACE, which needs the `concept-erasure` package "
                                "(the `experiments` extra: pip install 'anchor-hf[experiments]'); or use --train-only")
    if torch.get_num_threads() > 1 and not torch.cuda.is_available():
        torch.set_num_threads(1)  # tiny models: one thread is several times faster on a small CPU
    start = time.time()
    train_all(run, shard=args.shard)
    if args.train_only:
        return 0
    summary = evaluate_all(run, command_line(args))
    print_table(summary)
    print(f"\nreport: {run.out}/report.md ({time.time() - start:.0f}s)")
    return 0
