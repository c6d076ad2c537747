"""Synthetic token walks with one concept: seeded, sparse labels, concept tokens only where labelled."""

from __future__ import annotations

import pytest

from anchor_hf import AnchorDataError
from anchor_hf.experiments.synthetic import CONCEPT_BLOCK, synthetic_concept_dataset, synthetic_tokenizer


def test_synthetic_dataset_is_a_function_of_its_seed():
    a, b = synthetic_concept_dataset(64, seed=3), synthetic_concept_dataset(64, seed=3)
    assert a["input_ids"] == b["input_ids"] and a["marked"] == b["marked"]
    assert synthetic_concept_dataset(64, seed=4)["input_ids"] != a["input_ids"]  # control: the seed matters


def test_concept_tokens_appear_exactly_in_concept_examples_which_carry_the_label_rate():
    ds = synthetic_concept_dataset(200, vocab_size=64, concept_rate=0.3, label_rate=0.25, seed=0)
    top = set(range(64 - CONCEPT_BLOCK, 64))
    for ids, p, is_concept in zip(ds["input_ids"], ds["marked"], ds["is_concept"]):
        assert bool(top & set(ids)) == bool(is_concept)
        assert p == (0.25 if is_concept else 0.0)
        assert ids[-1] == 1 and max(ids) < 64
    share = sum(ds["is_concept"]) / len(ds)
    assert 0.2 < share < 0.4  # about concept_rate; neither none nor all


def test_lengths_vary_between_min_len_and_seq_len_so_batches_need_padding():
    lengths = {len(ids) for ids in synthetic_concept_dataset(100, seq_len=20, min_len=8)["input_ids"]}
    assert min(lengths) >= 8 and max(lengths) <= 20 and len(lengths) > 3
    assert {len(ids) for ids in synthetic_concept_dataset(20, seq_len=12, min_len=12)["input_ids"]} == {12}


def test_synthetic_tokenizer_round_trips_the_token_names():
    tok = synthetic_tokenizer(64)
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1 and len(tok) == 64
    assert tok("t3 t63")["input_ids"] == [3, 63]


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab_size": 10}, r"`vocab_size` must be an int >= 15"),
    ({"concept_rate": 1.5}, r"`concept_rate` must be a probability in \[0, 1\], got 1.5"),
    ({"min_len": 2}, r"`min_len` must be in 4..seq_len"),
    ({"num_examples": 0}, r"`num_examples` must be an int >= 1, got 0"),
])
def test_bad_synthetic_settings_are_refused(kwargs, message):
    with pytest.raises(AnchorDataError, match=message):
        synthetic_concept_dataset(**kwargs)


def test_synthetic_dataset_args_are_checked_when_read():
    from anchor_hf.experiments.synthetic import SyntheticArgs

    assert SyntheticArgs(examples=8, label_rate=1.0).label_rate == 1.0
    with pytest.raises(AnchorDataError, match=r"`label_rate` must be a probability in \[0, 1\], got 1.5"):
        SyntheticArgs(label_rate=1.5)
    with pytest.raises(AnchorDataError, match="`concept` must be a non-empty column name"):
        SyntheticArgs(concept="")
