"""AnchorDataCollator: padding, label draws and clear errors on bad examples."""

from __future__ import annotations

import pytest
import torch

from anchor_hf import AnchorConfig, AnchorDataCollator, AnchorDataError, ConceptAnchor
from tiny import make_tokenizer

CFG = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0]), ConceptAnchor(name="joy", dims=[1])])


def examples():
    return [{"input_ids": [5, 6, 7], "red": 1.0, "joy": [0.0, 1.0, 0.0]},
            {"input_ids": [8, 9], "red": 0.0, "joy": [1.0, 1.0]}]


@pytest.mark.parametrize("side", ["right", "left"])
def test_collator_pads_and_aligns_every_mask_with_the_tokens(side):
    batch = AnchorDataCollator(make_tokenizer(side), CFG, draw="expected")(examples())
    assert batch["input_ids"].shape == (2, 3)
    live = batch["attention_mask"].bool()
    assert torch.equal(batch["anchor_segment_ids"] >= 0, live)
    assert torch.equal(batch["labels"][~live], torch.full((1,), -100))
    assert torch.equal(batch["labels"][live], batch["input_ids"][live])
    assert batch["anchor_span_weights"].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert torch.equal(batch["anchor_span_mask"][:, 0], live)  # example-level span = the live tokens
    joy = batch["anchor_token_weights"][:, 1]
    assert joy[live].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0] and joy[~live].sum() == 0
    pad_col = 2 if side == "right" else 0
    assert batch["input_ids"][1, pad_col] == 0


def test_collator_draws_labels_per_visit_with_the_given_probability():
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0])])
    collate = AnchorDataCollator(make_tokenizer(), cfg, seed=0)
    rows = [{"input_ids": [3, 4], "red": 0.25} for _ in range(4000)]
    drawn = collate(rows)["anchor_span_weights"]
    assert set(drawn.unique().tolist()) <= {0.0, 1.0}
    assert abs(drawn.mean().item() - 0.25) < 0.03  # 3σ of a binomial mean at n=4000 is 0.02
    again = AnchorDataCollator(make_tokenizer(), cfg, seed=0)(rows)["anchor_span_weights"]
    assert torch.equal(drawn, again)  # seedable
    assert not torch.equal(drawn, collate(rows)["anchor_span_weights"])  # a new visit, new draws


def test_collator_state_dict_replays_the_same_draws():
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0])])
    collate = AnchorDataCollator(make_tokenizer(), cfg, seed=3)
    rows = [{"input_ids": [3], "red": 0.5} for _ in range(64)]
    collate(rows)
    state = collate.state_dict()
    expected = collate(rows)["anchor_span_weights"]
    other = AnchorDataCollator(make_tokenizer(), cfg, seed=99)
    other.load_state_dict(state)
    assert torch.equal(other(rows)["anchor_span_weights"], expected)


def test_collator_uses_an_explicit_span_column():
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0], span_column="red_span")])
    rows = [{"input_ids": [3, 4, 5, 6], "red": 1.0, "red_span": [1, 3]},
            {"input_ids": [3, 4, 5, 6], "red": 1.0, "red_span": [0, 0, 0, 1]}]
    batch = AnchorDataCollator(make_tokenizer(), cfg, draw="expected")(rows)
    assert batch["anchor_span_mask"][:, 0].int().tolist() == [[0, 1, 1, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize("row, match", [
    ({"input_ids": [3, 4]},
     r"example 0 of the batch has no concept label column 'red'; columns present: \['input_ids'\]"),
    ({"input_ids": [3, 4], "red": 1.5}, r"`red` = 1.5 is not a probability \(allowed 0..1\)"),
    ({"input_ids": [3, 4], "red": [0.0, 1.0, 1.0]}, r"token-level `red` has length 3, but `input_ids` has 2"),
    ({"input_ids": [3, 4], "red": [0.0, -0.5]}, r"`red` holds values outside \[0, 1\]"),
    ({"input_ids": [3, 4], "red": "yes"}, r"`red` must be a float or a list of floats"),
    ({"input_ids": [], "red": 0.0}, r"example 0 of the batch has empty `input_ids`"),
    ({"red": 0.0}, r"example 0 of the batch has no `input_ids`"),
    ({"input_ids": [3, 4], "red": 0.0, "labels": [1]}, r"`labels` has length 1, but `input_ids` has 2"),
    ({"input_ids": [3, 4], "red": True}, r"example 0 of the batch: `red` holds booleans; a label column holds "
                                         r"probabilities in \[0, 1\] \(1.0 / 0.0 for exact labels\)"),
    ({"input_ids": [3, 4], "red": [True, False]}, r"`red` holds booleans"),
    ({"input_ids": [3, 4], "red": 1.0, "attention_mask": [1, 5]},
     r"`attention_mask` must hold 0 or 1 per token, got \[1, 5\]"),
    ({"input_ids": [3, 4.5], "red": 1.0}, r"`input_ids` must be a list of token ids \(ints >= 0\)"),
    ({"input_ids": [3, 4], "red": float("nan")}, r"`red` = nan is not a probability"),
])
def test_collator_rejects_bad_examples_with_the_column_and_the_rule(row, match):
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0])])
    with pytest.raises(AnchorDataError, match=match):
        AnchorDataCollator(make_tokenizer(), cfg)([row])


def test_collator_rejects_unknown_draw_mode():
    with pytest.raises(AnchorDataError, match=r"`draw` must be 'bernoulli' or 'expected', got 'sometimes'"):
        AnchorDataCollator(make_tokenizer(), CFG, draw="sometimes")


def span_of(value, n: int) -> list[int]:
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0], span_column="red_span")])
    row = {"input_ids": list(range(3, 3 + n)), "red": 1.0, "red_span": value}
    return AnchorDataCollator(make_tokenizer(), cfg, draw="expected")([row])["anchor_span_mask"][0, 0].int().tolist()


def test_a_start_end_span_on_a_two_token_example_is_read_as_a_span():
    """`[0, 2)` on a 2-token example used to be read as the 0/1 mask [False, True]."""
    assert span_of([0, 2], 2) == [1, 1]
    assert span_of([1, 2], 2) == [0, 1]
    assert span_of([1, 1], 2) == [1, 1]  # not a valid span: the mask of both tokens
    assert span_of([False, True], 2) == [0, 1] and span_of([True, False], 2) == [1, 0]  # booleans are masks


@pytest.mark.parametrize("value, n, match", [
    ([0, 1], 2, r"span `red_span` = \[0, 1\] on a 2-token example is both a 0/1 mask and the span \[0, 1\); "
                r"write booleans"),
    ([0, 5, 1], 3, r"span `red_span` must hold 0 or 1 per token, got \[0, 5, 1\]"),
    ([2, 1], 4, r"span `red_span` = \[2, 1\] is not inside 0..4 or is empty"),
    ([0, 1, 1], 2, r"span `red_span` has length 3, but `input_ids` has 2"),
    ("0:2", 2, r"span `red_span` must be 0/1 per token or \[start, end\)"),
])
def test_a_span_that_is_neither_a_mask_nor_a_span_is_refused(value, n, match):
    with pytest.raises(AnchorDataError, match=match):
        span_of(value, n)


def test_labels_that_reach_no_live_token_do_not_count():
    """A labelled example whose attention mask reaches no token, and token labels on masked
    positions, used to count in the attract denominator (diluting the pull) and in `labels`."""
    from anchor_hf.collator import masks_from_batch
    from anchor_hf.regularizer import AnchorRegularizer, AnchorWeights

    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0], tau=0.1)])
    good = {"input_ids": [3, 4, 5], "red": 1.0}
    rows = [good, {"input_ids": [6, 7], "attention_mask": [0, 0], "red": 1.0},
            {"input_ids": [8, 9], "attention_mask": [1, 0], "red": [0.0, 1.0]}]
    collate = AnchorDataCollator(make_tokenizer(), cfg, draw="expected")
    masks, alone = masks_from_batch(collate(rows)), masks_from_batch(collate([good]))
    assert masks.denominators().tolist() == [1.0, 4.0]  # one label, four live tokens
    reg = AnchorRegularizer(cfg.concepts, 8)
    h = torch.randn(3, 3, 8)
    weights = AnchorWeights(attract=[1.0], repel=[0.0])
    loss, stats = reg([h], masks, weights)
    expected, _ = reg([h[:1]], alone, weights)
    assert torch.allclose(loss, expected) and stats["red/labels"].item() == 1


def test_dataloader_workers_of_different_processes_draw_differently(monkeypatch):
    """Worker k of process r seeds from the process's offset seed; it used to ignore the process,
    so worker 0 of every process drew the very same labels."""
    from types import SimpleNamespace

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: SimpleNamespace(id=0))
    cfg = AnchorConfig(concepts=[ConceptAnchor(name="red", dims=[0])])
    rows = [{"input_ids": [3, 4], "red": 0.5} for _ in range(64)]
    draws = []
    for rank in (0, 1):
        collate = AnchorDataCollator(make_tokenizer(), cfg, seed=0)
        collate.seed_for_process(rank)
        draws.append(collate(rows)["anchor_span_weights"])
    assert not torch.equal(draws[0], draws[1])


def test_collator_says_to_tokenize_an_example_that_has_only_text():
    collate = AnchorDataCollator(make_tokenizer(), CFG)
    with pytest.raises(AnchorDataError, match=r"example 0 of the batch has no `input_ids`; columns present: "
                                              r"\['red', 'text'\]\. .*tokenizer\(batch\['text'\]\)"):
        collate([{"text": "w2 w3", "red": 1.0}])


def reference_collate(features, cfg: AnchorConfig, pad_id: int, side: str, multiple: int | None) -> dict:
    """The collator written the plain way, one example and concept at a time (its behaviour before
    it was vectorised); the oracle of the test below. Draws are `expected`, so no RNG is involved."""
    from anchor_hf.rows import read_ids, read_labels, read_mask, read_span, read_value

    ids = [read_ids(f, "x") for f in features]
    t = max(len(x) for x in ids)
    t = -(-t // multiple) * multiple if multiple else t
    b, c = len(features), len(cfg.concepts)
    out = {"input_ids": torch.full((b, t), pad_id), "attention_mask": torch.zeros(b, t, dtype=torch.long),
           "labels": torch.full((b, t), -100), "anchor_segment_ids": torch.full((b, t), -1),
           "anchor_span_weights": torch.zeros(b, c), "anchor_span_mask": torch.zeros(b, c, t, dtype=torch.bool),
           "anchor_token_weights": torch.zeros(b, c, t)}
    for i, (f, x) in enumerate(zip(features, ids)):
        n = len(x)
        sl = slice(t - n, t) if side == "left" else slice(0, n)
        mask = torch.tensor(read_mask(f, "x", n))
        out["input_ids"][i, sl] = torch.tensor(x)
        out["attention_mask"][i, sl] = mask
        lab = read_labels(f, "x", n)
        out["labels"][i, sl] = torch.tensor(lab) if lab is not None else torch.where(mask.bool(), torch.tensor(x), -100)
        out["anchor_segment_ids"][i, sl] = torch.where(mask.bool(), i, -1)
        for j, concept in enumerate(cfg.concepts):
            value = read_value(f, "x", concept.column, n)
            if isinstance(value, float):
                out["anchor_span_weights"][i, j] = value
                out["anchor_span_mask"][i, j, sl] = mask.bool() & torch.tensor(
                    read_span(f, "x", concept.span_column, n))
            else:
                out["anchor_token_weights"][i, j, sl] = torch.tensor(value)
    return out


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("multiple", [None, 8])
def test_collator_builds_the_batch_of_the_per_example_reference(side, multiple):
    """Random mixed batches (ragged, pads inside attention masks, given and default labels, example-
    and token-level labels, span columns as masks and as [start, end)) collate exactly as the
    one-example-at-a-time reference does. Negative control: the reference on the other padding
    side differs, so the comparison can fail."""
    g = torch.Generator().manual_seed(0)
    cfg = AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="a", dims=[0]),
                                             ConceptAnchor(name="b", dims=[1], span_column="b_span"),
                                             ConceptAnchor(name="c", dims=[2])])
    tokenizer = make_tokenizer(padding_side=side)
    collator = AnchorDataCollator(tokenizer, cfg, draw="expected", pad_to_multiple_of=multiple)
    for _ in range(5):
        rows = []
        for _ in range(6):
            n = int(torch.randint(3, 11, (1,), generator=g))
            row = {"input_ids": torch.randint(3, 60, (n,), generator=g).tolist(),
                   "a": float(torch.rand(1, generator=g)),
                   "b": float(torch.rand(1, generator=g)) if torch.rand(1, generator=g) < 0.5 else
                   torch.rand(n, generator=g).tolist(),
                   "b_span": [1, n - 1] if torch.rand(1, generator=g) < 0.5 else (torch.rand(n, generator=g) < 0.5)
                   .int().tolist(),
                   "c": (torch.rand(n, generator=g) * (torch.rand(n, generator=g) < 0.3)).tolist()}
            if torch.rand(1, generator=g) < 0.5:
                row["attention_mask"] = [1] * (n - 1) + [0]
            if torch.rand(1, generator=g) < 0.5:
                row["labels"] = torch.randint(-100, 60, (n,), generator=g).clamp_min(-100).tolist()
            rows.append(row)
        got = collator(rows)
        want = reference_collate(rows, cfg, tokenizer.pad_token_id, side, multiple)
        for key, value in want.items():
            assert torch.equal(got[key], value), key
            assert got[key].dtype == value.dtype, key
        other = reference_collate(rows, cfg, tokenizer.pad_token_id, "right" if side == "left" else "left", multiple)
        assert not torch.equal(got["input_ids"], other["input_ids"])
