"""anchor_hf.experiments.colour.ae.files: compact JSON for the reproduction's results."""

from __future__ import annotations

import json
import math

from anchor_hf.experiments.colour.ae.files import to_json


def test_to_json_round_trips_and_keeps_number_lists_on_one_line():
    data = {"grid_mse": [0.25, 1e-05, -3.0, float("nan")], "named": {"red": 0.3}, "names": ["a", "b"]}
    text = to_json(data)
    back = json.loads(text)
    assert back["named"] == data["named"] and back["names"] == data["names"]
    assert back["grid_mse"][:3] == data["grid_mse"][:3] and math.isnan(back["grid_mse"][3])
    assert '"grid_mse": [0.25, 1e-05, -3.0, NaN]' in text
    assert '"names": [\n' in text  # strings keep the indented layout
