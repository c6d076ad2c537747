"""The `anchor-hf` command: one sub-command per module under `anchor_hf/commands/`.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func` to a `main(args) -> int`. Modules import lazily so `anchor-hf --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

# name -> module under anchor_hf.commands; a command is listed only once it exists.
COMMANDS: dict[str, str] = {"train": "train", "probe": "probe", "colour": "colour", "demo": "demo",
                            "bench": "bench",
                            "goemotions": "goemotions", "robustness": "robustness",
                            "repro-paper": "repro_paper"}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anchor-hf", description="Sparse Concept Anchoring for HF transformers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        import_module(f"anchor_hf.commands.{module}").register(sub)
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
