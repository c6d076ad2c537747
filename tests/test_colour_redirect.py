"""The colour experiment's redirect measurements: destination labels in the corpus, the runs it trains,
remaining and its geometry, the random-direction control, and LEACE at every anchored slice."""

from __future__ import annotations

import json
import os

import pytest
import torch

from anchor_hf import AnchorConfig, ConceptAnchor, HiddenStateCapture
from anchor_hf.experiments.colour.lm.effects import random_redirect, remaining
from anchor_hf.experiments.colour.lm.figures import toward
from anchor_hf.experiments.colour.lm.pipeline import ColourRun
from anchor_hf.experiments.colour.lm.task import ItemSet
from anchor_hf.experiments.colour.spec import ColourSpec
from anchor_hf.experiments.colour.target import destination_probability, parse_target
from anchor_hf.geometry import concept_place
from anchor_hf.probes.posthoc import is_leace_available


def test_spec_with_a_destination_adds_its_label_column_and_checks_it():
    spec = ColourSpec(corpus="xkcd", concept="red", max_names=80, destination="#808080", destination_power=3.0)
    data = spec.train_dataset(spec.tokenizer())
    expected = destination_probability(torch.tensor(data["rgb"]), parse_target("#808080"), 1.0, 3.0)
    assert torch.allclose(torch.tensor(data["destination"]), expected)
    assert "destination" not in ColourSpec(corpus="xkcd", concept="red", max_names=80).train_dataset(
        spec.tokenizer()).column_names
    with pytest.raises(ValueError, match="is the target colour itself"):
        ColourSpec(concept="red", destination="#ff0000")
    with pytest.raises(ValueError, match="`destination_power` must be > 0"):
        ColourSpec(concept="red", destination="gray", destination_power=0.0)


def test_colour_run_trains_the_destination_recipe_beside_the_one_without(tmp_path):
    run = ColourRun(concept="blue", destination="#808080", out=str(tmp_path))
    assert run.kinds() == ("anchored", "nodest", "control")
    argv = run.train_argv("anchored", 1)
    anchor = json.loads(argv[argv.index("--anchor_config") + 1])
    assert [c["name"] for c in anchor["concepts"]] == ["blue", "c808080"]
    assert anchor["concepts"][0]["destination"] == "c808080"
    assert anchor["concepts"][0]["dims"] == [0] and anchor["concepts"][1]["dims"] == [1]  # the destination's own axis
    assert argv[argv.index("--dataset_args.destination") + 1] == "#808080"
    nodest = run.train_argv("nodest", 1)  # the same recipe without the destination: same layers, no grey labels
    assert "colour_names_destination.yaml" in nodest[1]
    assert nodest[nodest.index("--dataset_args.destination") + 1] == "null"
    concepts = json.loads(nodest[nodest.index("--anchor_config") + 1])["concepts"]
    assert [c["name"] for c in concepts] == ["blue"] and "destination" not in concepts[0]
    assert run.aware("nodest").weight == 0.0 == run.aware("control").weight < run.aware("anchored").weight


def test_colour_run_with_the_opposite_pole_trains_no_destination(tmp_path):
    run = ColourRun(concept="red", destination="opposite", out=str(tmp_path))
    assert run.kinds() == ("anchored", "control")
    argv = run.train_argv("anchored", 0)
    concepts = json.loads(argv[argv.index("--anchor_config") + 1])["concepts"]
    assert len(concepts) == 1 and concepts[0]["destination"] == "opposite"


@pytest.mark.parametrize("destination, message", [("nope", "is not a colour"), ("red", "is the target colour itself"),
                                                  ("", "`destination` must be a colour")])
def test_colour_run_rejects_a_bad_destination_before_training(tmp_path, destination, message):
    with pytest.raises(ValueError, match=message):
        ColourRun(concept="red", destination=destination, out=str(tmp_path))


def test_remaining_is_zero_at_the_destination_one_unmoved_and_above_one_away():
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.1], [0.0, 0.0, 1.0]])
    items = ItemSet(items=[0, 1, 2], rgb=rgb, sim=torch.tensor([1.0, 0.9, 0.0]),
                    target=torch.tensor([True, True, False]))
    grey = torch.tensor([0.5, 0.5, 0.5])
    assert remaining(rgb, items, grey) == pytest.approx(1.0)
    assert remaining(grey.expand(3, 3), items, grey) == 0.0
    away = rgb.clone()
    away[:2] = torch.tensor([1.0, 0.0, 1.0])  # magenta: farther from grey than red is
    assert remaining(away, items, grey) > 1.0
    t = toward(torch.stack([rgb[0], grey, (rgb[0] + grey) / 2]), rgb[0].expand(3, 3), grey)
    assert torch.allclose(t, torch.tensor([0.0, 1.0, 0.5]))


@pytest.mark.parametrize("to", ["opposite", "grey"])
def test_random_redirect_directions_are_unit_and_orthogonal_to_the_concept_and_its_destination(to):
    cfg = AnchorConfig(layers=[0], hidden_size=16, concepts=[
        ConceptAnchor(name="red", dims=[0], repel_kind="hinge", repel=1.0, destination=to),
        ConceptAnchor(name="grey", dims=[3])])
    u, w = random_redirect(cfg, "red", to, seed=1)
    taken = torch.cat([concept_place(cfg.concept(n), 16)[0] for n in (["red"] if to == "opposite" else ["red", to])], 1)
    assert abs(float(u.norm()) - 1) < 1e-6 and (taken.T @ u).abs().max() < 1e-6
    if to == "opposite":
        assert w == "opposite"
    else:
        assert abs(float(u @ w)) < 1e-6 and (taken.T @ w).abs().max() < 1e-6
    assert not torch.allclose(u, random_redirect(cfg, "red", to, seed=2)[0])  # seeded, not fixed


def class_gap(h: torch.Tensor, labels: torch.Tensor) -> float:
    """Distance between the mean token state of concept lines and of the others, `h [N, T, D]`."""
    return float((h[labels].mean((0, 1)) - h[~labels].mean((0, 1))).norm())


@pytest.mark.skipif(not is_leace_available(), reason="optional `concept-erasure` package is not installed")
def test_leace_at_the_anchored_slice_makes_its_class_means_coincide():
    """The LEACE theorem on the states it was fitted on: after erasure, concept and non-concept token means agree.

    (At a later slice the erasure upstream has already changed the states, so the claim is the first slice's.)
    """
    from tiny import make_model

    from anchor_hf.experiments.colour.lm.leace import fit_erasers, leace_intervention
    from anchor_hf.experiments.colour.lm.measure import read_states

    model = make_model("gpt2", layers=2, width=16).eval()
    cfg = AnchorConfig(layers=[0], hidden_size=16, concepts=[ConceptAnchor(name="red", dims=[0])])
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4 == 0
    lines = [[1, *torch.randint(50 if y else 2, 64 if y else 50, (6,), generator=g).tolist()] for y in labels]
    states = read_states(model, cfg, "red", lines, pad_id=0, keep_states=True)
    assert class_gap(states.states[0], labels) > 0.01  # negative control: the slice carries the concept (0.023)
    block = dict(model.named_modules())[states.names[0]]
    with leace_intervention(cfg, fit_erasers(states, labels))(model), HiddenStateCapture([block]) as capture:
        model(torch.tensor(lines))
    assert class_gap(capture.states[0].detach(), labels) < 1e-5  # float64 fit, float32 states: ~1e-7
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0  # the erasers' hooks are gone


def test_colour_run_checks_the_aware_steps_and_onset(tmp_path):
    with pytest.raises(ValueError, match="`aware_steps` must be an int >= 0"):
        ColourRun(aware_steps=-1, out=str(tmp_path))
    with pytest.raises(ValueError, match="implemented for the names corpora"):
        ColourRun(corpus="mixing", aware_steps=10, out=str(tmp_path))
    with pytest.raises(ValueError, match="`redirect_onset` must be in \\[0, 1\\)"):
        ColourRun(redirect_onset=1.0, out=str(tmp_path))
    run = ColourRun(aware_steps=5, redirect_onset=0.2, out=str(tmp_path))
    assert run.falloff == (0.2, 1.0, 1.0)
    assert (run.aware("anchored").weight, run.aware("control").weight) == (1.0, 0.0)


def test_intervention_aware_run_continues_both_models_and_reports_withheld_names(tmp_path):
    """End to end on tiny models: anchored, nodest and control are trained, then continued the same number of
    steps (only the anchored one with redirected lines), and the report splits remaining into trained and
    withheld names."""
    from anchor_hf.cli import main as cli_main

    tiny = '{"n_embd": 16, "n_layer": 4, "n_head": 2, "n_positions": 32}'
    argv = ["colour", "--corpus", "xkcd", "--seeds", "1", "--max-steps", "3", "--out", str(tmp_path), "--aware-steps",
            "2", "--redirect-onset", "0.2", "--train-args",
            f"--disable_tqdm true --per_device_train_batch_size 8 --model_config '{tiny}' --dataset_args.max_names 150"]
    assert cli_main(argv) == 0
    models = tmp_path / "models"
    assert sorted(os.listdir(models)) == ["anchored_pre_seed0", "anchored_seed0", "control_pre_seed0", "control_seed0",
                                          "nodest_pre_seed0", "nodest_seed0"]
    for kind, weight in (("anchored", 1.0), ("nodest", 0.0), ("control", 0.0)):
        record = json.loads((models / f"{kind}_seed0" / "aware.json").read_text())
        assert record["steps"]["steps"] == 2 and record["steps"]["weight"] == weight
        state = json.loads((models / f"{kind}_seed0" / "trainer_state.json").read_text())
        assert state["global_step"] == 2
    withheld = json.loads((models / "anchored_seed0" / "aware.json").read_text())["withheld"]
    assert withheld and set(withheld) <= {c.name for c in ColourSpec(max_names=150).names()[0]}
    report = (tmp_path / "report.md").read_text()
    assert "trained vs withheld target names" in report and "falloff (0.2, 1.0, 1.0)" in report
