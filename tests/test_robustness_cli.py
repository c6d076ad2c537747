"""`anchor-hf robustness` smoke runs on tiny colour and GoEmotions models, and its argument checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from anchor_hf.cli import main
from anchor_hf.data.colour_recipe import ColourSpec, load_spec
from anchor_hf.errors import AnchorConfigError
from anchor_hf.robustness.runner import SUMMARY_KEYS
from test_goemotions_scratch import TINY as GOEMOTIONS_TINY, write_corpus

FILES = ("report.md", "report.json", "summary.json", "recovery.png", "probes.png", "fingerprint.png")
FAST = ["--k", "2,50", "--steps", "3", "--repeats", "2"]


def _check_report(out: Path, command: str) -> dict:
    for name in FILES:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS
    report = (out / "report.md").read_text()
    assert command in report  # the exact command is in the report
    results = json.loads((out / "report.json").read_text())
    (triple,) = results["per_triple"]
    assert set(triple["arms"]) == {"ablated", "suppressed", "posthoc", "never"}
    assert triple["arms"]["never"]["fingerprint"]["pvalue"] == 1.0  # the gold standard against itself
    return results


def test_goemotions_models_are_attacked_end_to_end(tmp_path):
    data = write_corpus(tmp_path / "data")
    args = ["goemotions", "--recipe", "scratch", "--concept", "anger", "--seeds", "1", "--out", str(tmp_path / "ge"),
            "--data-dir", str(data)]
    for item in GOEMOTIONS_TINY:
        args += ["--set", item]
    assert main(args) == 0
    models = tmp_path / "ge" / "models"
    out = tmp_path / "robust"
    assert main(["robustness", "--data", "goemotions", "--concept", "anger", "--data-dir", str(data),
                 "--model", str(models / "anchored_rate0.05_seed0"), "--control", str(models / "control_seed0"),
                 "--never", str(models / "neversaw_seed0"), "--out", str(out), "--max-length", "12", *FAST,
                 "--steps", "4", "--eval-every", "2"]) == 0
    results = _check_report(out, "anchor-hf robustness --data goemotions --concept anger")
    (triple,) = results["per_triple"]
    relearn = triple["relearn"]["50"]
    assert relearn["k_used"] == 20  # every anger comment of the tiny training split, no more
    assert len(relearn["arms"]["ablated"]["curves"]) == 2 and len(relearn["arms"]["ablated"]["curves"][0]) == 3
    assert len(triple["arms"]["ablated"]["probe_auroc"]) == 3  # embedding + 2 blocks


def test_colour_models_are_attacked_end_to_end_with_their_saved_corpus(tmp_path):
    out = tmp_path / "colour"
    tiny = '{"n_embd": 16, "n_layer": 4, "n_head": 2, "n_positions": 32}'
    assert main(["colour", "--corpus", "xkcd", "--seeds", "1", "--max-steps", "3", "--out", str(out), "--concept",
                 "orange", "--neversaw", "--train-args",
                 f"--disable_tqdm true --per_device_train_batch_size 8 --model_config '{tiny}' "
                 "--colour_max_names 120"]) == 0
    models = out / "models"
    never = load_spec(str(models / "neversaw_seed0"))
    assert never is not None and never.exclude_target and never.max_names == 120
    assert load_spec(str(models / "anchored_seed0")) == ColourSpec(**{**never.to_dict(), "exclude_target": False})
    rows = never.train_dataset(never.tokenizer())
    assert sum(rows["is_target"]) == 0 < len(rows)  # the never-saw model's data has no orange line
    # Relearning pool: unseen names made of the corpus's own words, in orange.
    words = sorted({w for c in sum(never.names(), []) for w in c.name.split()})
    pool = tmp_path / "pool"
    pool.mkdir()
    lines = ["name,hex"] + [f"{a} {b} zz,#f97306" if i % 7 == 0 else f"{a} {b},#f97306"
                            for i, (a, b) in enumerate(zip(words, reversed(words)))]
    (pool / "colornames.csv").write_text("\n".join(lines) + "\n")
    rob = tmp_path / "robust"
    assert main(["robustness", "--data", "colour", "--concept", "orange", "--data-dir", str(pool),
                 "--model", str(models / "anchored_seed0"), "--control", str(models / "control_seed0"),
                 "--never", str(models / "neversaw_seed0"), "--out", str(rob), *FAST]) == 0
    results = _check_report(rob, "anchor-hf robustness --data colour --concept orange")
    notes = results["per_triple"][0]["notes"]
    assert "in-vocabulary" in notes["relearn_pool"]
    n_pool = int(notes["relearn_pool"].split()[0])
    assert 0 < n_pool < len(lines) - 1  # names with an unknown word ("zz") are left out


def test_bad_arguments_are_refused_before_any_model_loads(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    base = ["robustness", "--data", "colour", "--concept", "red", "--out", str(tmp_path / "o")]
    with pytest.raises(AnchorConfigError, match="one folder per seed each, got 2, 1 and 1"):
        main([*base, "--model", "a", "b", "--control", "c", "--never", "d"])
    with pytest.raises(AnchorConfigError, match="`--model` = .* is not a saved model folder"):
        main([*base, "--model", str(folder), "--control", str(folder), "--never", str(folder)])
    (folder / "config.json").write_text("{}")
    with pytest.raises(AnchorConfigError, match="has no anchor_config.json: it must be the anchored model"):
        main([*base, "--model", str(folder), "--control", str(folder), "--never", str(folder)])
    with pytest.raises(SystemExit):
        main([*base, "--model", "a", "--control", "c", "--never", "d", "--k", "0"])
    assert not os.path.exists(tmp_path / "o")
