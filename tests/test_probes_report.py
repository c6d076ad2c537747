"""Reports are written all-or-nothing: JSON without NaN, a markdown table, and PNGs that open."""

from __future__ import annotations

import json
import math
import os

import pytest
from matplotlib.image import imread

from anchor_hf.probes.plots import plot_alignment, plot_detection, plot_dose_response, plot_entanglement
from anchor_hf.probes.report import markdown_table, write_report


def figures():
    layers = ["model.layers.0", "model.layers.1"]
    return {
        "alignment": plot_alignment(layers, {"red": {"labelled": [0.5, 0.7], "containment": [0.1, 0.05],
                                                     "margin": [0.4, 0.65],
                                                     "margin_interval": [[0.3, 0.5], [0.6, 0.7]]}}),
        "detection": plot_detection(layers, {"red": {"anchored": [0.9, 1.0], "probe": [0.95, 1.0]}}),
        "dose_response": plot_dose_response({"red": {"doses": [-1, 0, 1], "mean": [0, 1, 2], "std": [0.1] * 3}},
                                            "score"),
        "entanglement": plot_entanglement(["red", "blue"], ["red", "blue", "(unlabelled)"],
                                          [[1.0, 0.1, math.nan], [0.2, 1.0, 0.0]], "Entanglement"),
    }


def test_write_report_writes_json_markdown_and_every_png(tmp_path):
    paths = write_report(str(tmp_path / "out"), {"auroc": 0.9, "margin": math.nan, "rows": (1, 2)},
                         "# Report\n\n" + markdown_table(["a", "b"], [[0.123456, None]]), figures())
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data == {"auroc": 0.9, "margin": None, "rows": [1, 2]}  # NaN is not JSON: written as null
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| a | b |" in md and "0.1235" in md and "–" in md
    for name in ("alignment", "detection", "dose_response", "entanglement"):
        image = imread(paths[name])
        assert image.ndim == 3 and image.shape[0] > 100
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        ["report.json", "report.md", "alignment.png", "detection.png", "dose_response.png", "entanglement.png"])


def test_write_report_leaves_nothing_behind_when_a_figure_fails(tmp_path):
    class Broken:
        def savefig(self, *args, **kwargs):
            raise RuntimeError("disk full")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(str(out), {"x": 1}, "# r", {"alignment": figures()["alignment"], "broken": Broken()})
    assert os.listdir(out) == []  # neither final files nor temporaries


def test_write_report_keeps_the_previous_report_when_a_new_one_fails(tmp_path):
    out = str(tmp_path / "out")
    write_report(out, {"run": 1}, "# first", {})

    class Broken:
        def savefig(self, *args, **kwargs):
            raise OSError("boom")

    with pytest.raises(OSError):
        write_report(out, {"run": 2}, "# second", {"x": Broken()})
    assert json.loads(open(os.path.join(out, "report.json")).read()) == {"run": 1}
    assert sorted(os.listdir(out)) == ["report.json", "report.md"]


def test_importing_the_plots_leaves_the_users_matplotlib_backend_alone(tmp_path):
    """`probes/plots.py` used to call matplotlib.use("Agg") at import, switching a notebook's backend."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import anchor_hf.probes.plots as p; "
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
            f"p.plot_detection(['l0'], {{'red': {{'anchored': [0.9]}}}}).savefig({str(tmp_path / 'd.png')!r})")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert imread(tmp_path / "d.png").shape[-1] in (3, 4)  # a PNG was still written
