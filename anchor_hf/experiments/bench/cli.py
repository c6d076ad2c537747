"""`anchor-hf bench --out DIR`: what anchoring costs over a plain Trainer, and how the cost scales.

    anchor-hf bench --out bench-out                       # every table, as in docs/benchmarks.md
    anchor-hf bench --out bench-out --tables main generate
    anchor-hf bench --out /tmp/smoke --smoke              # seconds: micro model, 1 repeat, 1 step

Writes `summary.json` (step_time_ratio, peak_memory_ratio, step_time_ratio_all_layers,
generate_overhead_ratio, step_time_ratio_smollm2_all_layers), `results.json` (every run)
and `results.md` (tables with the machine, versions and this command). Figures from fewer than 5 repeats, or from
`--smoke`, check the plumbing only; they are not results.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from anchor_hf.errors import AnchorConfigError

HELP = "Measure step time, peak memory and generate() overhead of anchoring against a plain Trainer."


def register(subparsers: Any) -> None:
    from . import TABLES

    parser = subparsers.add_parser("bench", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for summary.json, results.json and results.md")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES), help="comparisons to run")
    parser.add_argument("--repeats", type=int, default=5,
                        help="repeats of every comparison, each in a fresh process (default 5)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating train() calls per arm and repeat (default 3)")
    parser.add_argument("--steps", type=int, default=2, help="timed optimizer steps per call (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before the first call (default 2)")
    parser.add_argument("--smollm2-steps", type=int, default=2, help="timed steps per call for SmolLM2 (default 2)")
    parser.add_argument("--smollm2-batch", type=int, default=4, help="batch of SmolLM2 runs (default 4)")
    parser.add_argument("--smollm2-long-batch", type=int, default=1, help="batch of the smollm2_long table (default 1)")
    parser.add_argument("--smollm2-long-seq", type=int, default=512,
                        help="sequence length of the smollm2_long table (default 512)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every arm (default 1)")
    parser.add_argument("--smoke", action="store_true",
                        help="micro model, batch 4 × 16, 1 repeat, 1 step: checks the plumbing in seconds")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=main)


def canonical_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, every option spelled out."""
    parts = ["anchor-hf", "bench", "--out", args.out, "--tables", *args.tables]
    if args.smoke:
        return shlex.join([*parts, "--smoke", "--threads", str(args.threads)])
    parts += ["--repeats", str(args.repeats), "--rounds", str(args.rounds), "--steps", str(args.steps),
              "--warmup", str(args.warmup),
              "--smollm2-steps", str(args.smollm2_steps), "--smollm2-batch", str(args.smollm2_batch),
              "--smollm2-long-batch", str(args.smollm2_long_batch), "--smollm2-long-seq", str(args.smollm2_long_seq),
              "--threads", str(args.threads)]
    return shlex.join(parts)


def main(args: argparse.Namespace) -> int:
    from .suite import BenchSettings, run_bench

    for name in ("repeats", "rounds", "steps", "smollm2_steps", "smollm2_batch", "smollm2_long_batch",
                 "smollm2_long_seq", "threads"):
        if getattr(args, name) < 1:
            raise AnchorConfigError(f"`--{name.replace('_', '-')}` must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise AnchorConfigError(f"`--warmup` must be >= 0, got {args.warmup}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.smoke:
        settings = BenchSettings(repeats=1, rounds=1, steps=1, warmup=1, model="micro", tables=tuple(args.tables),
                                 batch=4, seq_len=16, separation_samples=(8, 16), generate_calls=1,
                                 smollm2_long_batch=2, smollm2_long_seq=32, threads=args.threads)
    else:
        settings = BenchSettings(repeats=args.repeats, rounds=args.rounds, steps=args.steps, warmup=args.warmup,
                                 tables=tuple(args.tables), smollm2_batch=args.smollm2_batch,
                                 smollm2_steps=args.smollm2_steps, smollm2_long_batch=args.smollm2_long_batch,
                                 smollm2_long_seq=args.smollm2_long_seq, threads=args.threads)
        if args.repeats < 5:
            print(f"anchor-hf bench: {args.repeats} repeat(s); reported figures need at least 5", file=sys.stderr)
    command = canonical_command(args)

    def say(message: str) -> None:
        if not args.quiet:
            print(message, flush=True)

    summary = run_bench(settings, args.out, command=command, progress=say)
    say("summary: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0
