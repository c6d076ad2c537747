"""`detect`: per-example concept scores from the anchored place, padding never scoring."""

from __future__ import annotations

import pytest
import torch

from anchor_hf import AnchorConfig, AnchorConfigError, ConceptAnchor, HiddenStateCapture
from anchor_hf.interventions import AnchorInterventionError
from tiny import WIDTH, make_model

RED = (56, 57, 58)  # token ids whose embeddings are planted along the concept's direction


def planted(family: str = "llama") -> tuple[torch.nn.Module, AnchorConfig]:
    """A tiny model whose RED embeddings point along a random unit `v`, and a config anchoring `red` on `v`."""
    model = make_model(family).eval()
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 1, 0  # <eos>, <pad>
    v = torch.randn(WIDTH, generator=torch.Generator().manual_seed(3))
    v = v / v.norm()
    with torch.no_grad():
        model.get_input_embeddings().weight[list(RED)] += 2.0 * v
    cfg = AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="red", vector=v.tolist()),
                                                ConceptAnchor(name="axis", dims=[3])])
    return model, cfg


def pad(rows: list[list[int]], side: str, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(r) for r in rows)
    ids = torch.full((len(rows), t), pad_id)
    mask = torch.zeros(len(rows), t, dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(0, len(r)) if side == "right" else slice(t - len(r), t)
        ids[i, sl], mask[i, sl] = torch.tensor(r), 1
    return ids, mask


ROWS = [[5, 6, 57, 7], [8, 9], [10, 56, 11, 12, 13]]


def test_detect_is_the_max_over_tokens_of_the_mean_alignment_over_layers():
    model, cfg = planted()
    ids = torch.tensor([[5, 6, 57, 7], [8, 9, 10, 11]])
    with torch.no_grad(), HiddenStateCapture([model.model.layers[0], model.model.layers[1]]) as capture:
        model(ids)
    v = torch.tensor(cfg.concept("red").vector)
    cos = torch.stack([torch.nn.functional.cosine_similarity(h, v, dim=-1) for h in capture.states])  # [L, B, T]
    from anchor_hf import detect

    per_layer = detect(model, cfg, "red", ids, reduce=None)
    assert per_layer.shape == (2, 2, 4)
    assert torch.allclose(per_layer, cos, atol=1e-6)
    assert torch.allclose(detect(model, cfg, "red", ids), cos.mean(0).amax(-1), atol=1e-6)
    scores = detect(model, cfg, "red", ids)
    assert scores[0] > 0.5 > scores[1]  # the planted token is found; the sequence without one is not flagged


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_never_scores_on_either_side(family, side):
    """Padded batches score each example exactly as it scores alone, although the pad token's own state is
    on the concept's place (so a pad that scored would win the max)."""
    from anchor_hf import detect

    model, cfg = planted(family)
    pad_id = RED[0]  # a pad whose state would score highest: the negative control of the mask
    alone = torch.stack([detect(model, cfg, "red", torch.tensor([r]))[0] for r in ROWS])
    ids, mask = pad(ROWS, side, pad_id)
    scores = detect(model, cfg, "red", ids, attention_mask=mask)
    assert torch.allclose(scores, alone, atol=1e-5)
    per_token = detect(model, cfg, "red", ids, attention_mask=mask, reduce=None)
    assert torch.isnan(per_token[:, ~mask.bool()]).all() and not torch.isnan(per_token[:, mask.bool()]).any()
    unmasked = detect(model, cfg, "red", ids)  # the same batch with the pads read as tokens
    assert (unmasked[1] - scores[1]) > 0.3


def test_detect_reads_an_axis_concept_and_runs_without_gradients():
    from anchor_hf import detect

    model, cfg = planted()
    ids = torch.tensor([[5, 6, 7]])
    scores = detect(model, cfg, "axis", ids)
    assert scores.shape == (1,) and not scores.requires_grad
    h = []
    with torch.no_grad(), HiddenStateCapture([model.model.layers[0], model.model.layers[1]]) as capture:
        model(ids)
        h = capture.states
    expected = torch.stack([x[..., 3] / x.norm(dim=-1) for x in h]).mean(0).amax(-1)
    assert torch.allclose(scores, expected, atol=1e-6)


def test_a_concept_at_the_opposite_pole_scores_the_negated_alignment():
    from anchor_hf import detect

    model, _ = planted()
    cfg = AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="up", dims=[3], repel_kind="hinge"),
                                                ConceptAnchor(name="down", dims=[3], pole=-1, repel_kind="hinge")])
    ids = torch.tensor([[5, 6, 57, 7]])
    up, down = detect(model, cfg, "up", ids, reduce=None), detect(model, cfg, "down", ids, reduce=None)
    assert torch.allclose(down, -up) and up.abs().max() > 0.01


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(concept="blue"), AnchorConfigError, r"unknown concept 'blue'"),
    (dict(reduce="mean"), AnchorInterventionError, r"`reduce` must be 'max' or None, got 'mean'"),
    (dict(input_ids=[[5, 6]]), AnchorInterventionError, r"`input_ids` must be a 2-D integer tensor \[B, T\]"),
    (dict(attention_mask=torch.ones(1, 2)), AnchorInterventionError,
     r"`attention_mask` has shape \[1, 2\], but `input_ids` has \[1, 3\]"),
    (dict(attention_mask=torch.tensor([[0, 0, 0]])), AnchorInterventionError,
     r"example 0 has no token to score: its `attention_mask` is all 0"),
])
def test_detect_refuses_bad_arguments_naming_them(kwargs, error, message):
    from anchor_hf import detect

    model, cfg = planted()
    args = {"concept": "red", "input_ids": torch.tensor([[5, 6, 7]]), **kwargs}
    concept, ids = args.pop("concept"), args.pop("input_ids")
    with pytest.raises(error, match=message):
        detect(model, cfg, concept, ids, **args)


def test_detect_is_exported_at_the_top_level_and_from_interventions():
    import anchor_hf
    import anchor_hf.interventions

    assert anchor_hf.detect is anchor_hf.interventions.detect
    assert "detect" in anchor_hf.__all__ and "detect" in anchor_hf.interventions.__all__
