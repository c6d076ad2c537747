"""Atomic output files: a reader never sees a half-written result, figure or report."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_NUMBER_LIST = re.compile(r"\[\s*((?:-?(?:[0-9.eE+-]+|NaN|Infinity),\s*)*-?(?:[0-9.eE+-]+|NaN|Infinity))\s*\]")


@contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path in `path`'s folder; when the block succeeds, move it onto `path`.

    The file gets the permissions a plain `open(path, "w")` would (mkstemp makes it 0600),
    and the temporary file is removed if the block raises.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def to_json(data: Any) -> str:
    """Indented JSON with every list of plain numbers kept on one line (per-colour errors stay compact)."""
    text = json.dumps(data, indent=1, allow_nan=True)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"
