"""What one anchoring example must hold, checked the same way in a batch and in a whole dataset.

`AnchorDataCollator` reads each example of a batch with these functions, and the trainer runs
them over every row of its datasets when it is built (`check_rows`), so a bad row stops the
run before the first step and the error names the dataset row, not its place in a batch.
Pure Python over columns read straight from Arrow (the row-by-row `datasets` reader is ~20×
slower), so the checks are the collator's own.

An example holds `input_ids` (non-negative ints), optionally `attention_mask` (0/1 per token)
and `labels` (one per token), and per concept a label column (a probability, or one per token)
and optionally a span column (0/1 per token, or `[start, end)`).
"""

from __future__ import annotations

import warnings
from typing import Any

from .config import AnchorConfig
from .errors import AnchorDataError


def _plain(value: Any) -> Any:
    """A tensor or array as Python values (lists or a number)."""
    return value.tolist() if hasattr(value, "tolist") else value


def _is_int(x: Any) -> bool:
    return type(x) is int  # noqa: E721  (not bool, which `isinstance(x, int)` lets through)


def tokenize_hint(example: dict[str, Any] | None = None) -> str:
    """How to turn a text dataset into the token ids the collator pads, naming its text column."""
    text = next((k for k, v in (example or {}).items() if isinstance(v, str)), "text")
    return (f"AnchorDataCollator pads token ids: tokenize the text first, keeping the concept columns, e.g. "
            f"`dataset = dataset.map(lambda batch: tokenizer(batch[{text!r}]), batched=True)`")


def _is_01(values: Any) -> bool:
    """Whether every value is 0 or 1 (bools included)."""
    try:
        return set(values) <= {0, 1}
    except TypeError:  # an unhashable value (a nested list) is not 0 or 1
        return False


def read_ids(feature: dict[str, Any], where: str) -> list[int]:
    """`input_ids` as a list of non-negative ints."""
    if "input_ids" not in feature:
        raise AnchorDataError(f"{where} has no `input_ids`; columns present: {sorted(feature)}. "
                              + tokenize_hint(feature))
    ids = _plain(feature["input_ids"])
    if isinstance(ids, (list, tuple)) and not ids:
        raise AnchorDataError(f"{where} has empty `input_ids`")
    if not isinstance(ids, (list, tuple)) or not all(type(x) is int for x in ids) or min(ids) < 0:  # noqa: E721
        raise AnchorDataError(f"{where}: `input_ids` must be a list of token ids (ints >= 0), got {ids!r:.80}")
    return list(ids)


def read_mask(feature: dict[str, Any], where: str, n: int) -> list[int]:
    """`attention_mask` as 0/1 ints (all 1 when absent)."""
    mask = _plain(feature.get("attention_mask"))
    if mask is None:
        return [1] * n
    if not isinstance(mask, (list, tuple)) or len(mask) != n:
        size = len(mask) if isinstance(mask, (list, tuple)) else repr(mask)
        raise AnchorDataError(f"{where}: `attention_mask` has length {size}, but `input_ids` has {n}")
    if not _is_01(mask):
        raise AnchorDataError(f"{where}: `attention_mask` must hold 0 or 1 per token, got {list(mask)!r:.80}")
    return [int(x) for x in mask]


def read_labels(feature: dict[str, Any], where: str, n: int) -> list[int] | None:
    """`labels` (one int per token), or None when absent."""
    labels = _plain(feature.get("labels"))
    if labels is None:
        return None
    if not isinstance(labels, (list, tuple)) or len(labels) != n or not all(_is_int(x) for x in labels):
        size = len(labels) if isinstance(labels, (list, tuple)) else labels
        raise AnchorDataError(f"{where}: `labels` has length {size}, but `input_ids` has {n} (one int per token)")
    return list(labels)


def read_value(feature: dict[str, Any], where: str, column: str, n: int) -> float | list[float]:
    """A concept's label: a probability for the example, or one per token."""
    if column not in feature:
        raise AnchorDataError(
            f"{where} has no concept label column {column!r}; columns present: {sorted(feature)}. "
            "Add it (a probability per example or per token), or set `ConceptAnchor.label_column`.")
    value = _plain(feature[column])
    if isinstance(value, bool) or (isinstance(value, (list, tuple)) and any(isinstance(x, bool) for x in value)):
        raise AnchorDataError(f"{where}: `{column}` holds booleans; a label column holds probabilities in [0, 1] "
                              "(1.0 / 0.0 for exact labels), per example or per token")
    if isinstance(value, (int, float)):
        p = float(value)
        if not 0.0 <= p <= 1.0:
            raise AnchorDataError(f"{where}: `{column}` = {p} is not a probability (allowed 0..1)")
        return p
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, (int, float)) for x in value):
        raise AnchorDataError(f"{where}: `{column}` must be a float or a list of floats, got {type(value).__name__}")
    if len(value) != n:
        raise AnchorDataError(f"{where}: token-level `{column}` has length {len(value)}, but `input_ids` has {n}; "
                              "token labels must align with input_ids")
    probs = [float(x) for x in value]
    if not all(0.0 <= p <= 1.0 for p in probs):  # NaN fails both comparisons
        raise AnchorDataError(f"{where}: `{column}` holds values outside [0, 1] "
                              f"(min {min(probs):.3g}, max {max(probs):.3g})")
    return probs


def read_span(feature: dict[str, Any], where: str, column: str | None, n: int) -> list[bool]:
    """The tokens an example-level label pools over: a 0/1 (or bool) per token, or `[start, end)`.

    A pair on a 2-token example reads as a span when a value is not 0/1 (`[0, 2)`), and as a
    mask when it is not a valid span (`[1, 1]`, `[1, 0]`); `[0, 1]` is both, so it is refused:
    write booleans (`[False, True]`) for the mask, or `[True, False]` for the span `[0, 1)`.
    """
    if column is None:
        return [True] * n
    if column not in feature:
        raise AnchorDataError(f"{where} has no span column {column!r}; columns present: {sorted(feature)}")
    value = _plain(feature[column])
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, (int, float)) for x in value):
        raise AnchorDataError(f"{where}: span `{column}` must be 0/1 per token or [start, end), got {value!r:.80}")
    is_mask = len(value) == n and _is_01(value)
    is_pair = len(value) == 2 and all(_is_int(x) for x in value) and 0 <= value[0] < value[1] <= n
    if is_mask and is_pair and not all(isinstance(x, bool) for x in value):
        raise AnchorDataError(f"{where}: span `{column}` = {list(value)} on a 2-token example is both a 0/1 mask "
                              "and the span [0, 1); write booleans: [False, True] for the mask, [True, False] for "
                              "the span")
    if is_mask:
        return [bool(x) for x in value]
    if is_pair:
        return [value[0] <= t < value[1] for t in range(n)]
    if len(value) == 2 and n != 2:
        raise AnchorDataError(f"{where}: span `{column}` = {list(value)} is not inside 0..{n} or is empty "
                              "(give [start, end) with start < end)")
    if len(value) != n:
        raise AnchorDataError(f"{where}: span `{column}` has length {len(value)}, but `input_ids` has {n}; give 0/1 "
                              "per token or [start, end)")
    raise AnchorDataError(f"{where}: span `{column}` must hold 0 or 1 per token, got {list(value)!r:.80}")


def _features(rows: Any, wanted: list[str]) -> Any:
    """Each row as a dict of the `wanted` columns it has; a `datasets.Dataset` is read column by column."""
    if isinstance(rows, (list, tuple)):
        return ({k: row[k] for k in wanted if k in row} if isinstance(row, dict) else row for row in rows)
    present = [c for c in wanted if c in rows.column_names]
    table = rows.select_columns(present).with_format("arrow")[:]  # honours a select/shuffle index mapping
    return (dict(zip(present, values)) for values in zip(*(table.column(c).to_pylist() for c in present)))


def check_rows(rows: Any, config: AnchorConfig, name: str) -> list[float]:
    """Read every row of `rows` (a `datasets.Dataset` or a list of dicts) as the collator would.

    Returns each concept's label mass, counting only labels that reach a live token (what
    the attract term can use), so 0 means the concept's pull never acts. Raises
    `AnchorDataError` naming the first bad row.
    """
    if len(rows) == 0:
        raise AnchorDataError(f"`{name}` has 0 rows; there is nothing to train on")
    concepts = config.concepts
    wanted = list(dict.fromkeys(["input_ids", "attention_mask", "labels", *[c.column for c in concepts],
                                 *[c.span_column for c in concepts if c.span_column]]))
    mass = [0.0] * len(concepts)
    for i, feature in enumerate(_features(rows, wanted)):
        where = f"`{name}` row {i}"
        if not isinstance(feature, dict):
            raise AnchorDataError(f"{where} is a {type(feature).__name__}; each example is a mapping of columns")
        n = len(read_ids(feature, where))
        live = read_mask(feature, where, n)
        read_labels(feature, where, n)
        for j, concept in enumerate(concepts):
            value = read_value(feature, where, concept.column, n)
            if isinstance(value, float):
                span = read_span(feature, where, concept.span_column, n)
                if value > 0 and any(s and m for s, m in zip(span, live)):
                    mass[j] += value
            else:
                mass[j] += sum(p for p, m in zip(value, live) if m)
    return mass


def check_dataset(dataset: Any, collator: Any, name: str, *, training: bool) -> None:
    """Check a trainer's dataset before any work: its columns, then every row if the collator can.

    A `datasets.Dataset` or a list of dicts is checked row by row (`collator.check_rows`); an
    `IterableDataset` cannot be, and is checked when collated. For the training set, a concept
    whose pull is on but that has no label at all gets a warning: only its repel would train.
    """
    columns = getattr(dataset, "column_names", None)
    if isinstance(columns, list):
        if hasattr(collator, "check_rows") and "input_ids" not in columns:  # token examples, given as text
            raise AnchorDataError(f"`{name}` has no `input_ids` column; columns present: {columns}. "
                                  + tokenize_hint(dataset[0] if len(dataset) else {}))
        missing = collator.missing_columns(columns)
        if missing:
            raise AnchorDataError(f"`{name}` has no column {missing}; columns present: {columns}. Each concept "
                                  "needs a label-probability column (ConceptAnchor.label_column)")
    readable = isinstance(dataset, (list, tuple)) or (hasattr(dataset, "select_columns")
                                                      and hasattr(dataset, "__len__"))
    if not readable or not hasattr(collator, "check_rows"):  # an IterableDataset; another kind of example
        return
    mass = collator.check_rows(dataset, name)
    for concept, labelled in zip(collator.config.concepts, mass):
        if training and labelled == 0 and (concept.attract > 0 or concept.exclusive > 0):
            warnings.warn(f"concept {concept.name!r} has no label in `{name}` (column {concept.column!r}): its "
                          "attract term never acts and only its repel trains. Give some examples a label "
                          "probability > 0, or set its attract to 0 if this is intended", stacklevel=3)
