"""AnchorConfig, ConceptAnchor and Schedule: validation messages name the field and what is allowed."""

from __future__ import annotations

import json

import pytest

from anchor_hf import AnchorCheckpointError, AnchorConfig, AnchorConfigError, ConceptAnchor, Schedule
from anchor_hf.config import CONFIG_NAME, FORMAT_VERSION, place_cosine


def red(**kw) -> ConceptAnchor:
    return ConceptAnchor(name="red", dims=[0], **kw)


def test_config_roundtrip_through_json_keeps_every_field(tmp_path):
    cfg = AnchorConfig(layers=[1, -1, "model.norm"], separation=0.1, concepts=[
        red(attract=0.5, repel=2.5, repel_relative=True, tau=0.2,
            attract_schedule=Schedule(ramp_end=0.1, anneal_start=0.6, anneal_end=0.9, floor=0.1),
            repel_schedule=Schedule(anneal_start=0.55, anneal_end=0.9, floor=0.12, peak=1.0)),
        ConceptAnchor(name="vibrant", dims=[1, 2], tau=None, repel_kind="square"),
        ConceptAnchor(name="joy", vector=[0.0, 0.0, 0.0, 1.0], repel_kind="hinge", repel=0.3, destination="calm"),
        ConceptAnchor(name="calm", dims=[3], pole=-1, label_column="neutral")])
    cfg.save_pretrained(tmp_path)
    data = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert data["format_version"] == FORMAT_VERSION and "anchor_hf_version" in data
    assert AnchorConfig.from_pretrained(tmp_path) == cfg
    assert not list(tmp_path.glob("*.tmp-*")), "no temporary file is left behind"


def r(**kw) -> dict:
    """Concept `red` on axis 0 as a mapping, so a bad value is checked with its path inside the config."""
    return {"name": "red", "dims": [0], **kw}


@pytest.mark.parametrize("kwargs, match", [
    (dict(layers=[]), r"`layers` must name at least one layer"),
    (dict(layers=[1.5]), r"`layers\[0\]` must be a block index"),
    (dict(layers=[1, 1]), r"`layers` repeats"),
    (dict(concepts=[]), r"`concepts` must hold at least one"),
    (dict(concepts=[ConceptAnchor(name="a", dims=[0]), ConceptAnchor(name="b", dims=[1, 0])]),
     r"`concepts\[1\].dims` uses axis 0, already anchored by concept 'a'"),
    (dict(concepts=[ConceptAnchor(name="a", dims=[0]), ConceptAnchor(name="a", dims=[1])]), r"names must be unique"),
    (dict(concepts=[{"name": "a"}]), r"`concepts\[0\]` must give exactly one of `dims`.*or `vector`"),
    (dict(concepts=[{"name": "a", "dims": [0], "vector": [1.0]}]), r"exactly one of `dims`"),
    (dict(concepts=[{"name": "a", "dims": [-1]}]), r"`concepts\[0\].dims\[0\]` must be a non-negative int"),
    (dict(concepts=[{"name": "a", "vector": [0.0, 0.0]}]), r"`concepts\[0\].vector` has zero norm"),
    (dict(concepts=[r(tau=-0.1)]), r"`concepts\[0\].tau` must be > 0 or None \(mean pull\), got -0.1"),
    (dict(concepts=[r(tau=0.0)]), r"`concepts\[0\].tau` must be > 0"),
    (dict(concepts=[r(attract=-1.0)]), r"`concepts\[0\].attract` must be >= 0"),
    (dict(concepts=[r(repel=float("nan"))]), r"`concepts\[0\].repel` must be a finite number"),
    (dict(concepts=[r(repel_kind="cube")]), r"`concepts\[0\].repel_kind` must be 'square' or 'hinge'"),
    (dict(concepts=[{"name": "s", "dims": [0, 1], "repel_kind": "hinge"}]), r"'hinge' \(anti-anchor\) needs one"),
    (dict(concepts=[r(attract_schedule={"shape": "cubic"})]),
     r"`concepts\[0\].attract_schedule.shape` must be one of 'minjerk', 'linear', 'flat'"),
    (dict(concepts=[r(attract_schedule={"anneal_start": 0.8, "anneal_end": 0.5})]),
     r"`concepts\[0\].attract_schedule.anneal_end` \(0.5\) must be >="),
    (dict(concepts=[r(attract_schedule={"ramp_end": 1.5})]), r"ramp_end` must be <= 1, got 1.5"),
    (dict(concepts=[red()], separation_samples=1), r"`separation_samples` must be an int >= 2"),
    (dict(concepts=[red()], separation_power=0), r"`separation_power` must be > 0"),
    (dict(concepts=[{"name": "a/b", "dims": [0]}]), r"`concepts\[0\].name` must be a non-empty string"),
    # values of the wrong type: each used to surface as a raw TypeError/ValueError/AttributeError, or pass
    (dict(concepts=[r(dims=0)]), r"`concepts\[0\].dims` must be a list of axes \(non-negative ints\), got 0; "
                                 r"for one axis write \[0\]"),
    (dict(concepts=[{"name": "a", "vector": "abc"}]), r"`concepts\[0\].vector` must be a list of numbers, got 'abc'"),
    (dict(concepts=[{"name": "a", "vector": [1.0, "x"]}]), r"`concepts\[0\].vector` must be a list of numbers"),
    (dict(concepts=[r(attract_schedule=[0.1, 0.5])]),
     r"`concepts\[0\].attract_schedule` must be a Schedule, a mapping of its fields or None, got list"),
    (dict(concepts=[red()], separation_schedule="linear"), r"`separation_schedule` must be a Schedule"),
    (dict(concepts=[red()], hidden_size="32"), r"`hidden_size` must be a positive int or None, got '32'"),
    (dict(concepts=[red()], hidden_size=0), r"`hidden_size` must be a positive int or None, got 0"),
    (dict(concepts=[red()], resolved_layers="model.layers.0"),
     r"`resolved_layers` must be a list of module names or None, got 'model.layers.0'"),
    (dict(concepts=[r(repel_relative="false")]), r"`concepts\[0\].repel_relative` must be true or false, got 'false'"),
    (dict(concepts=[r(label_column=3)]), r"`concepts\[0\].label_column` must be a non-empty string or None, got 3"),
    # a label column the model reads, or a span column that is another concept's labels
    (dict(concepts=[r(label_column="labels")]),
     r"`concepts\[0\]` reads its labels from column 'labels', which the model reads \(input_ids, attention_mask, "
     r"labels"),
    (dict(concepts=[{"name": "input_ids", "dims": [0]}]), r"reads its labels from column 'input_ids'"),
    (dict(concepts=[r(span_column="attention_mask")]), r"`concepts\[0\].span_column` = 'attention_mask' is a column "
                                                      r"the model reads"),
    (dict(concepts=[r(span_column="blue"), {"name": "blue", "dims": [1]}]),
     r"`concepts\[0\].span_column` = 'blue' is also the label column of concept 'blue'"),
    # places that are not orthogonal: one concept's pull would move states into another's place
    (dict(concepts=[red(), {"name": "v", "vector": [1.0, 0.5, 0.0, 0.0]}]),
     r"the places of `concepts\[0\]` \('red'\) and `concepts\[1\]` \('v'\) overlap: \|cos\| = 0.894 > 0.1"),
    (dict(concepts=[{"name": "a", "vector": [1.0, 1.0, 0.0]}, {"name": "b", "vector": [2.0, 2.0, 0.0]}]),
     r"`concepts\[0\]` \('a'\) and `concepts\[1\]` \('b'\) overlap: \|cos\| = 1 > 0.1"),
    (dict(concepts=[{"name": "a", "vector": [1.0, 0.0, 0.0], "repel": 1.0},
                    {"name": "b", "vector": [2.0, 0.0, 0.0], "pole": -1, "repel": 1.0, "repel_kind": "hinge"}]),
     r"`concepts\[0\].repel_kind` must be 'hinge': 'a' and 'b' sit at opposite poles of one direction"),
    (dict(concepts=[{"name": "s", "dims": [0, 1]}, {"name": "v", "vector": [0.0, 1.0, 1.0, 0.0]}]),
     r"\('s'\) and `concepts\[1\]` \('v'\) overlap: \|cos\| = 0.707"),
])
def test_config_rejects_bad_field_with_its_path(kwargs, match):
    kwargs.setdefault("concepts", [red()])
    with pytest.raises(AnchorConfigError, match=match):
        AnchorConfig(**kwargs)


def test_config_accepts_a_direction_nested_inside_another_concepts_subspace():
    """A hierarchy, as in the colour autoencoder: red on axis 0 inside the vibrant hue plane (axes 0-1)."""
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", vector=[1.0, 0.0, 0.0, 0.0]),
                                 ConceptAnchor(name="vibrant", dims=[0, 1])])
    assert cfg.concept("vibrant").rank == 2
    with pytest.raises(AnchorConfigError, match=r"overlap: \|cos\| = 1 > 0.1"):  # control: two equal directions
        AnchorConfig(concepts=[ConceptAnchor(name="red", vector=[1.0, 0.0, 0.0, 0.0]),
                               ConceptAnchor(name="axis", dims=[0])])


def test_config_accepts_nearly_orthogonal_places():
    """Below the stated tolerance places count as orthogonal: random unit vectors in a wide space
    (|cos| ≈ 1/√D) are accepted, so seeded random directions keep working."""
    cfg = AnchorConfig(concepts=[red(), ConceptAnchor(name="v", vector=[0.05, 1.0, 0.0, 0.0]),
                                 ConceptAnchor(name="w", vector=[0.0, 0.0, 1.0, 0.08])])
    assert [c.name for c in cfg.concepts] == ["red", "v", "w"]


@pytest.mark.parametrize("build, match", [
    (lambda: ConceptAnchor(name="red", dims=[0], tau=-1), r"`ConceptAnchor.tau` must be > 0 or None"),
    (lambda: ConceptAnchor(name="red", dims=0), r"`ConceptAnchor.dims` must be a list of axes"),
    (lambda: ConceptAnchor(name="red", dims=[0], attract_schedule={"floor": -1}),
     r"`ConceptAnchor.attract_schedule.floor` must be >= 0, got -1"),
    (lambda: Schedule(shape="cubic"), r"`Schedule.shape` must be one of 'minjerk', 'linear', 'flat', got 'cubic'"),
    (lambda: Schedule(anneal_start=0.8, anneal_end=0.5), r"`Schedule.anneal_end` \(0.5\) must be >="),
])
def test_concept_and_schedule_check_themselves_when_built_alone(build, match):
    with pytest.raises(AnchorConfigError, match=match):
        build()


def test_config_error_is_also_a_value_error():
    with pytest.raises(ValueError):
        AnchorConfig(concepts=[r(tau=-1.0)])


def test_check_hidden_size_rejects_axis_beyond_width():
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[40])])
    with pytest.raises(AnchorConfigError, match=r"`concepts\[0\].dims\[0\]` = 40 is out of range for hidden size 32 "
                                                r"\(allowed 0..31\)"):
        cfg.check_hidden_size(32)


def test_check_hidden_size_rejects_vector_of_wrong_length():
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", vector=[1.0, 0.0, 0.0])])
    with pytest.raises(AnchorConfigError, match=r"has 3 entries but the hidden size is 32"):
        cfg.check_hidden_size(32)


def test_concept_lookup_names_the_known_concepts():
    cfg = AnchorConfig(concepts=[red()])
    assert cfg.concept("red").dims == [0]
    with pytest.raises(AnchorConfigError, match=r"unknown concept 'blue'; this config anchors \['red'\]"):
        cfg.concept("blue")


def test_floor_zero_warns_once_that_the_axis_can_be_reclaimed():
    with pytest.warns(UserWarning, match="anneals to zero") as caught:
        AnchorConfig(concepts=[red(attract_schedule=Schedule(anneal_start=0.5, floor=0.0))])
    assert len([w for w in caught if "anneals to zero" in str(w.message)]) == 1


def test_from_pretrained_rejects_newer_format_version(tmp_path):
    data = AnchorConfig(concepts=[red()]).to_dict()
    data["format_version"] = FORMAT_VERSION + 1
    (tmp_path / CONFIG_NAME).write_text(json.dumps(data))
    with pytest.raises(AnchorCheckpointError,
                       match=rf"`format_version` {FORMAT_VERSION + 1} is newer than this anchor_hf understands"):
        AnchorConfig.from_pretrained(tmp_path)


def test_from_pretrained_rejects_corrupt_json(tmp_path):
    (tmp_path / CONFIG_NAME).write_text('{"layers": [1], "concepts": [')
    with pytest.raises(AnchorCheckpointError, match="is not valid JSON"):
        AnchorConfig.from_pretrained(tmp_path)


def test_from_pretrained_rejects_unknown_and_missing_fields(tmp_path):
    data = AnchorConfig(concepts=[red()]).to_dict()
    data["lyaers"] = [1]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(data))
    with pytest.raises(AnchorCheckpointError, match=r"unknown fields \['lyaers'\]"):
        AnchorConfig.from_pretrained(tmp_path)
    del data["lyaers"], data["format_version"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(data))
    with pytest.raises(AnchorCheckpointError, match="missing or invalid `format_version`"):
        AnchorConfig.from_pretrained(tmp_path)


def test_from_pretrained_explains_a_folder_without_config(tmp_path):
    with pytest.raises(AnchorCheckpointError, match="has no anchor_config.json"):
        AnchorConfig.from_pretrained(tmp_path)


def test_from_pretrained_offline_hub_miss_is_a_clear_error():
    with pytest.raises(AnchorCheckpointError, match="could not find anchor_config.json for 'nobody/no-such-repo'"):
        AnchorConfig.from_pretrained("nobody/no-such-repo")


# ------------------------------------------------------------------ destinations
def grey(**kw) -> ConceptAnchor:
    """A destination on red's opposite pole (axis 0, pole -1) with its own labels."""
    return ConceptAnchor(**{"name": "grey", "dims": [0], "pole": -1, "label_column": "destination", "repel": 1.0,
                            "repel_kind": "hinge", **kw})


def test_version_1_file_still_loads_with_no_destination(tmp_path):
    v1 = {"format_version": 1, "anchor_hf_version": "0.1.0", "layers": [0, 1], "concepts": [
        {"name": "red", "dims": [0], "vector": None, "attract": 1.0, "repel": 2.5, "repel_kind": "square",
         "repel_relative": False, "tau": 0.1, "label_column": "concept", "span_column": None,
         "attract_schedule": None, "repel_schedule": None, "exclusive": 0.0, "exclusive_momentum": 0.99,
         "route": False}],
        "separation": 0.0, "separation_power": 100.0, "separation_samples": 256, "separation_schedule": None,
        "resolved_layers": ["transformer.h.0", "transformer.h.1"], "hidden_size": 64}
    (tmp_path / CONFIG_NAME).write_text(json.dumps(v1))
    cfg = AnchorConfig.from_pretrained(tmp_path)
    assert cfg.concept("red").pole == 1 and cfg.concept("red").destination is None
    assert cfg.resolved_layers == ["transformer.h.0", "transformer.h.1"] and cfg.hidden_size == 64
    assert cfg.to_dict()["format_version"] == FORMAT_VERSION == 2  # saved again, it is a version-2 file


def test_destination_on_the_opposite_pole_shares_the_axis_with_hinge_repels():
    cfg = AnchorConfig(concepts=[red(destination="grey", repel=2.5, repel_kind="hinge"), grey()])
    assert cfg.destination_of("red") is cfg.concept("grey")
    assert place_cosine(cfg.concept("red"), cfg.concept("grey")) == -1.0
    assert AnchorConfig(concepts=[red(destination="opposite")]).destination_of("red") is None


def test_destination_may_be_an_orthogonal_vector_concept():
    cfg = AnchorConfig(concepts=[red(destination="calm"), ConceptAnchor(name="calm", vector=[0.0, 3.0, 4.0])])
    assert place_cosine(cfg.concept("red"), cfg.concept("calm")) == 0.0


@pytest.mark.parametrize("concepts, match", [
    ([red(destination="blue")], r"`concepts\[0\].destination` = 'blue' is not a concept of this config \['red'\]"),
    ([r(destination="red")], r"`concepts\[0\].destination` = 'red' is the concept itself"),
    ([red(destination="calm"), ConceptAnchor(name="calm", vector=[1.0, 1.0, 0.0])],
     r"`concepts\[0\].destination` = 'calm': its place is not orthogonal to 'red'.s \(cos = 0.707\)"),
    ([{"name": "vivid", "dims": [1, 2], "destination": "grey"}, ConceptAnchor(name="grey", dims=[0])],
     r"`concepts\[0\].destination` needs a one-direction concept, but `dims` spans 2 axes"),
    ([red(destination="vivid"), ConceptAnchor(name="vivid", dims=[1, 2])],
     r"`concepts\[0\].destination` = 'vivid' spans 2 axes; a destination must be one direction"),
    ([r(pole=0)], r"`concepts\[0\].pole` must be 1 or -1"),
    ([{"name": "vivid", "dims": [1, 2], "pole": -1}], r"`concepts\[0\].pole` = -1 needs one direction"),
    ([red(), ConceptAnchor(name="grey", dims=[0])], r"`concepts\[1\].dims` uses axis 0, already anchored by concept "
                                                    r"'red'; .*opposite poles"),
    ([red(repel=2.5), grey()], r"`concepts\[0\].repel_kind` must be 'hinge': 'red' and 'grey' share axis 0"),
    ([red(repel=2.5, repel_kind="hinge"), grey(repel_kind="square")],
     r"`concepts\[1\].repel_kind` must be 'hinge'.*would push the other pole's examples off"),
    ([{"name": "opposite", "dims": [0]}], r"`concepts\[0\].name` = 'opposite' is reserved"),
])
def test_config_rejects_bad_destination_with_its_path(concepts, match):
    with pytest.raises(AnchorConfigError, match=match):
        AnchorConfig(concepts=concepts)


@pytest.mark.parametrize("version", [True, 0, -1, "1", 1.0])
def test_from_pretrained_rejects_a_format_version_it_never_wrote(tmp_path, version):
    data = AnchorConfig(concepts=[red()]).to_dict()
    data["format_version"] = version
    (tmp_path / CONFIG_NAME).write_text(json.dumps(data))
    with pytest.raises(AnchorCheckpointError, match=rf"{tmp_path / CONFIG_NAME}: `format_version` must be an int "
                                                    rf"in 1..{FORMAT_VERSION}, got {version!r}"):
        AnchorConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize("content", [b"\x00\xff\xfe\x89PNG\r\n", '{"layers": [1]}'.encode("utf-16")])
def test_from_pretrained_names_the_file_that_is_not_utf8_json(tmp_path, content):
    (tmp_path / CONFIG_NAME).write_bytes(content)
    with pytest.raises(AnchorCheckpointError, match=rf"{tmp_path / CONFIG_NAME} is not UTF-8 text"):
        AnchorConfig.from_pretrained(tmp_path)


def test_a_bad_value_inside_a_saved_config_names_the_file_and_the_field(tmp_path):
    data = AnchorConfig(concepts=[red()]).to_dict()
    data["concepts"][0]["dims"] = 0
    (tmp_path / CONFIG_NAME).write_text(json.dumps(data))
    with pytest.raises(AnchorCheckpointError, match=rf"{tmp_path / CONFIG_NAME}: `concepts\[0\].dims` must be a list"):
        AnchorConfig.from_pretrained(tmp_path)


def test_a_repel_only_concept_at_the_opposite_pole_lets_the_other_keep_its_square_repel():
    """The autoencoder's anti-anchor (attract 0) pulls no examples onto -v̂, so nothing there needs the hinge."""
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0], repel=2.0, repel_kind="square"),
                                 ConceptAnchor(name="anti_red", vector=[-1.0, 0.0, 0.0], attract=0.0, repel=0.02,
                                               repel_kind="hinge")])
    assert [c.repel_kind for c in cfg.concepts] == ["square", "hinge"]
    with pytest.raises(AnchorConfigError, match=r"`concepts\[0\].repel_kind` must be 'hinge'"):
        AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0], repel=2.0, repel_kind="square"),
                               ConceptAnchor(name="anti_red", vector=[-1.0, 0.0, 0.0], attract=0.1, repel=0.02,
                                             repel_kind="hinge")])
