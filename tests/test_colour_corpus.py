"""Colour corpora: names, held-out split, tokenizers, mixing language, labels from the colour."""

from __future__ import annotations

import os

import pytest
import torch

from anchor_hf.experiments.colour.corpus import (char_tokenizer, encode, load_names, names_dataset, split_heldout,
                                          word_tokenizer)
from anchor_hf.experiments.colour.mixing import (closed_pairs, grid_words, mix, mixing_dataset, mixing_tokenizer,
                                                split_pairs)
from anchor_hf.experiments.colour.spec import ColourSpec
from anchor_hf.experiments.colour.target import exact_labels, label_probability, parse_target, similarity
from anchor_hf.errors import AnchorDataError

COLORNAMES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "colornames")


@pytest.fixture(scope="module")
def names():
    return load_names("xkcd")


def test_load_names_gives_the_949_xkcd_colours_sorted_and_lower_case(names):
    assert len(names) == 949
    assert [c.name for c in names] == sorted(c.name for c in names)
    assert all(c.name == c.name.lower() and len(c.hex) == 7 for c in names)
    red = next(c for c in names if c.name == "red")
    assert red.line == "red: #e50000" and red.prompt == "red: #"


@pytest.mark.skipif(not os.path.isdir(COLORNAMES), reason="shared colornames dataset not present")
def test_load_names_reads_the_colornames_list_in_place_and_subsets_by_seed():
    a = load_names("colornames", COLORNAMES, max_names=300, seed=1)
    b = load_names("colornames", COLORNAMES, max_names=300, seed=2)
    assert len(a) == 300 and a != b


def test_load_names_requires_a_data_dir_for_colornames(tmp_path):
    with pytest.raises(AnchorDataError, match="data_dir"):
        load_names("colornames")
    with pytest.raises(AnchorDataError, match="has no colornames.csv"):
        load_names("colornames", str(tmp_path))


def test_split_heldout_keeps_only_names_whose_words_all_occur_in_training(names):
    train, held = split_heldout(names, 0.1, seed=0)
    assert len(held) == 95 and len(train) + len(held) == 949
    train_words = {w for c in train for w in c.name.split()}
    assert all(len(c.name.split()) >= 2 and set(c.name.split()) <= train_words for c in held)
    again, _ = split_heldout(names, 0.1, seed=0)
    other, _ = split_heldout(names, 0.1, seed=1)
    assert again == train and other != train  # deterministic from the seed, and the seed matters


def test_parse_target_reads_hues_hex_and_xkcd_names_and_rejects_others():
    assert parse_target("red").rgb == (1.0, 0.0, 0.0)
    assert parse_target("#ff8000").name == "cff8000"
    assert parse_target("cherry red").name == "cherry_red"
    with pytest.raises(AnchorDataError, match="is not a colour"):
        parse_target("not a colour")


def test_similarity_is_one_at_the_target_and_zero_at_its_complement_for_any_target():
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]])
    red = similarity(rgb, parse_target("red"))
    blue = similarity(rgb, parse_target("blue"))
    assert torch.allclose(red, torch.tensor([1.0, 0.0, 0.0, 0.0]), atol=1e-6)
    assert blue[2] == pytest.approx(1.0) and blue[0] == pytest.approx(0.0)


def test_label_probability_is_sparse_and_peaks_at_the_target(names):
    sim = similarity(torch.tensor([c.rgb for c in names]), parse_target("red"))
    p = label_probability(sim, peak=1.0, power=8.0)
    assert float(p.max()) > 0.9 and float(p.mean()) < 0.02  # a few percent of a line per epoch at most
    assert int(exact_labels(sim).sum()) == 96
    with pytest.raises(AnchorDataError, match="label_peak"):
        label_probability(sim, peak=1.5)


def test_word_tokenizer_makes_name_words_and_hex_digits_single_tokens_and_survives_saving(names, tmp_path):
    from transformers import AutoTokenizer

    tok = word_tokenizer([c.line for c in names])
    ids = encode(tok, "dark pastel green: #56ae57")
    assert tok.convert_ids_to_tokens(ids) == ["<bos>", "dark", "pastel", "green", ":", "#", "5", "6", "a", "e",
                                              "5", "7", "<eos>"]
    tok.save_pretrained(tmp_path)
    assert encode(AutoTokenizer.from_pretrained(tmp_path), "dark pastel green: #56ae57") == ids


def test_char_tokenizer_makes_every_character_one_token(names):
    tok = char_tokenizer([c.line for c in names])
    ids = encode(tok, "red: #e50000", eos=False)
    assert len(ids) == 1 + len("red: #e50000") and "<unk>" not in tok.convert_ids_to_tokens(ids)


def test_names_dataset_answer_only_labels_start_at_the_hash(names):
    tok = word_tokenizer([c.line for c in names])
    ds = names_dataset(names[:3], tok, parse_target("red"), answer_only=True)
    row = ds[0]
    start = row["labels"].index(tok.convert_tokens_to_ids("#"))
    assert all(x == -100 for x in row["labels"][:start]) and row["labels"][start:] == row["input_ids"][start:]
    plain = names_dataset(names[:3], tok, parse_target("red"))
    assert "labels" not in plain.column_names


def test_mixing_language_has_216_colours_and_closed_pairs_only():
    assert len(grid_words()) == 216
    assert mix("f06", "30c") == "909" and mix("f00", "00f") is None
    pairs = closed_pairs()
    assert len(pairs) == 2808 and all(mix(a, b) == m for a, b, m in pairs)
    train, held = split_pairs(0.1, seed=0)
    assert not {(a, b) for a, b, _ in train} & {(a, b) for a, b, _ in held}


def test_mixing_dataset_has_one_token_per_colour_and_labels_from_the_answer():
    tok = mixing_tokenizer()
    ds = mixing_dataset([("f00", "f06", "f03"), ("0ff", "033", "099")], tok, parse_target("red"))
    assert len(ds) == 4 and len(ds[0]["input_ids"]) == 7  # <bos> a + b = m <eos>, both orders
    assert ds[0]["is_target"] == 1 and ds[2]["is_target"] == 0


def test_colour_spec_rejects_an_unknown_corpus_or_tokenizer():
    with pytest.raises(AnchorDataError, match="corpus"):
        ColourSpec(corpus="nope")  # type: ignore[arg-type]
    with pytest.raises(AnchorDataError, match="tokenizer"):
        ColourSpec(tokenizer_kind="bpe")  # type: ignore[arg-type]


def test_concept_spans_leave_out_bos_the_one_state_shared_by_every_line(names):
    tok = word_tokenizer([c.line for c in names])
    ds = names_dataset(names[:4], tok, parse_target("red"))
    assert all(row["concept_span"] == [1, len(row["input_ids"])] for row in ds)
    mix_ds = mixing_dataset([("f00", "f06", "f03")], mixing_tokenizer(), parse_target("red"))
    assert mix_ds[0]["concept_span"] == [1, 7]


@pytest.mark.parametrize("corpus", ["xkcd", "mixing"])
def test_exclude_target_drops_exactly_the_target_items_and_keeps_the_tokenizer(corpus):
    full = ColourSpec(corpus=corpus, concept="red")
    never = ColourSpec(corpus=corpus, concept="red", exclude_target=True)
    tokenizer = full.tokenizer()
    assert never.tokenizer().get_vocab() == tokenizer.get_vocab()
    a, b = full.train_dataset(tokenizer), never.train_dataset(tokenizer)
    assert sum(a["is_target"]) > 0 and sum(b["is_target"]) == 0
    assert len(b) == len(a) - sum(a["is_target"])
    assert set(b["text"]) == {t for t, y in zip(a["text"], a["is_target"]) if not y}


def test_a_saved_colour_spec_loads_back_and_a_bad_one_names_the_fields(tmp_path):
    from anchor_hf.experiments.colour.spec import load_spec, save_spec

    spec = ColourSpec(corpus="xkcd", concept="#ff8800", max_names=50, exclude_target=True)
    save_spec(spec, str(tmp_path))
    assert load_spec(str(tmp_path)) == spec and load_spec(str(tmp_path / "none")) is None
    (tmp_path / "colour_spec.json").write_text('{"corpus": "xkcd", "colour": "red"}')
    with pytest.raises(AnchorDataError, match="not a colour spec .*allowed fields: .*exclude_target"):
        load_spec(str(tmp_path))


def test_achromatic_labels_are_hue_independent_where_similarity_to_grey_is_not():
    from anchor_hf.experiments.colour.maths import hsv_to_rgb
    from anchor_hf.experiments.colour.target import DEFAULT_DESTINATION, destination_probability, parse_target

    grey = parse_target(DEFAULT_DESTINATION)
    hues = torch.linspace(0, 1, 13)[:-1]
    pale = hsv_to_rgb(torch.stack([hues, torch.full_like(hues, 0.3), torch.full_like(hues, 0.6)], -1))  # [12, 3]
    p = destination_probability(pale, grey)
    assert p.max() - p.min() < 1e-6 and p.min() > 0.1
    labels = label_probability(similarity(pale, grey), 1.0, 8.0)
    assert labels[0] > 2 * labels[6]  # negative control: similarity to grey favours pale red over pale cyan


def test_achromatic_labels_peak_exactly_at_the_destination_grey():
    from anchor_hf.experiments.colour.maths import cube_grid
    from anchor_hf.experiments.colour.target import destination_probability, parse_target

    grid = torch.cat([cube_grid(16), torch.tensor([[128 / 255] * 3])])
    p = destination_probability(grid, parse_target("#808080"), peak=0.5, power=3.0)
    assert torch.equal(grid[p.argmax()], torch.tensor([128 / 255] * 3)) and abs(float(p.max()) - 0.5) < 1e-6
    black_white = destination_probability(torch.tensor([[0.0] * 3, [1.0] * 3, [1.0, 0.0, 0.0]]),
                                          parse_target("#808080"))
    assert black_white.max() < 0.02  # black, white and pure red are not grey


def test_a_chromatic_destination_is_labelled_by_similarity():
    from anchor_hf.experiments.colour.target import destination_probability, is_achromatic, parse_target

    blue = parse_target("blue")
    assert not is_achromatic(blue) and is_achromatic(parse_target("#7f8080"))
    rgb = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert torch.allclose(destination_probability(rgb, blue, 1.0, 4.0), label_probability(similarity(rgb, blue),
                                                                                           1.0, 4.0))
