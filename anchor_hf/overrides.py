"""One key of a recipe's section from the command line: `--dataset_args.KEY VALUE`.

A recipe's mapping-valued fields (`MAPPING_FIELDS`) would otherwise be replaced whole by a
flag; a dotted flag sets one key in them (nested: `--FIELD.A.B VALUE`), the value read as
YAML, so `anchor-hf colour` and tests can change the target colour or a size alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from .errors import AnchorConfigError

# Mapping-valued fields: one key of them can be set with `--FIELD.KEY VALUE` (nested: `--FIELD.A.B VALUE`).
MAPPING_FIELDS = ("model_config", "lora_config", "dataset_args", "evaluation")


def parse_value(text: str) -> Any:
    """A command-line value read as YAML (`3` -> 3, `[0, 1]` -> a list, `true` -> True); `#ff0000` stays text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if value is None and text.strip().lower() not in ("", "null", "~", "none"):
        return text  # YAML reads `#...` as a comment
    return value


def split_key_overrides(argv: Sequence[str]) -> tuple[list[str], dict[str, list[tuple[list[str], Any]]]]:
    """Take the `--FIELD.KEY VALUE` flags of `MAPPING_FIELDS` out of `argv`.

    Returns the other arguments, and per field the `(key path, value)` overrides in order.
    """
    rest: list[str] = []
    found: dict[str, list[tuple[list[str], Any]]] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        head, dot, key = name.partition(".")
        if not dot or head not in MAPPING_FIELDS:
            rest.append(arg)
            i += 1
            continue
        if "=" in arg:
            text, i = arg.split("=", 1)[1], i + 1
        elif i + 1 < len(items):
            text, i = items[i + 1], i + 2
        else:
            raise AnchorConfigError(f"`{arg}` needs a value")
        path = key.split(".")
        if not all(path):
            raise AnchorConfigError(f"`{arg}`: write --{head}.KEY VALUE (or --{head}.A.B VALUE)")
        found.setdefault(head, []).append((path, parse_value(text)))
    return rest, found


def apply_key_overrides(mapping: dict[str, Any], overrides: list[tuple[list[str], Any]], name: str) -> dict[str, Any]:
    """A copy of `mapping` (the field `name`) with each `(key path, value)` set in it."""
    mapping = dict(mapping)
    for path, value in overrides:
        node = mapping
        for depth, key in enumerate(path[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise AnchorConfigError(f"`--{name}.{'.'.join(path)}`: `{name}.{'.'.join(path[:depth + 1])}` is "
                                        f"{child!r}, not a mapping")
            node[key] = child = dict(child)
            node = child
        node[path[-1]] = value
    return mapping
