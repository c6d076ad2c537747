"""Compact JSON for the reproduction's results (written atomically by `anchor_hf.io.write_text`)."""

from __future__ import annotations

import json
import re
from typing import Any

_NUMBER_LIST = re.compile(r"\[\s*((?:-?(?:[0-9.eE+-]+|NaN|Infinity),\s*)*-?(?:[0-9.eE+-]+|NaN|Infinity))\s*\]")


def to_json(data: Any) -> str:
    """Indented JSON with every list of plain numbers kept on one line (per-colour errors stay compact)."""
    text = json.dumps(data, indent=1, allow_nan=True)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"
