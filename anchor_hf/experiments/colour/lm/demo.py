"""`anchor-hf demo`: the main demo — `anchor-hf colour` on the XKCD names with demo defaults.

Trains an anchored and a control tiny GPT-2 on the 949 XKCD colour names, probes and
intervenes, writes `results/demo/report.md` + figures + summary.json and prints a short
table. `scripts/demo.sh` installs and runs it. One seed by default to stay within
15 minutes on a 2-core CPU; `--seeds 3` gives the report's medians.
"""

from __future__ import annotations

import argparse
from typing import Any

from .cli import add_arguments, main as colour_main

HELP = "The main demo: anchored vs control colour LMs on XKCD names, probed and intervened (results/demo)."


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help=HELP, description=HELP)
    add_arguments(parser, "results/demo", 1)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    return colour_main(args)
