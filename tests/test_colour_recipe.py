"""The colour-autoencoder recipes: `dataset: colour_cube` variants that load, and bad ones that fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from anchor_hf.errors import AnchorConfigError
from anchor_hf.experiments.colour.ae.builder import affinities_for
from anchor_hf.experiments.colour.ae.recipe import load_variant

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def write(tmp_path: Path, change) -> Path:
    data = yaml.safe_load((RECIPES / "colour_ae_isolated.yaml").read_text())
    change(data)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_both_shipped_recipes_load_with_the_paper_shapes():
    anchored = load_variant(RECIPES / "colour_ae_anchored.yaml")
    isolated = load_variant(RECIPES / "colour_ae_isolated.yaml")
    assert (anchored.intervention, isolated.intervention) == ("suppress", "ablate")
    assert isolated.anchor_config.concept("red").dims == [0] and anchored.anchor_config.layers == ["bottleneck_norm"]
    for variant in (anchored, isolated):
        assert variant.batch_size * variant.max_steps >= 64 * 1500 and variant.concept == "red"
    shapes = [yaml.safe_load((RECIPES / f"colour_ae_{v}.yaml").read_text())["model_config"]
              for v in ("anchored", "isolated")]
    assert (shapes[0]["hidden_size"], shapes[1]["hidden_size"], shapes[1]["num_nonlinear"]) == (4, 5, 2)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(lerning_rate=0.1), r"unknown keys \['lerning_rate'\]"),
    (lambda d: d["dataset_args"].update(cube_step=8), r"`dataset_args` has unknown keys \['cube_step'\]"),
    (lambda d: d["dataset_args"].update(cube_steps=1), r"`cube_steps` must be an int >= 2, got 1"),
    (lambda d: d["evaluation"].update(intervention="erase"), r"`intervention` must be 'suppress' or 'ablate'"),
    (lambda d: d["evaluation"].update(concept="blue"), r"blue"),
    (lambda d: d.pop("max_steps"), r"must set `max_steps`"),
    (lambda d: d.update(model_type="llama"), r"`model_type: colour_autoencoder`"),
])
def test_a_bad_recipe_is_refused_naming_the_key(tmp_path, change, message):
    with pytest.raises(AnchorConfigError, match=message):
        load_variant(write(tmp_path, change))


def test_ablation_needs_an_axis_concept(tmp_path):
    def to_vector(data):
        red = data["anchor_config"]["concepts"][0]
        red.pop("dims")
        red["vector"] = [1.0, 0.0, 0.0, 0.0, 0.0]

    with pytest.raises(AnchorConfigError, match="needs `dims` with one axis"):
        load_variant(write(tmp_path, to_vector))


def test_label_columns_must_have_colour_affinities_unless_repel_only():
    cfg = load_variant(RECIPES / "colour_ae_isolated.yaml").anchor_config
    assert cfg.concept("anti_red").attract == 0 and cfg.concept("anti_red").repel_kind == "hinge"
    affinities = affinities_for(cfg)
    assert set(affinities) == {"red", "anti_red"}
    assert not affinities["anti_red"](torch.rand(4, 3)).any()  # a repel-only concept is never labelled
    cfg.concept("anti_red").attract = 0.5  # a pull needs labels, and there are none for this column
    with pytest.raises(AnchorConfigError, match="reads label column 'anti_red'"):
        affinities_for(cfg)
