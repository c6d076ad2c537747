"""`anchor-hf bench`: a smoke run writes its files with exactly the summary keys; the pieces it is built from.

No test asserts a timing: on a shared machine any threshold would either flake or be
too loose to mean anything. Figures live in docs/benchmarks.md with the command that
produced them.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from anchor_hf.experiments.bench.arm import TensorPeak, live_tensor_bytes
from anchor_hf.experiments.bench.runner import Ratio
from anchor_hf.experiments.bench.setups import anchor_config, anchored_layers
from anchor_hf.experiments.bench import SUMMARY_KEYS
from anchor_hf.cli import main
from anchor_hf.errors import AnchorConfigError


def test_bench_smoke_run_writes_summary_with_exactly_the_keys_and_the_tables(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--smoke", "--tables", "main", "generate", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS
    long_key = "step_time_ratio_smollm2_all_layers"  # its table (smollm2_long) was not asked for
    assert summary[long_key] is None
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for k, v in summary.items() if k != long_key), \
        summary
    results = json.loads((out / "results.json").read_text())
    main_table = results["tables"]["main"]
    assert [a["label"] for a in main_table["arms"]] == ["1c 2L pooled", "4c allL pooled", "1c 1L pooled",
                                                        "1c allL pooled"]
    for run in main_table["plain"] + [r for a in main_table["arms"] for r in a["runs"]]:
        assert len(run["step_times"]) == len(run["step_wall_times"]) == 1  # 1 round × 1 step
        assert run["peak_memory"] > 0
    assert summary["step_time_ratio"] == main_table["arms"][0]["step_time_ratio"]["median"]
    assert set(results["generate"]["ratios"]) == {"steer 1c 2L", "suppress 1c 2L", "steer allL", "suppress allL"}
    report = (out / "results.md").read_text()
    assert "| plain `Trainer` |" in report and "## generate" in report and "anchor-hf bench --out" in report


def test_bench_summary_holds_none_for_tables_not_run(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--smoke", "--tables", "generate", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["step_time_ratio"] is None and summary["generate_overhead_ratio"] is not None


@pytest.mark.parametrize("flag,value", [("--repeats", "0"), ("--steps", "0"), ("--warmup", "-1")])
def test_bench_rejects_counts_out_of_range_before_running(tmp_path, flag, value):
    with pytest.raises(AnchorConfigError, match=flag):
        main(["bench", "--out", str(tmp_path), flag, value])
    assert not (tmp_path / "summary.json").exists()


def test_anchored_layers_spreads_blocks_back_from_the_last_and_rejects_bad_specs():
    assert anchored_layers("1", 4) == [2]
    assert anchored_layers("2", 4) == anchored_layers("half", 4) == [1, 3]
    assert anchored_layers("all", 4) == anchored_layers("4", 4) == [0, 1, 2, 3]
    assert anchored_layers("2", 30) == [14, 29]
    for n in (2, 3, 7, 30):  # always distinct, in range, as many as asked, ending at the last block
        layers = anchored_layers(str(n), 30)
        assert len(set(layers)) == n and 0 <= min(layers) and max(layers) == 29
    with pytest.raises(AnchorConfigError, match="asks for 5 blocks"):
        anchored_layers("5", 4)
    with pytest.raises(AnchorConfigError, match="'all', 'half' or a positive count"):
        anchored_layers("most", 4)


def test_anchor_config_has_one_axis_per_concept_and_pooling_as_asked():
    cfg = anchor_config(4, [1, 3], pooled=False, separation=True)
    assert [c.dims for c in cfg.concepts] == [[0], [1], [2], [3]]
    assert all(c.tau is None for c in cfg.concepts) and cfg.separation > 0
    assert anchor_config(1, [0], pooled=True, separation=False).concepts[0].tau == 0.1


def test_ratio_summary_gives_median_min_max_of_the_values():
    summary = Ratio([1.2, 0.9, 1.0]).summary()
    assert (summary["median"], summary["min"], summary["max"], summary["n"]) == (1.0, 0.9, 1.2, 3)


def test_live_tensor_bytes_counts_shared_storage_once():
    """Tied weights (embedding = LM head) are one storage: counting them twice would inflate the baseline."""
    shared = torch.nn.Parameter(torch.zeros(10, 4))
    model = torch.nn.Module()
    model.a, model.b = torch.nn.Linear(4, 10, bias=False), torch.nn.Linear(4, 10, bias=False)
    model.a.weight = model.b.weight = shared
    assert live_tensor_bytes(model, None) == 10 * 4 * 4
    model.b.weight = torch.nn.Parameter(torch.zeros(10, 4))  # negative control: untied, counted twice
    assert live_tensor_bytes(model, None) == 2 * 10 * 4 * 4


def test_tensor_peak_sees_a_tensor_that_lives_only_inside_the_step():
    """The peak counts a 4 MB temporary freed before the step ends; the static part counts the parameters."""
    model = torch.nn.Linear(8, 8)
    peak = TensorPeak(step=1)

    class State:
        global_step = 0

    peak.on_step_begin(None, State(), None, model=model, optimizer=None)
    temporary = torch.ones(1024, 1024)  # 4 MiB
    del temporary
    peak.on_step_end(None, State(), None)
    params = (8 * 8 + 8) * 4
    assert peak.peak is not None and peak.peak >= params + 4 * 2**20
    idle = TensorPeak(step=1)  # negative control: the same step without the temporary
    idle.on_step_begin(None, State(), None, model=model, optimizer=None)
    idle.on_step_end(None, State(), None)
    assert idle.peak is not None and idle.peak < params + 2**20


def test_bench_smollm2_long_table_fills_its_summary_key_and_bounds_the_upper_quartile(tmp_path):
    """The long-sequence, all-blocks table (the micro model stands in for SmolLM2 in a smoke run)."""
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--smoke", "--tables", "smollm2_long", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS and summary["step_time_ratio"] is None
    results = json.loads((out / "results.json").read_text())
    (arm,) = results["tables"]["smollm2_long"]["arms"]
    assert arm["label"] == "4c allL pooled" and arm["spec"]["lora"] and arm["spec"]["seq_len"] == 32
    assert summary["step_time_ratio_smollm2_all_layers"] == arm["step_time_ratio"]["median"] > 0
    assert "upper quartile" in (out / "results.md").read_text()


def test_ratio_summary_upper_quartile_lies_between_median_and_max():
    summary = Ratio([1.0, 1.2, 1.01, 0.99, 1.03]).summary()
    assert summary["median"] == 1.01 and summary["q3"] == 1.03 and summary["max"] == 1.2
    assert Ratio([1.1]).summary()["q3"] == 1.1
