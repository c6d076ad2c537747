"""anchor_hf.experiments.colour.ae.files: atomic outputs and compact JSON."""

from __future__ import annotations

import json
import math
import os

import pytest

from anchor_hf.experiments.colour.ae.files import atomic_path, to_json, write_text


def test_write_text_replaces_the_file_with_plain_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "out" / "report.md"
    write_text(str(target), "first")
    write_text(str(target), "second")
    assert target.read_text() == "second"
    assert os.stat(target).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]


def test_atomic_path_keeps_the_old_file_when_the_body_raises(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(str(target)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_to_json_round_trips_and_keeps_number_lists_on_one_line():
    data = {"grid_mse": [0.25, 1e-05, -3.0, float("nan")], "named": {"red": 0.3}, "names": ["a", "b"]}
    text = to_json(data)
    back = json.loads(text)
    assert back["named"] == data["named"] and back["names"] == data["names"]
    assert back["grid_mse"][:3] == data["grid_mse"][:3] and math.isnan(back["grid_mse"][3])
    assert '"grid_mse": [0.25, 1e-05, -3.0, NaN]' in text
    assert '"names": [\n' in text  # strings keep the indented layout
