"""Argument types and defaults shared by several sub-commands (light: `anchor-hf --help` imports this)."""

from __future__ import annotations

import argparse

COLOUR_DESTINATION = "#808080"  # mid grey: where the colour corpora redirect a concept by default


def shard_arg(text: str) -> tuple[int, int]:
    """`I/N` (0 <= I < N): this process trains every N-th model from the I-th (`--shard`)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--shard takes I/N with 0 <= I < N, got {text!r}") from err
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard takes I/N with 0 <= I < N, got {text!r}")
    return i, n
