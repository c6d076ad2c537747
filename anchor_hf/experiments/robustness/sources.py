"""Attack data for the two validated settings: colour-name LMs and GoEmotions LMs.

Colour names (`colour_data`): the removal is judged on the memorized training lines of the
target colour (what the anchored model was trained to know and the never-saw model never
saw); the attacker fine-tunes on *other* names of that colour — names from the 31,914-name
list that are not in the training corpus and use only words the tokenizer knows (with no
list given, the held-out split's target names). Only the hex answer is scored, and probes
read the prompt positions only (the answer's digits would give the colour away).

GoEmotions (`goemotions_data`): judged on held-out test comments with the concept; the
attacker fine-tunes on training comments with it; every token is scored and probed.
"""

from __future__ import annotations

import os
import random
from typing import Any

import torch

from anchor_hf.errors import AnchorDataError
from anchor_hf.io import load_tokenizer
from .examples import Example, RemovalData


def _split_probe(examples: list[Example], labels: torch.Tensor, seed: int
                 ) -> tuple[list[Example], torch.Tensor, list[Example], torch.Tensor]:
    """Half of each class to fit, half to test, seeded."""
    rng = random.Random(seed)
    fit, test = [], []
    for cls in (True, False):
        idx = [i for i in range(len(examples)) if bool(labels[i]) == cls]
        rng.shuffle(idx)
        fit += idx[: len(idx) // 2]
        test += idx[len(idx) // 2:]
    return ([examples[i] for i in fit], labels[fit].long(), [examples[i] for i in test], labels[test].long())


# ---------------------------------------------------------------------- colour names
def colour_spec(model_dir: str, concept: str) -> Any:
    """The corpus spec saved beside the model, else the shipped names recipe's for `concept`."""
    from anchor_hf.experiments.colour.lm.pipeline import ColourRun
    from anchor_hf.experiments.colour.spec import load_spec

    from anchor_hf.experiments.colour.target import parse_target

    spec = load_spec(model_dir)
    if spec is None:
        spec = ColourRun(concept=concept, corpus="xkcd").spec()
    elif parse_target(concept).name != spec.target.name:
        raise AnchorDataError(f"`--concept` = {concept!r} ({parse_target(concept).name}), but {model_dir} was trained "
                              f"with the target colour {spec.concept!r} ({spec.target.name})")
    if spec.corpus == "mixing":
        raise AnchorDataError("robustness on colours supports the names corpora (xkcd, colornames), not mixing")
    return spec


def colour_data(model_dir: str, concept: str, pool_dir: str | None = None, n_other: int = 300,
                seed: int = 0) -> RemovalData:
    """Attack data for a colour-name LM in `model_dir` (its tokenizer and saved corpus spec).

    Args:
        concept: the target colour, as trained (`red`, a hue, an XKCD name or `#rrggbb`).
        pool_dir: folder of `colornames.csv`, whose unseen target-colour names are the relearning pool.
        n_other: non-target training lines sampled for the fingerprint and collateral.
    """
    from anchor_hf.experiments.colour.corpus import encode, load_names
    from anchor_hf.experiments.colour.target import exact_labels, similarity

    spec = colour_spec(model_dir, concept)
    tokenizer = load_tokenizer(model_dir)  # the one the model was trained with
    colon, unk = tokenizer.convert_tokens_to_ids(":"), tokenizer.unk_token_id

    def example(line: str) -> Example:
        ids = encode(tokenizer, line)
        cut = max(i for i, t in enumerate(ids) if t == colon) + 1  # the answer follows the last `:`
        return Example(tuple(ids), score_from=cut, pool_until=cut)

    def is_target(names: list[Any]) -> list[bool]:
        if not names:
            return []
        return exact_labels(similarity(torch.tensor([c.rgb for c in names]), spec.target)).tolist()

    train, heldout = spec.names()
    labels = torch.tensor(is_target(train))
    lines = [example(c.line) for c in train]
    concept_eval = [e for e, t in zip(lines, labels.tolist()) if t]
    others = [e for e, t in zip(lines, labels.tolist()) if not t]
    rng = random.Random(seed)
    other_eval = rng.sample(others, min(n_other, len(others)))
    known = {c.name for c in train + heldout}
    if pool_dir is not None:
        candidates = [c for c in load_names("colornames", pool_dir) if c.name not in known]
        source = f"names from {os.path.join(pool_dir, 'colornames.csv')} not in the corpus, in-vocabulary"
    else:
        candidates = heldout
        source = "the corpus's held-out names (no colornames list given)"
    pool = [example(c.line) for c, t in zip(candidates, is_target(candidates)) if t]
    answers = {e.ids[e.score_from:] for e in concept_eval}
    pool = [e for e in pool if unk not in e.ids and e.ids[e.score_from:] not in answers]  # no answer given away
    rng.shuffle(pool)
    fit, fit_y, test, test_y = _split_probe(lines, labels, seed)
    target = spec.target.name
    notes = {"concept_eval": f"{len(concept_eval)} memorized training lines of the target colour ({target}, "
                             "similarity ≥ 0.5); only the hex answer is scored",
             "other_eval": f"{len(other_eval)} other training lines (random)",
             "relearn_pool": f"{len(pool)} lines of the target colour: {source}, whose hex answer is no "
                             "evaluation line's",
             "probes": f"all {len(lines)} training lines, half of each class to fit, half to test; states "
                       "pooled over the prompt (name and `:`)"}
    return RemovalData(concept=target, concept_eval=concept_eval, other_eval=other_eval, relearn_pool=pool,
                       probe_fit=fit, fit_labels=fit_y, probe_test=test, test_labels=test_y,
                       pad_id=tokenizer.pad_token_id, notes=notes)


# ---------------------------------------------------------------------- GoEmotions
def goemotions_data(model_dir: str, concept: str, data_dir: str | None, max_length: int = 32,
                    n_concept: int = 250, n_other: int = 500, n_pool: int = 200, n_fit: int = 1500,
                    seed: int = 0) -> RemovalData:
    """Attack data for a GoEmotions LM in `model_dir` (its tokenizer), tokenized as in training.

    Args:
        concept: a GoEmotions label or group (`anger`, `ekman:anger`).
        data_dir: the GoEmotions folder (None: the Hub, online only).
        max_length: training sequence length (comments are cut to it, `<eos>` included).
        n_concept, n_other: held-out test comments with / without the concept.
        n_pool: training comments with the concept the attacker may fine-tune on.
        n_fit: training comments probes are fitted on (a third with the concept).
    """
    from anchor_hf.experiments.goemotions.data import encode_comments, load_goemotions, resolve_concept

    emotion = resolve_concept(concept)
    splits = load_goemotions(data_dir)
    tokenizer = load_tokenizer(model_dir)  # the one the model was trained with
    def encode(comments: list[Any]) -> list[Example]:
        return [Example(tuple(ids)) for ids in encode_comments(tokenizer, [c.text for c in comments], max_length)
                if len(ids) >= 2]  # an empty comment has nothing to predict but its end

    rng = random.Random(seed)
    test, train = splits["test"], splits["train"]
    yes = [c for c in test if emotion.holds(c)]
    no = [c for c in test if not emotion.holds(c)]
    concept_eval = encode(rng.sample(yes, min(len(yes), n_concept)))
    other_eval = encode(rng.sample(no, min(len(no), n_other)))
    train_yes = [c for c in train if emotion.holds(c)]
    train_no = [c for c in train if not emotion.holds(c)]
    pool = encode(rng.sample(train_yes, min(len(train_yes), n_pool)))
    n_yes = min(len(train_yes), n_fit // 3)
    fit_yes = encode(rng.sample(train_yes, n_yes))
    fit_no = encode(rng.sample(train_no, min(len(train_no), n_fit - n_yes)))
    eval_ids = {e.ids for e in concept_eval}
    pool = [e for e in pool if e.ids not in eval_ids]  # a test comment can repeat a training one verbatim
    notes = {"concept_eval": f"{len(concept_eval)} test comments with `{emotion.name}`",
             "other_eval": f"{len(other_eval)} test comments without it",
             "relearn_pool": f"{len(pool)} training comments with it",
             "probes": f"fit on {len(fit_yes) + len(fit_no)} training comments ({len(fit_yes)} with it), scored on "
                       "the held-out comments above; states pooled over every token"}
    return RemovalData(concept=emotion.column, concept_eval=concept_eval, other_eval=other_eval, relearn_pool=pool,
                       probe_fit=fit_yes + fit_no, fit_labels=torch.tensor([1] * len(fit_yes) + [0] * len(fit_no)),
                       probe_test=concept_eval + other_eval,
                       test_labels=torch.tensor([1] * len(concept_eval) + [0] * len(other_eval)),
                       pad_id=tokenizer.pad_token_id, notes=notes)
