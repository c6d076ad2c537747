"""`anchor-hf goemotions --destination F`: the plan is checked before training, F gets a place, redirect is reported."""

from __future__ import annotations

import json

import pytest
from test_goemotions_scratch import run_cli

from anchor_hf import AnchorConfig, AnchorConfigError, AnchorDataError, ConceptAnchor
from anchor_hf.experiments.goemotions.data import Comment, build_dataset, resolve_concepts
from anchor_hf.experiments.goemotions.destination import (check_training_labels, destination_labels,
                                                          resolve_destination)
from anchor_hf.experiments.goemotions.runner import GoEmotionsRun

SMALL_REDIRECT = ["--set", "redirect_prompt_tokens=2", "--set", "redirect_new_tokens=3", "--set",
                  "redirect_resamples=20", "--set", "anchor_span=text"]
REDIRECT_KEYS = {"destination", "redirect_prompts", "destination_prompts", "redirect_toward", "redirect_toward_ci95",
                 "redirect_away", "redirect_away_ci95", "redirect_fluency_ratio", "redirect_fluency_ratio_ci95",
                 "leace_toward", "leace_toward_ci95", "leace_away", "leace_away_ci95", "redirect_random_toward",
                 "redirect_random_away", "redirect_toward_denominator", "redirect_away_denominator",
                 "redirect_concept_perplexity_ratio", "redirect_concept_perplexity_ratio_ci95",
                 "redirect_destination_perplexity_ratio", "leace_concept_perplexity_ratio"}


def test_destination_run_trains_the_destination_place_and_reports_redirect_with_intervals(tmp_path):
    assert run_cli(tmp_path, "--destination", "neutral", *SMALL_REDIRECT) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert REDIRECT_KEYS <= set(summary) and summary["destination"] == "neutral"
    assert "perplexity_ratio" in summary  # the existing key keeps its meaning beside the new ones
    assert summary["redirect_prompts"] == summary["destination_prompts"] == 40  # 20 per held-out split and side
    for key in ("redirect_toward", "redirect_away", "leace_toward", "leace_away"):
        if summary[key] is not None:
            low, high = summary[f"{key}_ci95"]
            assert low <= summary[key] <= high
    models = out / "models"
    anchored = {c["name"]: c for c in json.loads((models / "anchored_rate0.05_seed0" / "anchor_config.json")
                                                 .read_text())["concepts"]}
    assert anchored["anger"]["destination"] == "neutral"
    assert anchored["neutral"]["dims"] == [0] and anchored["neutral"]["pole"] == -1
    assert anchored["anger"]["repel_kind"] == anchored["neutral"]["repel_kind"] == "hinge"
    control = json.loads((models / "control_seed0" / "anchor_config.json").read_text())["concepts"]
    assert [c["name"] for c in control] == ["anger"]  # controls never get a destination: shared with plain runs
    trained = json.loads((models / "anchored_rate0.05_seed0" / "train_summary.json").read_text())
    assert trained["destination_labelled_comments"] == 1  # 5% of the 20 neutral training comments
    report = (out / "report.md").read_text()
    assert "## Redirect to `neutral`" in report and "--destination neutral" in report
    assert (out / "redirect.png").is_file()
    redirect = json.loads((out / "report.json").read_text())["per_seed"][0]["redirect"]
    arms = {"redirect", "redirect_weights", "redirect_random", "suppress", "leace_anchored", "leace",
            "posthoc_suppress"}
    assert set(redirect["arms"]) == set(redirect["reading"]["arms"]) == arms
    assert len(redirect["reading"]["arms"]["redirect"]["concept"]["nll"]) == 40  # every held-out anger comment
    assert "### Reading: perplexity of held-out comments" in report


@pytest.mark.parametrize("extra, error, message", [
    (["--destination", "anger"], AnchorConfigError, "is the concept itself"),
    (["--destination", "calm"], AnchorDataError, "'calm' is not a GoEmotions label"),
    (["--concept", "ekman:anger", "--destination", "anger", "--set", "entanglement_groups=[joy]"], AnchorConfigError,
     r"shares the labels \['anger'\]"),
    (["--concept", "anger,joy", "--destination", "neutral"], AnchorConfigError, "redirects one concept"),
    (["--destination-place", "axis"], AnchorConfigError, "give `--destination` too"),
    (["--destination", "neutral", "--set", "destination_label_rate=0"], AnchorConfigError,
     "`destination_label_rate` must be null"),
    (["--destination", "neutral", "--set", "destination_label_rate=0.01"], AnchorConfigError,
     "at label rate 0.01 none is labelled"),
    (["--destination", "neutral", "--set", "redirect_prompt_tokens=9"], AnchorDataError,
     "no held-out destination prompt: none of the 40"),
])
def test_bad_destinations_are_refused_before_anything_is_trained(tmp_path, extra, error, message):
    with pytest.raises(error, match=message):
        run_cli(tmp_path, *extra)
    models = tmp_path / "out" / "models"
    assert not models.exists() or not any((p / "train_summary.json").is_file() for p in models.iterdir())


@pytest.mark.parametrize("place, dims, pole, repel_kind", [("opposite", [0], -1, "hinge"), ("axis", [1], 1, "square")])
def test_destination_place_is_the_opposite_pole_or_an_own_axis(tmp_path, place, dims, pole, repel_kind):
    def run(**kwargs) -> GoEmotionsRun:
        return GoEmotionsRun(concept="anger", seeds=1, out=str(tmp_path), overrides={"anchor_span": "text"},
                             **kwargs)

    anger, neutral = run(destination="neutral", destination_place=place).anchor(active=True)["concepts"]
    assert anger["destination"] == "neutral" and (neutral["dims"], neutral.get("pole", 1)) == (dims, pole)
    assert anger["repel_kind"] == neutral["repel_kind"] == repel_kind
    assert {k: neutral[k] for k in ("attract", "repel", "tau", "span_column")} == \
        {k: anger[k] for k in ("attract", "repel", "tau", "span_column")}
    AnchorConfig(layers=[0], concepts=[ConceptAnchor(**anger), ConceptAnchor(**neutral)])  # valid (hinge if shared)
    # the controls and an untrained destination get no destination concept and no destination labels
    assert [c["name"] for c in run(destination="neutral", destination_place=place).anchor(active=False)["concepts"]] \
        == ["anger"]
    untrained = run(destination="neutral", destination_place="untrained")
    assert [c.get("destination") for c in untrained.anchor(active=True)["concepts"]] == [None]
    assert untrained.trained_destination is None


def test_destination_labels_only_destination_comments_that_lack_the_concept():
    comments = [Comment("a", (27,), "1"), Comment("b", (2, 27), "2"), Comment("c", (2,), "3"),
                Comment("d", (27,), "4"), Comment("e", (15,), "5")]
    plan = resolve_destination("neutral", resolve_concepts("anger"), "opposite")
    assert destination_labels(comments, plan, 1.0, "subset", seed=0) == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert destination_labels(comments, plan, 0.5, "visit", seed=0) == [0.5, 0.0, 0.0, 0.5, 0.0]
    with pytest.raises(AnchorConfigError, match="none is labelled"):
        check_training_labels(plan, comments, [0.2], "subset")  # round(0.2 * 2) = 0 of the two neutral comments


def test_extra_columns_follow_replayed_rows_without_choosing_them(tokenizer):
    comments = [Comment(f"w{5 + i} w9", (2,) if i < 4 else (27,), str(i)) for i in range(8)]
    extra = {"neutral": [0.0] * 4 + [1.0] * 4}
    ds = build_dataset(comments, tokenizer, resolve_concepts("anger"), 0.5, scheme="subset", replay=3, extra=extra)
    assert len(ds) == 8 + 2 * 3  # only the two labelled anger comments are replayed, not the four neutral ones
    assert ds["neutral"] == [0.0] * 4 + [1.0] * 4 + [0.0] * 6
    with pytest.raises(AnchorDataError, match="one value per comment"):
        build_dataset(comments, tokenizer, resolve_concepts("anger"), 0.5, extra={"neutral": [1.0]})
