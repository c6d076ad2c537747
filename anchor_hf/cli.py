"""The `anchor-hf` command: the library's sub-commands, then the experiments'.

This module is the composition root: the one place in the core that knows the
experiments exist (`anchor_hf.experiments.COMMAND_MODULES`); every other core module
stays unaware of them. Each command module exposes `register(subparsers)`, which adds its
parser and sets `func` to a `main(args) -> int`; heavy imports happen inside `main`, so
`anchor-hf --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from .experiments import COMMAND_MODULES as EXPERIMENT_COMMANDS

# modules whose `register(subparsers)` adds a sub-command: the library's first, then the experiments'
COMMAND_MODULES = ("anchor_hf.commands.train", "anchor_hf.commands.probe", "anchor_hf.commands.convert_gguf",
                   "anchor_hf.commands.export_control_vector", *EXPERIMENT_COMMANDS)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anchor-hf", description="Sparse Concept Anchoring for HF transformers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
