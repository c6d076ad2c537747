"""Colour-LM evaluation: decoding, selectivity maths, and smoke runs of each recipe end to end."""

from __future__ import annotations

import json
import os

import pytest
import torch

from anchor_hf.cli import main as cli_main
from anchor_hf.experiments.colour.lm.decode import greedy, predict_mix, predict_rgb, rgb_error
from anchor_hf.experiments.colour.lm.effects import RISE_FLOOR, selectivity
from anchor_hf.experiments.colour.lm.pipeline import ColourRun
from anchor_hf.experiments.colour.lm.report import SUMMARY_KEYS
from anchor_hf.experiments.colour.lm.task import ItemSet
from anchor_hf.experiments.colour.corpus import load_names, word_tokenizer
from anchor_hf.experiments.colour.mixing import closed_pairs, grid_words, mixing_tokenizer
from anchor_hf.errors import AnchorConfigError

TINY = '{"n_embd": 16, "n_layer": 4, "n_head": 2, "n_positions": 32}'


def _gpt2(vocab: int, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=2, n_head=2, n_positions=32, vocab_size=vocab))


def test_predict_rgb_writes_six_hex_digits_for_every_name_whatever_the_model():
    names = load_names()[:20]
    tok = word_tokenizer([c.line for c in names])
    rgb = predict_rgb(_gpt2(len(tok)), tok, names, batch_size=4)
    assert rgb.shape == (20, 3) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    assert torch.allclose(rgb * 255, (rgb * 255).round(), atol=1e-3)  # whole hex steps


def test_greedy_chooses_only_allowed_tokens():
    model = _gpt2(40)
    out = greedy(model, [[1, 5, 6], [1, 7], [1, 8]], allowed=[20, 21], steps=3, batch_size=2)
    assert out.shape == (3, 3) and set(out.flatten().tolist()) <= {20, 21}


def test_predict_mix_answers_with_colour_words():
    tok = mixing_tokenizer()
    words = predict_mix(_gpt2(len(tok)), tok, closed_pairs()[:10])
    assert len(words) == 10 and set(words) <= set(grid_words())


def test_rgb_error_is_the_channel_mean_of_squared_differences():
    err = rgb_error(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.5, 0.5, 0.5]]))
    assert float(err) == pytest.approx(0.25)


def test_selectivity_divides_the_target_rise_by_the_size_of_the_dissimilar_rise():
    sim = torch.tensor([0.9, 0.8, 0.05, 0.0])
    items = ItemSet(items=list(range(4)), rgb=torch.zeros(4, 3), sim=sim, target=sim >= 0.5)
    base = torch.zeros(4)
    out = selectivity(base, torch.tensor([0.2, 0.2, 0.01, 0.01]), items)
    assert out["target_rise"] == pytest.approx(0.2) and out["ratio"] == pytest.approx(20.0)
    worse_elsewhere = selectivity(base, torch.tensor([0.2, 0.2, -0.04, -0.04]), items)
    assert worse_elsewhere["ratio"] == pytest.approx(5.0)  # a fall counts as collateral too
    untouched = selectivity(base, torch.tensor([0.2, 0.2, 0.0, 0.0]), items)
    assert untouched["ratio"] == pytest.approx(0.2 / RISE_FLOOR)


def test_colour_run_rejects_bad_arguments_before_training(tmp_path):
    with pytest.raises(AnchorConfigError, match="seeds"):
        ColourRun(seeds=0, out=str(tmp_path))
    with pytest.raises(AnchorConfigError, match="data-dir"):
        ColourRun(corpus="colornames", out=str(tmp_path))
    with pytest.raises(ValueError, match="is not a colour"):
        ColourRun(concept="nope", out=str(tmp_path))


def _smoke(tmp_path, corpus: str, extra: list[str]) -> dict:
    out = tmp_path / corpus
    argv = ["colour", "--corpus", corpus, "--seeds", "1", "--max-steps", "3", "--out", str(out), "--concept",
            "orange", "--train-args",
            f"--disable_tqdm true --per_device_train_batch_size 8 --model_config '{TINY}' " + " ".join(extra)]
    assert cli_main(argv) == 0
    for name in ("report.md", "report.json", "summary.json", "projection.png", "error_vs_similarity.png",
                 "swatches.png"):
        assert os.path.isfile(out / name), name
    for name in ("redirect_swatches.png", "toward_destination.png"):
        assert os.path.isfile(out / name), name
    for kind in ("anchored", "nodest", "control"):
        cfg = json.loads((out / "models" / f"{kind}_seed0" / "anchor_config.json").read_text())
        assert cfg["concepts"][0]["name"] == "orange"  # the concept is renamed after the target
    anchored = json.loads((out / "models" / "anchored_seed0" / "anchor_config.json").read_text())["concepts"]
    assert [c["name"] for c in anchored] == ["orange", "c808080"] and anchored[0]["destination"] == "c808080"
    assert anchored[1]["dims"] == [1] and anchored[1]["label_column"] == "destination"  # its own axis
    report = (out / "report.md").read_text()
    assert (f"anchor-hf colour --concept orange --destination '#808080' --aware-steps 0 --redirect-onset -1 --seeds 1 "
            f"--corpus {corpus}") in report
    for row in ("redirect → untrained opposite pole", "redirect → trained destination",
                "LEACE, every anchored slice", "post-hoc mean-difference suppress",
                "(every answer at the destination: "):  # the most a redirect landing there can reach
        assert row in report, row
    return json.loads((out / "summary.json").read_text())


def test_names_recipes_run_end_to_end_and_write_exactly_the_summary_keys(tmp_path):
    summary = _smoke(tmp_path, "xkcd", ["--dataset_args.max_names 120"])
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["seeds"] == 1 and summary["concept"] == "orange" and summary["corpus"] == "xkcd"
    assert 0 < summary["label_fraction"] < 0.2
    _check_redirect_report(tmp_path, summary, "names")


def _check_redirect_report(tmp_path, summary: dict, corpus: str) -> None:
    """scripts/redirect_report.py quotes the run's own numbers and says which inputs are missing."""
    import subprocess
    import sys

    out = tmp_path / "redirect.md"
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "redirect_report.py")
    runs = {"names": str(tmp_path / "none"), "mixing": str(tmp_path / "none")}
    runs[corpus] = str(tmp_path / summary["corpus"])  # the smoke run's folder
    done = subprocess.run([sys.executable, script, "--names", runs["names"], "--mixing", runs["mixing"],
                           "--variants", str(tmp_path / "none"), "--goemotions", str(tmp_path / "none"),
                           "--robustness", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert f"{summary['redirect_remaining']:.3f}, random {summary['redirect_random_remaining']:.3f}" in text
    assert "anchor-hf colour --concept orange" in text  # the run's command beside its numbers
    assert f"(no run in `{tmp_path / 'none'}`)" in text and "no `" in text  # missing inputs are named
    if corpus == "mixing":
        assert "held-out exact match within 0.01 of the control" in text


def test_mixing_recipes_run_end_to_end_and_write_exactly_the_summary_keys(tmp_path):
    summary = _smoke(tmp_path, "mixing", [])
    assert tuple(summary) == SUMMARY_KEYS and summary["corpus"] == "mixing"
    _check_redirect_report(tmp_path, summary, "mixing")


def test_demo_takes_the_colour_options_with_demo_defaults():
    from anchor_hf.cli import make_parser

    args = make_parser().parse_args(["demo"])
    assert (args.out, args.seeds, args.corpus, args.concept) == ("results/demo", 1, "xkcd", "red")
    args = make_parser().parse_args(["demo", "--concept", "blue", "--seeds", "3", "--corpus", "mixing", "--out", "x"])
    assert (args.out, args.seeds, args.corpus, args.concept) == ("x", 3, "mixing", "blue")


def test_demo_defaults_to_the_redirect_recipe_and_colour_to_none():
    from anchor_hf.cli import make_parser
    from anchor_hf.experiments.colour.lm.cli import aware_steps, build_run

    demo = make_parser().parse_args(["demo", "--out", "x"])
    assert (demo.destination, aware_steps(demo), demo.redirect_onset) == ("#808080", 150, 0.3)
    run = build_run(demo)
    assert run.aware_steps == 150 and run.falloff == (0.3, 1.0, 1.0)
    assert run.kinds() == ("anchored", "nodest", "control")
    mixing = make_parser().parse_args(["demo", "--corpus", "mixing", "--out", "x"])
    assert aware_steps(mixing) == 0  # the mixing language has no intervention-aware steps
    colour = make_parser().parse_args(["colour", "--out", "x"])
    assert (aware_steps(colour), colour.redirect_onset) == (0, -1.0) and build_run(colour).falloff is None


def test_train_only_shards_split_the_colour_trainings(tmp_path):
    argv = ["colour", "--corpus", "xkcd", "--seeds", "1", "--max-steps", "2", "--out", str(tmp_path), "--train-only",
            "--train-args", f"--disable_tqdm true --per_device_train_batch_size 8 --model_config '{TINY}' "
            "--dataset_args.max_names 60"]
    assert cli_main([*argv, "--shard", "1/2"]) == 0
    assert sorted(os.listdir(tmp_path / "models")) == ["nodest_seed0"]  # jobs: anchored 0, nodest 0, control 0
    assert not (tmp_path / "report.md").exists()  # --train-only: no evaluation
    with pytest.raises(AnchorConfigError, match="use it with --train-only"):
        cli_main([a for a in argv if a != "--train-only"] + ["--shard", "0/2"])
