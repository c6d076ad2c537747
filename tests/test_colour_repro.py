"""`anchor-hf repro-paper` end to end (smoke: 1 seed, a few steps), and the summary it derives."""

from __future__ import annotations

import json
import math

import pytest

from anchor_hf.cli import main as cli_main
from anchor_hf.experiments.colour.ae.report import verdict
from anchor_hf.experiments.colour.ae.runner import SUMMARY_KEYS, summarize

EXPECTED_KEYS = {"seeds", "labels_fraction", "geometry_success_rate", "baseline_max_named_mse",
                 "anchored_suppression_red_mse", "anchored_suppression_lime_mse", "anchored_suppression_purple_mse",
                 "anchored_suppression_r2", "isolated_ablation_red_mse", "isolated_ablation_cyan_mse",
                 "isolated_ablation_r2"}


def test_smoke_run_writes_every_output_and_a_summary_with_exactly_the_keys(tmp_path, capsys):
    out = tmp_path / "report"
    assert cli_main(["repro-paper", "--seeds", "1", "--out", str(out), "--max-steps", "12", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == EXPECTED_KEYS and tuple(summary) == SUMMARY_KEYS
    assert isinstance(summary["seeds"], int) and summary["seeds"] == 1
    assert all(isinstance(summary[k], float) for k in EXPECTED_KEYS - {"seeds"})
    results = json.loads((out / "results.json").read_text())
    assert [(r["variant"], r["seed"]) for r in results["runs"]] == [("anchored", 0), ("isolated", 0)]
    for run in results["runs"]:
        assert set(run["conditions"]) == {"baseline", "suppress", "ablate"}
        assert run["examples_seen"] == 12 * 64 and "success" in run["geometry"]
    assert results["max_steps_override"] == 12
    report = (out / "report.md").read_text()
    assert "anchor-hf repro-paper --seeds 1 --out" in report and "Smoke run" in report
    for figure in ("anchored_suppress.png", "isolated_ablate.png"):
        data = (out / "figures" / figure).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp")]  # atomic writes leave nothing behind
    assert "wrote" in capsys.readouterr().out


def test_bad_arguments_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="`--seeds` must be >= 1, got 0"):
        cli_main(["repro-paper", "--seeds", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="`--isolated` = 'nope.yaml' is not a file"):
        cli_main(["repro-paper", "--seeds", "1", "--out", str(tmp_path), "--isolated", "nope.yaml"])
    assert not any(tmp_path.iterdir())


def _run(variant: str, seed: int, red: float, r2: float, worst: float, ok: bool) -> dict:
    named = {"red": red, "lime": 0.0, "purple": 0.0, "cyan": 0.0}
    cond = {"named_mse": named, "r2": r2}
    return {"variant": variant, "seed": seed, "labels_fraction": 0.001 * (seed + 1), "geometry": {"success": ok},
            "conditions": {"baseline": {"max_named_mse": worst}, "suppress": cond, "ablate": cond}}


def test_summary_takes_medians_over_seeds_and_the_worst_variant_per_seed():
    runs = [_run("anchored", 0, 0.1, 0.9, 0.001, True), _run("isolated", 0, 0.2, 0.5, 0.003, True),
            _run("anchored", 1, 0.3, 0.95, 0.002, False), _run("isolated", 1, 0.4, 0.7, 0.001, True),
            _run("anchored", 2, 0.5, 0.97, 0.001, True), _run("isolated", 2, 0.6, 0.8, 0.001, True)]
    summary = summarize(runs, [0, 1, 2])
    assert summary["anchored_suppression_red_mse"] == pytest.approx(0.3)
    assert summary["isolated_ablation_red_mse"] == pytest.approx(0.4)
    assert summary["isolated_ablation_r2"] == pytest.approx(0.7)
    assert summary["baseline_max_named_mse"] == pytest.approx(0.002)  # per seed: 0.003, 0.002, 0.001
    assert summary["geometry_success_rate"] == pytest.approx(5 / 6)
    assert summary["labels_fraction"] == pytest.approx(0.002)


def test_verdict_says_by_how_much_a_target_is_missed():
    assert verdict(0.3, ">=", 0.25) == "pass"
    assert verdict(0.2, ">=", 0.25) == "miss by 0.05"
    assert verdict(0.02, "<=", 0.01) == "miss by 0.01"
    assert verdict(float("nan"), "<=", 0.01) == "miss (no value)"


@pytest.mark.slow
def test_full_run_meets_the_paper_targets(tmp_path):
    """The science run (10 seeds of both recipes, a few minutes): every reproduction target holds."""
    out = tmp_path / "full"
    assert cli_main(["repro-paper", "--seeds", "10", "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["anchored_suppression_red_mse"] >= 0.25
    assert s["anchored_suppression_lime_mse"] <= 0.01 and s["anchored_suppression_purple_mse"] <= 0.01
    assert s["anchored_suppression_r2"] >= 0.93
    assert s["isolated_ablation_red_mse"] >= 0.30 and s["isolated_ablation_cyan_mse"] <= 0.02
    assert s["isolated_ablation_r2"] >= 0.86
    assert s["baseline_max_named_mse"] <= 0.002 and s["geometry_success_rate"] >= 0.9


def test_summary_is_nan_rather_than_dropping_a_nan_run():
    runs = [_run("anchored", 0, 0.1, float("nan"), 0.001, True), _run("isolated", 0, 0.2, 0.5, 0.001, True),
            _run("anchored", 1, 0.3, 0.95, 0.001, True), _run("isolated", 1, 0.4, 0.7, 0.001, True)]
    summary = summarize(runs, [0, 1])
    assert math.isnan(summary["anchored_suppression_r2"])
    assert summary["isolated_ablation_r2"] == pytest.approx(0.6)
