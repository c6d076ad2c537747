"""Write a probe report: `report.json`, a `report.md` table and PNG figures, all-or-nothing.

Every file is first written under a temporary name in the output folder and only then
moved into place with `os.replace` (atomic on one filesystem), so an interrupted run
never leaves a half-written report that looks complete.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import io

if TYPE_CHECKING:
    from matplotlib.figure import Figure


GLOSSARY = Path(__file__).resolve().parents[2] / "docs" / "glossary.md"  # in a checkout; wheels ship no docs


def glossary_link(out_dir: str) -> str:
    """A markdown link to docs/glossary.md relative to a report written in `out_dir`, or its name in words.

    The link works when the report sits in the same checkout (docs/reports/...); elsewhere the
    relative path still names the file.
    """
    if GLOSSARY.is_file():
        return f"[glossary]({os.path.relpath(GLOSSARY, os.path.abspath(out_dir))})"
    return "glossary (docs/glossary.md in the anchor_hf repository)"


def _tmp(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}"


def json_safe(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None (JSON has no NaN), tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str, value: Any) -> str:
    """Write `value` as indented JSON to `path` atomically, NaN and inf as null (`json_safe`)."""
    return io.write_json(path, json_safe(value), allow_nan=False)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats to 4 significant digits, NaN/None as `–`."""
    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out_dir: str, results: Mapping[str, Any], markdown: str,
                 figures: Mapping[str, Figure]) -> dict[str, str]:
    """Write `report.json`, `report.md` and `<name>.png` for each figure into `out_dir`.

    All files are written to temporary names first and renamed only when every one has
    been written; on failure the temporary files are removed and nothing is replaced.

    Returns:
        file kind or figure name -> final path.
    """
    os.makedirs(out_dir, exist_ok=True)
    targets = {"json": os.path.join(out_dir, "report.json"), "md": os.path.join(out_dir, "report.md")}
    targets.update({name: os.path.join(out_dir, f"{name}.png") for name in figures})
    written: list[str] = []
    try:
        with open(_tmp(targets["json"]), "w", encoding="utf-8") as f:
            written.append(_tmp(targets["json"]))
            json.dump(json_safe(results), f, indent=2, allow_nan=False)
            f.write("\n")
        with open(_tmp(targets["md"]), "w", encoding="utf-8") as f:
            written.append(_tmp(targets["md"]))
            f.write(markdown.rstrip() + "\n")
        for name, fig in figures.items():
            written.append(_tmp(targets[name]))
            fig.savefig(_tmp(targets[name]), format="png", dpi=120)
    except BaseException:
        for path in written:
            if os.path.exists(path):
                os.remove(path)
        raise
    for path in targets.values():
        os.replace(_tmp(path), path)
    return targets
