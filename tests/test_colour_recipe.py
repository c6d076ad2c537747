"""anchor_hf.experiments.colour.ae.recipe: the colour recipes load, and bad ones fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from anchor_hf.experiments.colour.ae.recipe import load_recipe
from anchor_hf.experiments.colour.ae.train import affinities_for
from anchor_hf.errors import AnchorConfigError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def write(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((RECIPES / "colour_ae_isolated.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_both_shipped_recipes_load_with_the_paper_shapes():
    anchored = load_recipe(RECIPES / "colour_ae_anchored.yaml")
    isolated = load_recipe(RECIPES / "colour_ae_isolated.yaml")
    assert (anchored.model_config["hidden_size"], anchored.intervention) == (4, "suppress")
    assert (isolated.model_config["hidden_size"], isolated.model_config["num_nonlinear"]) == (5, 2)
    assert isolated.intervention == "ablate" and isolated.anchor_config.concept("red").dims == [0]
    assert anchored.anchor_config.layers == ["bottleneck_norm"]
    for recipe in (anchored, isolated):
        assert recipe.training["per_device_train_batch_size"] * recipe.training["max_steps"] >= 64 * 1500


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(AnchorConfigError, match=r"unknown keys \['lerning_rate'\]"):
        load_recipe(write(tmp_path, lerning_rate=0.1))


def test_runner_owned_key_is_refused(tmp_path):
    with pytest.raises(AnchorConfigError, match="`output_dir` is set by the runner"):
        load_recipe(write(tmp_path, output_dir="x"))


def test_ablation_needs_an_axis_concept(tmp_path):
    data = yaml.safe_load((RECIPES / "colour_ae_isolated.yaml").read_text())
    red = data["anchor_config"]["concepts"][0]
    red.pop("dims")
    red["vector"] = [1.0, 0.0, 0.0, 0.0, 0.0]
    path = tmp_path / "vector.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AnchorConfigError, match="needs `dims` with one axis"):
        load_recipe(path)


def test_missing_budget_is_refused(tmp_path):
    with pytest.raises(AnchorConfigError, match="must set `max_steps` and `per_device_train_batch_size`"):
        load_recipe(write(tmp_path, max_steps=None))


def test_label_columns_must_have_colour_affinities_unless_repel_only():
    cfg = load_recipe(RECIPES / "colour_ae_isolated.yaml").anchor_config
    assert cfg.concept("anti_red").attract == 0 and cfg.concept("anti_red").repel_kind == "hinge"
    affinities = affinities_for(cfg)
    assert set(affinities) == {"red", "anti_red"}
    assert not affinities["anti_red"](torch.rand(4, 3)).any()  # a repel-only concept is never labelled
    cfg.concept("anti_red").attract = 0.5  # a pull needs labels, and there are none for this column
    with pytest.raises(AnchorConfigError, match="reads label column 'anti_red'"):
        affinities_for(cfg)
