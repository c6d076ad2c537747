"""`anchor-hf probe` and the probe scripts run end to end on a tiny trained model and write every output;
bad input fails before any model is loaded."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
from matplotlib.image import imread
from probe_fixtures import copy_without, labelled_texts, train_tiny_anchored_model, write_jsonl

from tiny import make_model, make_tokenizer

from anchor_hf.cli import main as cli_main
from anchor_hf.errors import AnchorCheckpointError, AnchorConfigError, AnchorDataError
from anchor_hf.probes.inputs import load_anchor_config, load_probe_data
from anchor_hf.probes.suite import ProbeContext, run_detection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model folder with checkpoints, and held-out labelled texts (another seed than training)."""
    root = tmp_path_factory.mktemp("probe")
    model = train_tiny_anchored_model(str(root / "model"), steps=6)
    data = write_jsonl(str(root / "data.jsonl"), labelled_texts(36, seed=1))
    return {"root": root, "model": model, "data": data}


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_outputs(out: str, pngs: list[str]) -> dict:
    """report.json parses (strict JSON), report.md has a table per measure, and each PNG opens."""
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        report = json.loads(f.read(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    markdown = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert report["command"] in markdown
    for png in pngs:
        assert imread(os.path.join(out, f"{png}.png")).shape[0] > 100
    assert not [f for f in os.listdir(out) if ".tmp-" in f]
    return report


def test_probe_cli_writes_every_report_and_plot(trained):
    out = str(trained["root"] / "all")
    code = cli_main(["probe", trained["model"], "--data", trained["data"], "--out", out, "--checkpoints",
                     "--groups", "plain", "--no-progress"])
    assert code == 0
    report = check_outputs(out, ["alignment", "detection", "dose_response", "entanglement"])
    measures = report["measures"]
    assert set(measures) == {"alignment", "detection", "steerability", "entanglement"}
    assert report["concepts"] == ["red", "blue"] and report["layers"] == ["model.layers.0", "model.layers.1"]
    for concept in ("red", "blue"):
        for entry in measures["alignment"]["concepts"][concept]:
            assert -1 <= entry["containment"] <= 1 and len(entry["margins_over_checkpoints"]) == 3
        for entry in measures["detection"]["concepts"][concept]:
            assert 0 <= entry["anchored_auroc"] <= 1 and -1 <= entry["probe_cos"] <= 1
        steer = measures["steerability"]["concepts"][concept]
        assert len(steer["slopes"]) == 12 and 0 <= steer["wrong_way_fraction"] <= 1
    entanglement = measures["entanglement"]
    assert entanglement["groups"] == ["red", "blue", "plain"] and entanglement["rows"] == ["red", "blue"]
    for i, row in enumerate(entanglement["matrix"]):  # diagonal is 1 where A's own loss rose, else null
        assert row[i] in (None, pytest.approx(1.0))
    markdown = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    for heading in ("## Alignment", "## Detection", "## Steerability", "## Entanglement (suppress)"):
        assert heading in markdown


def test_anchored_axes_detect_their_concepts_after_a_few_steps(trained):
    """Science sanity on the same run: after 6 steps the pulled axes rank their concepts first (AUROC > 0.9),
    while the same model at initialization (seed 0, the run's starting point) does not."""
    out = str(trained["root"] / "detect")
    cli_main(["probe", trained["model"], "--data", trained["data"], "--out", out, "--measures", "detection",
              "--no-progress"])
    report = check_outputs(out, ["detection"])
    for concept in ("red", "blue"):
        assert report["measures"]["detection"]["concepts"][concept][0]["anchored_auroc_all"] > 0.9
    # negative control: the untrained starting point, measured the same way
    cfg, _ = load_anchor_config(trained["model"])
    data = load_probe_data(trained["data"], "text", ["red", "blue"])
    ctx = ProbeContext(make_model("llama", layers=2, seed=0), make_tokenizer(), cfg, ["red", "blue"], data,
                       progress=False)
    untrained = run_detection(ctx).results["concepts"]
    assert all(untrained[c][0]["anchored_auroc_all"] < 0.5 for c in ("red", "blue"))


def test_probe_steerability_script_writes_its_report(trained):
    script = load_script("probe_steerability")
    out = str(trained["root"] / "steer")
    args = script.make_parser().parse_args([trained["model"], "--data", trained["data"], "--out", out,
                                            "--doses", "-1", "0", "1", "--concepts", "red", "--no-progress"])
    assert script.main(args) == 0
    report = check_outputs(out, ["dose_response"])
    assert list(report["measures"]) == ["steerability"]
    assert report["measures"]["steerability"]["doses"] == [-1.0, 0.0, 1.0]
    assert sorted(os.listdir(out)) == ["dose_response.png", "report.json", "report.md"]


def test_probe_entanglement_script_with_ablation_restores_the_model(trained):
    script = load_script("probe_entanglement")
    out = str(trained["root"] / "ablate")
    args = script.make_parser().parse_args([trained["model"], "--data", trained["data"], "--out", out,
                                            "--entanglement-mode", "ablate", "--no-progress"])
    assert script.main(args) == 0
    report = check_outputs(out, ["entanglement"])
    ent = report["measures"]["entanglement"]
    assert ent["mode"] == "ablate" and len(ent["under"]) == 2
    # the weights are restored after each ablation, so a suppress run on the same model sees the same base
    out2 = str(trained["root"] / "suppress")
    script.main(script.make_parser().parse_args([trained["model"], "--data", trained["data"], "--out", out2,
                                                 "--no-progress"]))
    base2 = json.load(open(os.path.join(out2, "report.json")))["measures"]["entanglement"]["base"]
    assert base2 == pytest.approx(ent["base"], abs=1e-6)


# ---------------------------------------------------------------------- bad input
@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if the command gets as far as loading a model."""
    import anchor_hf.probes.inputs as inputs

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(inputs, "load_model_and_tokenizer", refuse)


def run(argv):
    return cli_main(["probe", *argv, "--no-progress"])


def test_missing_model_folder_fails_before_any_work(trained, no_model_loading, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(AnchorCheckpointError, match="does not exist"):
        run([str(tmp_path / "no_model"), "--data", trained["data"], "--out", str(out)])
    assert not out.exists()


def test_missing_anchor_config_fails_before_any_work(trained, no_model_loading, tmp_path):
    plain = copy_without(trained["model"], str(tmp_path / "plain"), "anchor_config.json")
    with pytest.raises(AnchorCheckpointError, match="has no anchor_config.json; pass --anchor-config"):
        run([plain, "--data", trained["data"], "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_unknown_concept_fails_before_any_work(trained, no_model_loading, tmp_path):
    with pytest.raises(AnchorConfigError, match=r"unknown concept 'green'; this config anchors \['red', 'blue'\]"):
        run([trained["model"], "--data", trained["data"], "--out", str(tmp_path / "out"), "--concepts", "green"])
    assert not (tmp_path / "out").exists()


def test_data_without_the_label_column_fails_before_any_work(trained, no_model_loading, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "blue"} for r in labelled_texts(12, seed=2)]
    data = write_jsonl(str(tmp_path / "no_blue.jsonl"), rows)
    with pytest.raises(AnchorDataError, match=r"no column \['blue'\]; columns present: \['plain', 'red', 'text'\]"):
        run([trained["model"], "--data", data, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_data_without_enough_concept_examples_fails_before_any_work(trained, no_model_loading, tmp_path):
    rows = [r for r in labelled_texts(12, seed=2) if r["red"] == 0] + labelled_texts(1, seed=3)
    data = write_jsonl(str(tmp_path / "one_red.jsonl"), rows)
    with pytest.raises(AnchorDataError, match=r"concept 'red' marks 1 of 9 examples .* at least 2 concept"):
        run([trained["model"], "--data", data, "--out", str(tmp_path / "out")])


@pytest.mark.parametrize("argv, message", [
    (["--doses", "1", "1"], "at least two different finite numbers"),
    (["--test-fraction", "1.5"], r"`--test-fraction` must be in \(0, 1\)"),
    (["--batch-size", "0"], "`--batch-size` must be >= 1"),
])
def test_bad_options_fail_before_any_work(trained, no_model_loading, tmp_path, argv, message):
    with pytest.raises(AnchorConfigError, match=message):
        run([trained["model"], "--data", trained["data"], "--out", str(tmp_path / "out"), *argv])


def test_checkpoints_flag_needs_checkpoint_folders(trained, no_model_loading, tmp_path):
    bare = copy_without(trained["model"], str(tmp_path / "bare"), "none")
    with pytest.raises(AnchorDataError, match="no checkpoint-<step> subfolders"):
        run([bare, "--data", trained["data"], "--out", str(tmp_path / "out"), "--checkpoints"])


def test_probe_with_a_control_puts_a_baseline_interval_and_verdict_beside_every_number(trained):
    """--control: the same measures on an un-anchored model of the same architecture (the run's starting point),
    stored beside each number; every measure has a verdict per concept, intervals, and a glossary link."""
    control = str(trained["root"] / "control")
    make_model("llama", layers=2, seed=0).save_pretrained(control)
    make_tokenizer().save_pretrained(control)
    out = str(trained["root"] / "with_control")
    assert cli_main(["probe", trained["model"], "--data", trained["data"], "--out", out, "--control", control,
                     "--bootstrap", "30", "--doses", "-1", "0", "1", "--no-progress"]) == 0
    report = check_outputs(out, ["alignment", "detection", "dose_response", "entanglement"])
    assert report["control"] == os.path.abspath(control) and "--control" in report["command"]
    measures = report["measures"]
    for concept in ("red", "blue"):
        anchored, base = measures["detection"]["concepts"][concept][0], measures["detection"]["control"][concept][0]
        low, high = anchored["anchored_auroc_interval"]
        assert low <= anchored["anchored_auroc"] <= high
        assert base["anchored_auroc"] < low  # the anchored axis beats its baseline, interval and all
        assert len(measures["alignment"]["control"][concept]) == 2
        assert measures["steerability"]["control"][concept]["slope_mean_interval"][0] is not None
        for name in ("alignment", "detection", "steerability", "entanglement"):
            assert report["verdicts"][name][concept].startswith(f"{concept}: ")
    assert "detectable without search" in report["verdicts"]["detection"]["red"]
    assert measures["entanglement"]["control"]["rows"] == ["red", "blue"]
    markdown = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert "## Verdicts" in markdown and "control anchored AUROC" in markdown and "noise floor" in markdown
    link = markdown.split("[glossary](")[1].split(")")[0]
    assert os.path.isfile(os.path.normpath(os.path.join(out, link)))  # the link resolves to docs/glossary.md


def test_probe_refuses_too_few_bootstrap_resamples_and_a_missing_control(trained):
    with pytest.raises(AnchorConfigError, match="`--bootstrap` must be >= 20"):
        cli_main(["probe", trained["model"], "--data", trained["data"], "--out", "x", "--bootstrap", "5"])
    with pytest.raises(AnchorCheckpointError, match="does not exist"):
        cli_main(["probe", trained["model"], "--data", trained["data"], "--out", "x", "--control", "/no/such"])
