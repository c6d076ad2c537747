"""The evaluate modules load by path with the Hub offline and agree with the probe functions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from anchor_hf.errors import AnchorConfigError
from anchor_hf.metrics import METRICS, metric_path
from anchor_hf.probes.alignment import containment, labelled_alignment
from anchor_hf.probes.detection import auroc

SCRIPT = """
import json, sys
import evaluate
from anchor_hf.metrics import metric_path
a = evaluate.load(metric_path("anchor_auroc")).compute(predictions=[0.9, 0.1, 0.8, 0.3, 0.5],
                                                      references=[1, 0, 1, 0, 0])
m = evaluate.load(metric_path("anchor_alignment")).compute(predictions=[0.8, 0.0, 0.1, 0.3],
                                                          references=[1.0, 0.0, 0.5, 0.0])
print(json.dumps({"auroc": a, "alignment": m}))
"""


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """Run in a fresh process with HF_HUB_OFFLINE=1 and an empty modules cache, as a user would."""
    import json

    pytest.importorskip("evaluate", reason="the metric modules are the `evaluate` extra (in dev)")

    cache = tmp_path_factory.mktemp("hf_modules")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(cache), "HF_HOME": str(cache)}
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_anchor_auroc_module_loads_offline_and_matches_probe(computed):
    expected = auroc(torch.tensor([0.9, 0.1, 0.8, 0.3, 0.5]), torch.tensor([1, 0, 1, 0, 0]))
    assert computed["auroc"] == {"auroc": pytest.approx(expected)}
    assert expected == 1.0


def test_anchor_alignment_module_loads_offline_and_matches_probe(computed):
    cos = torch.tensor([[0.8], [0.0], [0.1], [0.3]], dtype=torch.float64)
    live = torch.ones_like(cos, dtype=torch.bool)
    w = torch.tensor([1.0, 0.0, 0.5, 0.0], dtype=torch.float64)
    got = computed["alignment"]
    assert got["labelled"] == pytest.approx(labelled_alignment(cos, live, w)) == pytest.approx(0.85 / 1.5)
    assert got["containment"] == pytest.approx(containment(cos, live)) == pytest.approx(0.3)
    assert got["margin"] == pytest.approx(got["labelled"] - got["containment"])


def test_metric_modules_keep_one_import_per_line():
    """evaluate scans module files line by line for imports to check; keep each import on its own line."""
    for name in METRICS:
        with open(os.path.join(metric_path(name), f"{name}.py"), encoding="utf-8") as f:
            for line in f:
                if line.startswith(("import ", "from ")):
                    assert "," not in line and "(" not in line, line


def test_metric_path_rejects_unknown_names():
    with pytest.raises(AnchorConfigError, match="available"):
        metric_path("anchor_nothing")
