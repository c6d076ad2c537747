"""GoEmotions loader: read in place, concepts and groups, label rates drawn per visit, word labels, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchor_hf import AnchorDataError
from anchor_hf.experiments.goemotions.data import (EKMAN, LABELS, SENTIMENT, Comment, build_dataset, exact_labels,
                                       label_probabilities, load_goemotions, read_hub_split, read_split,
                                       resolve_concept, resolve_concepts, without_concepts, word_token_labels)

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "goemotions"
needs_data = pytest.mark.skipif(not (DATA / "original" / "train.tsv").is_file(),
                                reason=f"GoEmotions is not at {DATA} (the shared datasets folder beside the repo)")


def write_tsv(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text("".join(f"{t}\t{label}\t{i}\n" for t, label, i in rows), encoding="utf-8")
    return folder


@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    return write_tsv(tmp_path / "ge", [("I am so angry at this", "2", "a1"),
                                       ('He said "thanks" a lot', "15", "a2"),
                                       ("Ugh, annoying and gross", "3,11", "a3"),
                                       ("Just a normal day", "27", "a4")])


def test_read_split_keeps_quotes_and_multiple_labels(small_dir):
    comments = read_split(str(small_dir), "train")
    assert [c.id for c in comments] == ["a1", "a2", "a3", "a4"]
    assert comments[1].text == 'He said "thanks" a lot'  # quoting off: the quotes are text
    assert comments[2].labels == (3, 11)


def test_read_split_accepts_the_dataset_root_and_validation_alias(small_dir, tmp_path):
    root = tmp_path / "root"
    write_tsv(root / "original", [("x y", "27", "b1")])
    assert [c.id for c in read_split(str(root), "validation")] == ["b1"]
    with pytest.raises(AnchorDataError, match="holds no train.tsv"):
        read_split(str(tmp_path / "missing"), "train")


@pytest.mark.parametrize("row, message", [("text only", "expected 3 tab-separated"),
                                          ("t\tx,y\tid", "not comma-separated ids"),
                                          ("t\t28\tid", "outside 0..27")])
def test_read_split_names_the_line_of_a_bad_row(tmp_path, row, message):
    (tmp_path / "train.tsv").write_text(f"ok\t1\tid0\n{row}\n", encoding="utf-8")
    with pytest.raises(AnchorDataError, match=f"train.tsv:2: .*{message}"):
        read_split(str(tmp_path), "train")


def test_resolve_concept_labels_groups_and_bare_sentiments():
    assert resolve_concept("anger").members == {LABELS.index("anger")}
    ekman = resolve_concept("ekman:anger")
    assert ekman.members == {LABELS.index(x) for x in ("anger", "annoyance", "disapproval")}
    assert ekman.column == "ekman_anger" and ekman.exact_column == "exact_ekman_anger"
    assert resolve_concept("negative").name == "sentiment:negative"
    assert resolve_concept("Gratitude").name == "gratitude"
    with pytest.raises(AnchorDataError, match="'rage' is not a GoEmotions label or group; allowed: admiration"):
        resolve_concept("rage")
    with pytest.raises(AnchorDataError, match="repeats a concept"):
        resolve_concepts("anger,anger")


def test_groupings_cover_every_label_once_except_neutral_overlaps():
    for grouping in (EKMAN, SENTIMENT):
        members = [x for group in grouping.values() for x in group]
        assert sorted(members) == sorted(LABELS)  # a partition of the 28 labels


@needs_data
@pytest.mark.parametrize("folder, grouping", [("ekman", EKMAN), ("group", SENTIMENT)])
def test_group_mappings_agree_with_the_dataset_files(folder, grouping):
    """Each comment's groups, computed from its 28-way labels, are the groups the dataset's own files give."""
    names = (DATA / folder / "labels.txt").read_text().split()
    original = read_split(str(DATA / "original"), "dev")
    grouped = read_split(str(DATA / folder), "dev")
    mismatches = 0
    for a, b in zip(original, grouped):
        assert a.id == b.id
        want = {g for g in names if resolve_concept(f"{'ekman' if folder == 'ekman' else 'sentiment'}:{g}").holds(a)}
        mismatches += want != {names[i] for i in b.labels}
    assert mismatches == 0
    # negative control: a wrong mapping (anger group without annoyance) disagrees somewhere
    wrong = {LABELS.index("anger"), LABELS.index("disapproval")}
    assert any((LABELS.index("annoyance") in a.labels) and not (set(a.labels) & wrong) for a in original)


@needs_data
def test_load_goemotions_reads_the_shared_folder_in_place():
    splits = load_goemotions(str(DATA), splits=("test",))
    assert len(splits["test"]) == 5427 and sum(exact_labels(splits["test"], resolve_concept("anger"))) == 198


def test_hub_path_raises_a_clear_error_offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AnchorDataError, match="Offline, pass `data_dir`"):
        read_hub_split("train", hub_dataset="anchor-hf-tests/no-such-goemotions")


def test_visit_scheme_gives_every_concept_comment_the_rate_and_others_zero():
    exact = [1, 0, 1, 1, 0]
    assert label_probabilities(exact, 0.05) == [0.05, 0.0, 0.05, 0.05, 0.0]


def test_subset_scheme_labels_a_fixed_seeded_share_of_concept_comments():
    exact = [1] * 200 + [0] * 200
    probs = label_probabilities(exact, 0.05, "subset", seed=1)
    assert sum(probs) == 10 and all(p == 0 for p in probs[200:])
    assert probs == label_probabilities(exact, 0.05, "subset", seed=1)
    assert probs != label_probabilities(exact, 0.05, "subset", seed=2)  # control: the seed matters


@pytest.mark.parametrize("rate", [0.0, 1.5, True])
def test_label_rate_outside_zero_one_is_refused(rate):
    with pytest.raises(AnchorDataError, match="`label_rate` must be in \\(0, 1\\]"):
        label_probabilities([1], rate)


def test_word_token_labels_mark_whole_words_only():
    text = "So angry, angrybird"
    offsets = [(0, 2), (3, 8), (8, 9), (10, 15), (15, 19), (0, 0)]
    assert word_token_labels(text, offsets, ["Angry"], 0.5) == [0.0, 0.5, 0.0, 0.0, 0.0, 0.0]


def test_build_dataset_has_probabilities_exact_labels_and_eos(tokenizer, small_dir):
    comments = [Comment("w5 w6 w7", (2,), "a"), Comment("w8 w9", (15,), "b"), Comment("w10 w11", (3, 2), "c")]
    concepts = resolve_concepts(["anger", "ekman:anger"])
    ds = build_dataset(comments, tokenizer, concepts, label_rate=0.05, max_length=3)
    assert ds["input_ids"][0] == [5, 6, 1]  # truncated to max_length with the end-of-text token
    assert ds["anger"] == [0.05, 0.0, 0.05] and ds["exact_anger"] == [1, 0, 1]
    assert ds["exact_ekman_anger"] == [1, 0, 1]


def test_build_dataset_word_lists_give_token_labels_in_concept_comments_only(tokenizer):
    comments = [Comment("w5 w6 w7", (2,), "a"), Comment("w6 w9", (15,), "b")]
    ds = build_dataset(comments, tokenizer, resolve_concepts("anger"), 1.0, word_lists={"anger": ["w6"]})
    assert ds["anger"][0] == [0.0, 1.0, 0.0, 0.0]  # w6 labelled, eos never
    assert ds["anger"][1] == [0.0, 0.0, 0.0]  # the same word outside a concept comment: no label
    with pytest.raises(AnchorDataError, match="`word_lists` names 'joy', which is not one of the concepts"):
        build_dataset(comments, tokenizer, resolve_concepts("anger"), 1.0, word_lists={"joy": ["w6"]})


def test_without_concepts_drops_every_comment_with_any_concept_label():
    comments = [Comment("a", (2,), "1"), Comment("b", (3, 17), "2"), Comment("c", (17,), "3")]
    kept = without_concepts(comments, resolve_concepts("anger,annoyance"))
    assert [c.id for c in kept] == ["3"]
    assert len(without_concepts(comments, resolve_concepts("gratitude"))) == 3  # control



def test_replay_repeats_only_labelled_comments(tokenizer):
    comments = [Comment(f"w{5 + i} w9", (2,) if i < 4 else (15,), str(i)) for i in range(8)]
    ds = build_dataset(comments, tokenizer, resolve_concepts("anger"), 0.5, scheme="subset", seed=0, replay=3)
    labelled = [c.text for c, p in zip(comments, ds["anger"][:8]) if p > 0]
    assert len(labelled) == 2 and len(ds) == 8 + 2 * 3
    assert sorted(ds["text"][8:]) == sorted(labelled * 3)  # only the labelled ones come back
    assert len(build_dataset(comments, tokenizer, resolve_concepts("anger"), 0.5, scheme="subset")) == 8  # control


def test_text_span_covers_the_comment_but_not_the_end_of_text_token(tokenizer):
    from anchor_hf import AnchorConfig, ConceptAnchor
    from anchor_hf.collator import SPAN_MASK, AnchorDataCollator
    from anchor_hf.experiments.goemotions.data import TEXT_SPAN

    comments = [Comment("w5 w6 w7", (2,), "a"), Comment("w8 w9", (15,), "b"), Comment("w10", (2,), "c")]
    ds = build_dataset(comments, tokenizer, resolve_concepts("anger"), label_rate=1.0, max_length=8)
    assert ds[TEXT_SPAN] == [[True, True, True, False], [True, True, False], [True, False]]
    assert ds["input_ids"][0][-1] == tokenizer.eos_token_id
    no_eos = build_dataset(comments[:2], tokenizer, resolve_concepts("anger"), label_rate=1.0, max_length=8,
                           add_eos=False)
    assert no_eos[TEXT_SPAN] == [[True] * 3, [True] * 2]
    cfg = AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="anger", dims=[0], span_column=TEXT_SPAN)])
    batch = AnchorDataCollator(tokenizer, cfg, draw="expected")([ds[0], ds[2]])
    assert batch[SPAN_MASK][0, 0].tolist() == [True, True, True, False]  # the pull can never land on <eos>
    # a one-word comment is 2 tokens: its span is read as the first token, not refused as ambiguous
    assert batch[SPAN_MASK][1, 0].tolist() == [True, False, False, False]
