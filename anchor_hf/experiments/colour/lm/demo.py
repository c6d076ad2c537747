"""`anchor-hf demo`: the main demo — `anchor-hf colour` on the XKCD names with demo defaults.

Trains tiny GPT-2s on the 949 XKCD colour names — red anchored with a trained destination
(mid grey on its own axis) and continued with 150 intervention-aware steps, the same recipe
without a destination, and a control continued as many steps — then probes and intervenes:
redirect beside suppress, LEACE and the post-hoc baselines. Writes `results/demo/report.md`
+ figures + summary.json and prints a short table. `scripts/demo.sh` installs and runs it.
One seed by default to stay within 15 minutes on a 2-core CPU; `--seeds 3` gives the
report's medians.
"""

from __future__ import annotations

import argparse
from typing import Any

from .cli import add_arguments, main as colour_main

# The best redirect recipe measured (docs/reports/redirect): 150 intervention-aware steps, graded redirect above 0.3
DEMO_AWARE_STEPS = 150
DEMO_REDIRECT_ONSET = 0.3

HELP = "The main demo: anchored vs control colour LMs on XKCD names, probed and intervened (results/demo)."


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help=HELP, description=HELP)
    add_arguments(parser, "results/demo", 1, aware_steps=DEMO_AWARE_STEPS, redirect_onset=DEMO_REDIRECT_ONSET)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    return colour_main(args)
