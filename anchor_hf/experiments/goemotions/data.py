"""GoEmotions as concept-labelled text: any emotion or emotion group becomes an anchored concept.

GoEmotions (Demszky et al. 2020, Apache-2.0) is 58k Reddit comments, each labelled with
one or more of 28 labels (27 emotions + neutral), with two published groupings: Ekman's 7
and 4 sentiment groups. Labels come per comment, not per token (docs/method.md §2, pooled pull),
and the nested groups (anger ⊂ Ekman anger ⊂ negative) give ground truth for entanglement.

Read in place from a folder of `{train,dev,test}.tsv` (text, comma-separated label ids,
comment id; tab-separated, no quoting), e.g. `../shared/datasets/goemotions/original`, or
from the Hub for users online (`data_dir=None`). A concept is named
- a label (`anger`, `gratitude`; the 28 in `LABELS`),
- an Ekman group (`ekman:anger` = anger + annoyance + disapproval),
- a sentiment group (`sentiment:negative`; `positive`, `negative`, `ambiguous` also bare).
Training sees label *probabilities* drawn per visit (docs/method.md §3) at a chosen label rate;
the exact labels stay beside them (`exact_<column>`) for evaluation.
"""

from __future__ import annotations

import csv
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from anchor_hf.errors import AnchorDataError

HUB_DATASET = "google-research-datasets/go_emotions"
HUB_CONFIG = "simplified"  # same 28 label ids as the TSVs (neutral = 27)
SPLITS = ("train", "dev", "test")

LABELS = ("admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
          "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude",
          "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse",
          "sadness", "surprise", "neutral")

_POSITIVE = ("admiration", "amusement", "approval", "caring", "desire", "excitement", "gratitude", "joy", "love",
             "optimism", "pride", "relief")
# The dataset's own mappings (checked against its ekman/ and group/ files in the tests).
EKMAN: dict[str, tuple[str, ...]] = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": _POSITIVE,
    "neutral": ("neutral",),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
}
SENTIMENT: dict[str, tuple[str, ...]] = {
    "ambiguous": ("realization", "surprise", "curiosity", "confusion"),
    "negative": ("fear", "nervousness", "remorse", "embarrassment", "disappointment", "sadness", "grief", "disgust",
                 "anger", "annoyance", "disapproval"),
    "neutral": ("neutral",),
    "positive": _POSITIVE,
}
GROUPINGS = {"ekman": EKMAN, "sentiment": SENTIMENT}
LabelScheme = Literal["visit", "subset"]


@dataclass(frozen=True)
class Comment:
    """One GoEmotions comment: its text, its label ids (into `LABELS`) and its comment id."""

    text: str
    labels: tuple[int, ...]
    id: str


@dataclass(frozen=True)
class EmotionConcept:
    """A label or group of labels used as one concept.

    Attributes:
        name: as given (`anger`, `ekman:anger`, `sentiment:negative`).
        members: the label ids whose comments belong to the concept.
    """

    name: str
    members: frozenset[int]

    @property
    def column(self) -> str:
        """Dataset column of its label probabilities: the name with `:` as `_` (`ekman_anger`)."""
        return self.name.replace(":", "_")

    @property
    def exact_column(self) -> str:
        """Dataset column of its exact 0/1 labels, kept for evaluation."""
        return f"exact_{self.column}"

    def holds(self, comment: Comment) -> bool:
        """Whether the comment carries any of the concept's labels."""
        return any(label in self.members for label in comment.labels)


def allowed_concepts() -> list[str]:
    """Every concept name `resolve_concept` accepts."""
    names = list(LABELS)
    for grouping, groups in GROUPINGS.items():
        names += [f"{grouping}:{g}" for g in groups]
    names += [g for g in SENTIMENT if g not in LABELS]
    return names


def resolve_concept(name: str) -> EmotionConcept:
    """The concept a name stands for; raises `AnchorDataError` listing the allowed names."""
    if not isinstance(name, str):
        raise AnchorDataError(f"`concept` must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key in LABELS:
        return EmotionConcept(key, frozenset({LABELS.index(key)}))
    grouping, _, group = key.partition(":")
    if not group and key in SENTIMENT:  # positive, negative, ambiguous are no labels: bare means sentiment
        grouping, group = "sentiment", key
    if grouping in GROUPINGS and group in GROUPINGS[grouping]:
        members = frozenset(LABELS.index(x) for x in GROUPINGS[grouping][group])
        return EmotionConcept(f"{grouping}:{group}", members)
    raise AnchorDataError(f"`concept` = {name!r} is not a GoEmotions label or group; allowed: "
                          f"{', '.join(allowed_concepts())}")


def resolve_concepts(names: str | Sequence[str]) -> list[EmotionConcept]:
    """Several concepts (a list, or one comma-separated string), each on its own axis; no repeats."""
    items = [x for x in names.split(",") if x.strip()] if isinstance(names, str) else list(names)
    if not items:
        raise AnchorDataError("`concept` must name at least one GoEmotions label or group")
    concepts = [resolve_concept(x) for x in items]
    columns = [c.column for c in concepts]
    if len(set(columns)) != len(columns):
        raise AnchorDataError(f"`concept` repeats a concept: {columns}")
    return concepts


# ---------------------------------------------------------------------- reading
def _split_file(data_dir: str, split: str) -> str:
    if split == "validation":
        split = "dev"
    if split not in SPLITS:
        raise AnchorDataError(f"`split` = {split!r} is not a GoEmotions split; allowed: {', '.join(SPLITS)}")
    for candidate in (os.path.join(data_dir, f"{split}.tsv"), os.path.join(data_dir, "original", f"{split}.tsv")):
        if os.path.isfile(candidate):
            return candidate
    raise AnchorDataError(f"`data_dir` = {data_dir!r} holds no {split}.tsv (nor original/{split}.tsv); pass the "
                          "GoEmotions folder, e.g. ../shared/datasets/goemotions")


def read_split(data_dir: str, split: str) -> list[Comment]:
    """The comments of one split from `data_dir/{split}.tsv` (or `data_dir/original/{split}.tsv`)."""
    path = _split_file(os.fspath(data_dir), split)
    comments = []
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if len(row) != 3:
                raise AnchorDataError(f"{path}:{line_no}: expected 3 tab-separated fields (text, labels, id), "
                                      f"got {len(row)}")
            try:
                labels = tuple(int(x) for x in row[1].split(","))
            except ValueError as err:
                raise AnchorDataError(f"{path}:{line_no}: labels {row[1]!r} are not comma-separated ids") from err
            if not labels or not all(0 <= x < len(LABELS) for x in labels):
                raise AnchorDataError(f"{path}:{line_no}: label ids {labels} outside 0..{len(LABELS) - 1}")
            comments.append(Comment(row[0], labels, row[2]))
    return comments


def read_hub_split(split: str, hub_dataset: str = HUB_DATASET) -> list[Comment]:
    """The comments of one split from the Hub (users online); a clear error when offline."""
    import datasets

    name = {"dev": "validation"}.get(split, split)
    try:
        ds = datasets.load_dataset(hub_dataset, HUB_CONFIG, split=name)
    except Exception as err:  # offline, no such repo: say what to do instead
        raise AnchorDataError(
            f"could not load GoEmotions from the Hub ({hub_dataset!r}, split {name!r}): {type(err).__name__}: "
            f"{err}. Offline, pass `data_dir` (`--data-dir`), a folder holding train.tsv, dev.tsv, test.tsv, "
            "e.g. ../shared/datasets/goemotions") from err
    return [Comment(r["text"], tuple(int(x) for x in r["labels"]), str(r["id"])) for r in ds]


def load_goemotions(data_dir: str | None = None, splits: Iterable[str] = SPLITS) -> dict[str, list[Comment]]:
    """split -> comments, read from `data_dir` or, when it is None, from the Hub."""
    return {s: read_split(data_dir, s) if data_dir is not None else read_hub_split(s) for s in splits}


# ---------------------------------------------------------------------- labels
def exact_labels(comments: Sequence[Comment], concept: EmotionConcept) -> list[int]:
    """1 where a comment carries the concept, else 0 (the ground truth for evaluation)."""
    return [int(concept.holds(c)) for c in comments]


def label_probabilities(exact: Sequence[int], label_rate: float, scheme: LabelScheme = "visit",
                        seed: int = 0) -> list[float]:
    """Per-comment label probability at `label_rate` of the concept's comments (docs/method.md §3).

    - `visit`: every concept comment gets `p = label_rate`; the collator draws a label per
      visit, so about `label_rate` of them are labelled each epoch, different ones each time.
    - `subset`: a fixed, seeded `label_rate` share of the concept comments gets `p = 1`, the
      rest 0: the same few comments are the only labelled ones (a fixed annotation budget).
    Non-concept comments always get 0: labels are sparse, but not wrong.
    """
    if isinstance(label_rate, bool) or not isinstance(label_rate, (int, float)) or not 0 < label_rate <= 1:
        raise AnchorDataError(f"`label_rate` must be in (0, 1], got {label_rate!r}")
    if scheme == "visit":
        return [float(label_rate) if e else 0.0 for e in exact]
    if scheme == "subset":
        positives = [i for i, e in enumerate(exact) if e]
        chosen = set(random.Random(seed).sample(positives, round(label_rate * len(positives))))
        return [1.0 if i in chosen else 0.0 for i in range(len(exact))]
    raise AnchorDataError(f"`label_scheme` must be 'visit' or 'subset', got {scheme!r}")


def word_token_labels(text: str, offsets: Sequence[tuple[int, int]], words: Iterable[str],
                      probability: float) -> list[float]:
    """Token-level label probabilities: `probability` on tokens inside a listed word, else 0.

    Words match whole words, case-insensitively; `offsets` are each token's character span
    in `text` (a fast tokenizer's `return_offsets_mapping`). Tokens with an empty span
    (specials) are never labelled.
    """
    wanted = {w.lower() for w in words}
    spans = [m.span() for m in re.finditer(r"[\w']+", text) if m.group().lower() in wanted]
    return [probability if e > s and any(s < b and a < e for a, b in spans) else 0.0 for s, e in offsets]


# ---------------------------------------------------------------------- datasets
TEXT_SPAN = "text_span"  # span column: the comment's own tokens, without the appended end-of-text token


def encode_comments(tokenizer: Any, texts: Sequence[str], max_length: int, add_eos: bool = True) -> list[list[int]]:
    """Token ids of each comment as models see it: no special tokens, cut to `max_length` with the end-of-text
    token appended (so training, evaluation and attacks all tokenize alike)."""
    eos = tokenizer.eos_token_id if add_eos else None
    if add_eos and eos is None:
        raise AnchorDataError("the tokenizer has no `eos_token_id`; set one or pass add_eos=False")
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length - add_eos, add_special_tokens=False)
    return [list(x) + ([eos] if add_eos else []) for x in encoded["input_ids"]]


def build_dataset(comments: Sequence[Comment], tokenizer: Any, concepts: Sequence[EmotionConcept],
                  label_rate: float, max_length: int = 64, scheme: LabelScheme = "visit", seed: int = 0,
                  word_lists: Mapping[str, Sequence[str]] | None = None, add_eos: bool = True,
                  replay: int = 0, extra: Mapping[str, Sequence[Any]] | None = None) -> Any:
    """A `datasets.Dataset` ready for `AnchorDataCollator`: tokens, label probabilities, exact labels.

    Columns: `input_ids`, `attention_mask`, `text_span` (a boolean per token: True on the
    comment's own tokens, False on the end-of-text token: a `span_column` that keeps a pooled
    pull off it; booleans, since a pair `[0, 1]` on a 2-token comment would read as a mask too),
    per concept `<column>` (a float per comment, or
    a list per token for concepts in `word_lists`: the comment's label probability on the
    tokens of listed words, only in concept comments) and `exact_<column>` (0/1), plus
    `text`. `AnchorTrainer` drops `exact_*` and `text` (`remove_unused_columns`); keep that on.

    Args:
        comments: e.g. `load_goemotions(...)["train"]`.
        tokenizer: a fast tokenizer (offsets are needed for word lists).
        concepts: from `resolve_concepts`.
        label_rate, scheme, seed: see `label_probabilities` (seeded per concept).
        max_length: truncation length in tokens (with the end-of-text token).
        word_lists: concept name or column -> words whose tokens carry token-level labels.
        add_eos: end each comment with `tokenizer.eos_token_id`, so a model learns where comments end.
        replay: append every comment with a label probability > 0 this many extra times. With the
            `subset` scheme this replays the few labelled comments, as many epochs would, within a
            short run; the label rate (share of the concept's comments ever labelled) is unchanged.
        extra: more columns, one value per comment (e.g. a destination's label probabilities); they
            follow the replayed rows but do not choose them.
    """
    import datasets

    if not comments:
        raise AnchorDataError("`comments` is empty; nothing to build a dataset from")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise AnchorDataError(f"`max_length` must be an int >= 2, got {max_length!r}")
    word_lists = dict(word_lists or {})
    by_column = {c.column: c for c in concepts}
    lists = {}
    for key, words in word_lists.items():
        column = key.replace(":", "_")
        if column not in by_column:
            raise AnchorDataError(f"`word_lists` names {key!r}, which is not one of the concepts {list(by_column)}")
        if isinstance(words, str) or not words:
            raise AnchorDataError(f"`word_lists[{key!r}]` must be a non-empty list of words, got {words!r}")
        lists[column] = list(words)
    texts = [c.text for c in comments]
    ids = encode_comments(tokenizer, texts, max_length, add_eos)
    offsets = tokenizer(texts, truncation=True, max_length=max_length - add_eos, add_special_tokens=False,
                        return_offsets_mapping=True)["offset_mapping"] if lists else None
    if any(len(x) < 2 for x in ids):
        raise AnchorDataError("some comments tokenize to fewer than 2 tokens; a causal LM has nothing to predict")
    columns: dict[str, list[Any]] = {"text": texts, "input_ids": ids, "attention_mask": [[1] * len(x) for x in ids],
                                     TEXT_SPAN: [[True] * (len(x) - add_eos) + [False] * add_eos for x in ids]}
    for j, concept in enumerate(concepts):
        exact = exact_labels(comments, concept)
        probs = label_probabilities(exact, label_rate, scheme, seed + 1009 * j)
        columns[concept.exact_column] = exact
        if concept.column in lists:
            rows = []
            for text, p, spans, x in zip(texts, probs, offsets, ids):
                token = word_token_labels(text, spans, lists[concept.column], p) if p > 0 else [0.0] * len(spans)
                rows.append(token + [0.0] * (len(x) - len(token)))  # the end-of-text token is never labelled
            columns[concept.column] = rows
        else:
            columns[concept.column] = probs
    for name, values in (extra or {}).items():
        if name in columns or len(values) != len(texts):
            raise AnchorDataError(f"`extra` column {name!r} must be new and hold one value per comment ({len(texts)}), "
                                  f"got {len(values)} values{' for an existing column' if name in columns else ''}")
        columns[name] = list(values)
    if isinstance(replay, bool) or not isinstance(replay, int) or replay < 0:
        raise AnchorDataError(f"`replay` must be an int >= 0, got {replay!r}")
    if replay:
        labelled = [i for i in range(len(texts)) if any(has_label(columns[c.column][i]) for c in concepts)]
        order = list(range(len(texts))) + labelled * replay
        columns = {k: [v[i] for i in order] for k, v in columns.items()}
    return datasets.Dataset.from_dict(columns)


def has_label(value: float | list[float]) -> bool:
    """Whether a label-probability value (per comment, or per token) can ever label anything."""
    return any(p > 0 for p in value) if isinstance(value, list) else value > 0


def without_concepts(comments: Sequence[Comment], concepts: Sequence[EmotionConcept]) -> list[Comment]:
    """The comments carrying none of the concepts: training data of a model that never saw them."""
    return [c for c in comments if not any(k.holds(c) for k in concepts)]


def training_comments(comments: Sequence[Comment], concepts: Sequence[EmotionConcept], limit: int | None = None,
                      exclude: bool = False) -> list[Comment]:
    """The comments a model trains on: a fixed random subset of `limit` (the same for every model of a run),
    minus the concepts' comments when `exclude` (the never-saw-it model)."""
    comments = list(comments)
    if limit is not None and limit < len(comments):
        comments = random.Random(0).sample(comments, limit)
    return without_concepts(comments, concepts) if exclude else comments
