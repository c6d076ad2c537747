"""`anchor-hf robustness` smoke runs on tiny colour and GoEmotions models, and its argument checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from anchor_hf.cli import main
from anchor_hf.experiments.colour.spec import ColourSpec, load_spec
from anchor_hf.errors import AnchorConfigError, AnchorDataError
from anchor_hf.experiments.robustness.runner import SUMMARY_KEYS
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
    assert set(triple["arms"]) == {"ablated", "redirected", "suppressed", "posthoc", "never"}
    arms, refs = triple["arms"], triple["references"]
    assert arms["ablated"]["concept_nll"] != refs["anchored"]["concept_nll"]  # the ablated arm is an edited model
    gap = arms["ablated"]["concept_nll"] - refs["anchored"]["concept_nll"]
    assert arms["ablated"]["removed_gap"] == pytest.approx(gap)
    assert arms["redirected"]["concept_nll"] != refs["anchored"]["concept_nll"]  # so is the redirected arm
    assert set(results["per_triple"][0]["relearn"][max(results["per_triple"][0]["relearn"], key=int)]["arms"]) == set(
        triple["arms"])  # every arm is attacked by relearning too
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
    relearn = triple["relearn"]["20"]
    assert relearn["k"] == 50 and relearn["k_used"] == 20  # every anger comment of the tiny training split
    assert len(relearn["arms"]["ablated"]["curves"]) == 2 and len(relearn["arms"]["ablated"]["curves"][0]) == 3
    assert len(triple["arms"]["ablated"]["probe_auroc"]) == 3  # embedding + 2 blocks
    # The attack texts are tokenized exactly as the models were trained (eos appended, same truncation).
    from anchor_hf.experiments.goemotions.data import build_dataset, load_goemotions, resolve_concepts
    from anchor_hf.experiments.robustness.sources import goemotions_data
    from anchor_hf.io import load_tokenizer

    attack = goemotions_data(str(models / "anchored_rate0.05_seed0"), "anger", str(data), max_length=12)
    tokenizer = load_tokenizer(str(models / "anchored_rate0.05_seed0"))
    trained = build_dataset(load_goemotions(str(data))["train"], tokenizer, resolve_concepts("anger"), 0.05, 12,
                            "subset")
    assert {e.ids for e in attack.relearn_pool} <= {tuple(ids) for ids in trained["input_ids"]}
    with pytest.raises(AnchorConfigError, match=r"is a 'control' model \(train_summary.json\); it must be the model"):
        main(["robustness", "--data", "goemotions", "--concept", "anger", "--data-dir", str(data), "--model",
              str(models / "anchored_rate0.05_seed0"), "--control", str(models / "neversaw_seed0"), "--never",
              str(models / "control_seed0"), "--out", str(tmp_path / "x"), "--max-length", "12"])


@pytest.fixture(scope="module")
def colour_models(tmp_path_factory) -> Path:
    """Tiny anchored, control and never-saw orange models on 120 XKCD names (3 steps each)."""
    out = tmp_path_factory.mktemp("colour")
    tiny = '{"n_embd": 16, "n_layer": 4, "n_head": 2, "n_positions": 32}'
    assert main(["colour", "--corpus", "xkcd", "--seeds", "1", "--max-steps", "3", "--out", str(out), "--concept",
                 "orange", "--neversaw", "--train-args",
                 f"--disable_tqdm true --per_device_train_batch_size 8 --model_config '{tiny}' "
                 "--dataset_args.max_names 120"]) == 0
    return out / "models"


@pytest.fixture(scope="module")
def colour_pool(colour_models, tmp_path_factory) -> tuple[Path, int]:
    """A colornames.csv of unseen orange names made of the corpus's own words (every 7th with an unknown word)."""
    never = load_spec(str(colour_models / "neversaw_seed0"))
    words = sorted({w for c in sum(never.names(), []) for w in c.name.split()})
    pool = tmp_path_factory.mktemp("pool")
    lines = ["name,hex"] + [f"{a} {b} zz,#f97306" if i % 7 == 0 else f"{a} {b},#f97306"
                            for i, (a, b) in enumerate(zip(words, reversed(words)))]
    (pool / "colornames.csv").write_text("\n".join(lines) + "\n")
    return pool, len(lines) - 1


def _colour_args(models: Path, pool: Path | None, out: Path, concept: str = "orange") -> list[str]:
    return ["robustness", "--data", "colour", "--concept", concept, *(["--data-dir", str(pool)] if pool else []),
            "--model", str(models / "anchored_seed0"), "--control", str(models / "control_seed0"),
            "--never", str(models / "neversaw_seed0"), "--out", str(out), *FAST]


def test_colour_models_are_attacked_end_to_end_with_their_saved_corpus(colour_models, colour_pool, tmp_path):
    models = colour_models
    never = load_spec(str(models / "neversaw_seed0"))
    assert never is not None and never.exclude_target and never.max_names == 120
    anchored = load_spec(str(models / "anchored_seed0"))  # the same corpus; only the anchored model has a destination
    assert anchored == ColourSpec(**{**never.to_dict(), "exclude_target": False, "destination": anchored.destination})
    rows = never.train_dataset(never.tokenizer())
    assert sum(rows["is_target"]) == 0 < len(rows)  # the never-saw model's data has no orange line
    pool, n_names = colour_pool
    rob = tmp_path / "robust"
    assert main(_colour_args(models, pool, rob)) == 0
    results = _check_report(rob, "anchor-hf robustness --data colour --concept orange")
    notes = results["per_triple"][0]["notes"]
    assert "in-vocabulary" in notes["relearn_pool"]
    n_pool = int(notes["relearn_pool"].split()[0])
    assert 0 < n_pool < n_names  # names with an unknown word ("zz") are left out


def test_colour_attacks_score_and_probe_the_positions_training_scored(colour_models, colour_pool):
    from anchor_hf.experiments.robustness.sources import colour_data

    spec = load_spec(str(colour_models / "anchored_seed0"))
    data = colour_data(str(colour_models / "anchored_seed0"), "orange", str(colour_pool[0]))
    rows = spec.train_dataset(spec.tokenizer())
    trained = {tuple(ids): labels for ids, labels in zip(rows["input_ids"], rows["labels"])}
    for example in data.concept_eval + data.other_eval:
        labels = trained[example.ids]  # every evaluated line is a training line, encoded the same way
        assert example.score_from == next(i for i, t in enumerate(labels) if t != -100)  # the hex answer only
        assert example.pool_until == example.score_from  # probes never see the answer's digits


def test_wrong_models_or_concept_are_refused(colour_models, colour_pool, tmp_path):
    with pytest.raises(AnchorDataError, match="`--concept` = 'red' .* trained with the target colour 'orange'"):
        main(_colour_args(colour_models, colour_pool[0], tmp_path / "o", concept="red"))
    anchored, control, never = (str(colour_models / f"{k}_seed0") for k in ("anchored", "control", "neversaw"))
    base = ["robustness", "--data", "colour", "--concept", "orange", "--data-dir", str(colour_pool[0]), "--out",
            str(tmp_path / "o"), "--model", anchored]
    with pytest.raises(AnchorConfigError, match="three different models"):
        main([*base, "--control", control, "--never", control])
    with pytest.raises(AnchorConfigError, match="`--never` = .*control_seed0.* trained on the full colour corpus"):
        main([*base, "--control", never, "--never", control])  # swapped
    assert not (tmp_path / "o").exists()


def test_bad_arguments_are_refused_before_any_model_loads(tmp_path):
    folders = [tmp_path / name for name in ("a", "c", "n")]
    for folder in folders:
        folder.mkdir()
    three = ["--model", str(folders[0]), "--control", str(folders[1]), "--never", str(folders[2])]
    base = ["robustness", "--data", "colour", "--concept", "red", "--out", str(tmp_path / "o")]
    with pytest.raises(AnchorConfigError, match="one folder per seed each, got 2, 1 and 1"):
        main([*base, "--model", "a", "b", "--control", "c", "--never", "d"])
    with pytest.raises(AnchorConfigError, match="`--model` = .* is not a saved model folder"):
        main([*base, *three])
    for folder in folders:
        (folder / "config.json").write_text("{}")
    with pytest.raises(AnchorConfigError, match="has no anchor_config.json: it must be the anchored model"):
        main([*base, *three])
    with pytest.raises(AnchorConfigError, match="--eval-every 3 must divide --steps 10"):
        main([*base, *three, "--steps", "10", "--eval-every", "3"])
    with pytest.raises(SystemExit):
        main([*base, "--model", "a", "--control", "c", "--never", "d", "--k", "0"])
    assert not os.path.exists(tmp_path / "o")


def test_a_config_saved_for_another_width_is_refused_before_any_attack(colour_models, colour_pool, tmp_path,
                                                                       monkeypatch):
    """It used to pass the checks and fail once the attacks reached the first hook, phases later."""
    import shutil

    from anchor_hf.errors import AnchorCheckpointError
    from anchor_hf.experiments.robustness import runner

    def no_attacks(*args, **kwargs):
        raise AssertionError("an attack ran before the triple was checked against its config")

    monkeypatch.setattr(runner, "run_attacks", no_attacks)
    models = tmp_path / "models"
    shutil.copytree(colour_models, models)
    config = models / "anchored_seed0" / "anchor_config.json"
    saved = json.loads(config.read_text())
    config.write_text(json.dumps({**saved, "hidden_size": 2 * saved["hidden_size"]}))
    with pytest.raises(AnchorCheckpointError, match=r"`--model` = .*anchored_seed0': the anchor config was saved for "
                                                    r"hidden size 32, but this model's is 16"):
        main(_colour_args(models, colour_pool[0], tmp_path / "o"))
