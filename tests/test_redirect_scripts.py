"""The two report scripts of the GoEmotions redirect work run end to end on tiny inputs and write their tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_goemotions_scratch import run_cli

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def test_variants_table_copies_each_summary_with_its_interval_and_command(tmp_path):
    for name, toward in (("a", 0.61), ("b", None)):
        folder = tmp_path / name
        folder.mkdir()
        summary = {"seeds": 3, "redirect_toward": toward, "redirect_toward_ci95": [0.5, 0.7] if toward else None,
                   "perplexity_ratio": 1.02}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "report.json").write_text(json.dumps({"command": f"anchor-hf goemotions --out {name}"}))
    out = tmp_path / "table"
    done = run_script("redirect_variants.py", "--out", str(out), "--run", f"first={tmp_path / 'a'}",
                      "--run", f"second={tmp_path / 'b'}")
    assert done.returncode == 0, done.stderr
    table = (out / "report.md").read_text()
    assert "| first | 3 | 0.610 [0.50, 0.70] |" in table and "| second | 3 | not measurable |" in table
    assert "anchor-hf goemotions --out a" in table and "python scripts/redirect_variants.py" in table
    bad = run_script("redirect_variants.py", "--out", str(out), "--run", str(tmp_path / "a"))
    assert bad.returncode != 0 and "LABEL=FOLDER" in bad.stderr


def test_measurability_reports_model_denominators_beside_the_real_text_ceiling(tmp_path):
    assert run_cli(tmp_path, "--train-only", "--shard", "1/3") == 0  # the control only
    models = tmp_path / "out" / "models"
    out = tmp_path / "measure"
    done = run_script("redirect_measurability.py", "--model", str(models / "control_seed0"), "--tokenizer",
                      str(models / "tokenizer"), "--data-dir", str(tmp_path / "data"), "--pairs", "anger:neutral",
                      "--prompt-tokens", "2", "--new-tokens", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads((out / "report.json").read_text())["results"]
    assert entry["prompts"] == [40, 40] and len(entry["ceiling"]) == 2
    # the tiny corpus writes each emotion with its own words, so its real remainders separate the sides
    assert entry["ceiling"][0] > 0.05 and entry["ceiling"][1] > 0.05
    assert "| anger:neutral | 2 | 40 / 40 |" in (out / "report.md").read_text()
