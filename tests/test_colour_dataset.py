"""anchor_hf.experiments.colour.ae.dataset: cube samples and the T = 1 collator that draws per-visit labels."""

from __future__ import annotations

import pytest
import torch

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.collator import SEGMENT_IDS, SPAN_MASK, SPAN_WEIGHTS, TOKEN_WEIGHTS, masks_from_batch
from anchor_hf.experiments.colour.maths import AFFINITIES, cube_grid
from anchor_hf.experiments.colour.ae.dataset import ColourCollator, CubeSamples
from anchor_hf.errors import AnchorDataError
from anchor_hf.regularizer import AnchorRegularizer, AnchorWeights


def config() -> AnchorConfig:
    return AnchorConfig(layers=["bottleneck_norm"], concepts=[
        ConceptAnchor(name="red", vector=[1.0, 0.0, 0.0, 0.0], tau=None),
        ConceptAnchor(name="vibrant", dims=[0, 1], tau=None)])


def features(probs: list[tuple[float, float]]) -> list[dict]:
    return [{"rgb": torch.rand(3), "red": p, "vibrant": q} for p, q in probs]


def test_collator_builds_one_live_position_per_colour():
    batch = ColourCollator(config())(features([(0.0, 0.0)] * 5))
    assert batch["rgb"].shape == (5, 3) and torch.equal(batch["labels"], batch["rgb"])
    assert torch.equal(batch[SEGMENT_IDS], torch.arange(5).unsqueeze(1))
    assert batch[SPAN_WEIGHTS].shape == (5, 2)
    assert batch[SPAN_MASK].shape == (5, 2, 1) and batch[SPAN_MASK].all()
    assert batch[TOKEN_WEIGHTS].shape == (5, 2, 1) and not batch[TOKEN_WEIGHTS].any()
    assert masks_from_batch(batch).live.all()


def test_collator_draws_labels_per_visit_and_counts_them():
    collator = ColourCollator(config(), seed=0)
    batch = collator(features([(1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (1.0, 1.0)]))
    assert torch.equal(batch[SPAN_WEIGHTS], torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]]))
    assert collator.labels_drawn == {"red": 2, "vibrant": 2} and collator.examples_seen == 4
    # p = 0.5 on 400 visits of the same colour: labelled on some visits, not on others
    drawn = collator(features([(0.5, 0.0)] * 400))[SPAN_WEIGHTS][:, 0]
    assert 150 < int(drawn.sum()) < 250
    assert collator.labels_drawn["red"] == 2 + int(drawn.sum())


def test_expected_draw_uses_the_probabilities_as_weights():
    batch = ColourCollator(config(), draw="expected")(features([(0.25, 0.5)]))
    assert torch.equal(batch[SPAN_WEIGHTS], torch.tensor([[0.25, 0.5]]))


def test_collator_names_a_missing_label_column():
    with pytest.raises(AnchorDataError, match="no label column 'vibrant' for concept 'vibrant'"):
        ColourCollator(config())([{"rgb": torch.rand(3), "red": 0.1}])
    with pytest.raises(AnchorDataError, match="has no `rgb`"):
        ColourCollator(config())([{"red": 0.1, "vibrant": 0.0}])


def test_collated_batch_gives_the_regularizer_its_anchor_term():
    """A labelled red on the anchor costs nothing; the same label on another axis costs 1 − cos."""
    cfg = config()
    batch = ColourCollator(cfg)(features([(1.0, 0.0), (0.0, 0.0)]))
    regularizer = AnchorRegularizer(cfg.concepts, 4)
    weights = AnchorWeights(attract=[1.0, 0.0], repel=[0.0, 0.0])
    on_axis = torch.tensor([[[1.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 0.0]]])
    off_axis = torch.tensor([[[0.0, 1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0, 0.0]]])
    loss_on, _ = regularizer([on_axis], masks_from_batch(batch), weights)
    loss_off, _ = regularizer([off_axis], masks_from_batch(batch), weights)
    assert float(loss_on) == pytest.approx(0.0, abs=1e-6)
    assert float(loss_off) == pytest.approx(1.0)


def test_cube_samples_carry_each_colours_label_probabilities():
    samples = CubeSamples(1000, 8, AFFINITIES, seed=0)
    assert len(samples) == 1000
    item = samples[3]
    assert set(item) == {"rgb", "red", "vibrant"}
    assert float(item["red"]) == pytest.approx(float(AFFINITIES["red"](item["rgb"])))
    grid = cube_grid(8)
    assert ((samples.rgb[:, None] - grid[None]).abs().sum(-1) == 0).any(-1).all()
    assert not torch.equal(samples.rgb, CubeSamples(1000, 8, AFFINITIES, seed=1).rgb)


def test_cube_samples_reject_an_affinity_that_is_not_a_probability():
    with pytest.raises(AnchorDataError, match="affinity 'bad' must give one probability"):
        CubeSamples(10, 8, {"bad": lambda rgb: rgb.sum(-1)})
    with pytest.raises(AnchorDataError, match="`n` must be a positive int"):
        CubeSamples(0, 8, AFFINITIES)
