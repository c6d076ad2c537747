"""Redirect on GoEmotions: do a model's continuations of concept prompts move to the destination? (docs/method.md §10)

Prompts are the first `k` tokens of held-out (dev and test) comments: E prompts carry the
concept E and not the destination F, F prompts the reverse. Each model writes one greedy
continuation per prompt (stopping at the end-of-text token), unedited and under each
intervention, and two bag-of-words classifiers trained on the training split (E vs not E,
F vs not F) score every continuation. With "before" the unedited continuations of E
prompts, "under" those written under the intervention and "dest" the same model's
unedited continuations of F prompts (means over prompts):

    toward = (P_F(under) − P_F(before)) / (P_F(dest) − P_F(before))
    away   = (P_E(before) − P_E(under)) / (P_E(before) − P_E(dest))

so 1 means the edited continuations read like the destination's and 0 that nothing moved.
A denominator below `MIN_DENOMINATOR` means the model itself does not write E and F
continuations differently enough to measure a move (reported as not measurable). Fluency
is the perplexity of the edited continuations under the control model ÷ that of the
unedited ones (the edit should not buy its move with garbage).

The interventions compared (`redirect_arms`) are measured against their own model's
unedited continuations: arms on the anchored model against the anchored model's, LEACE
and post-hoc suppression on the control against the control's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from anchor_hf.errors import AnchorDataError
from anchor_hf.probes import auroc
from .builder import GoEmotionsEvaluation
from .classifier import BagOfWords
from .data import Comment, encode_comments
from .destination import DestinationPlan
from .redirect_reading import held_out_comments

MIN_DENOMINATOR = 0.05  # a smaller unedited E-vs-F difference in classifier probability is not measurable
RECOMMENDED_PROMPTS = 200  # fewer held-out prompts on a side give wide intervals (logged, and said in the report)
Context = Callable[[], AbstractContextManager[Any]]


def select_prompts(tokenizer: Any, comments: Sequence[Comment], k: int, cap: int, seed: int) -> torch.Tensor:
    """`[P, k]` first `k` tokens of up to `cap` comments that are longer than `k` tokens, in a seeded random order."""
    ids = [tokenizer(c.text, add_special_tokens=False)["input_ids"] for c in comments]
    long_enough = [x[:k] for x in ids if len(x) > k]
    random.Random(seed).shuffle(long_enough)
    return torch.tensor(long_enough[:cap], dtype=torch.long).reshape(-1, k)


@dataclass
class RedirectData:
    """The held-out prompts of both sides and the two classifiers every continuation is scored by."""

    plan: DestinationPlan
    concept_prompts: torch.Tensor  # [P, k] E-and-not-F held-out comments
    destination_prompts: torch.Tensor  # [Q, k] F-and-not-E held-out comments
    concept_classifier: BagOfWords
    destination_classifier: BagOfWords
    classifier_aurocs: dict[str, float]  # on the test split
    settings: GoEmotionsEvaluation
    tokenizer: Any
    concept_comments: list[list[int]]  # token ids of held-out E-and-not-F comments, as in training (`redirect_reading`)
    destination_comments: list[list[int]]  # ... and of F-and-not-E comments

    @classmethod
    def build(cls, splits: dict[str, list[Comment]], plan: DestinationPlan, settings: GoEmotionsEvaluation,
              max_length: int, tokenizer: Any, log: Any = print) -> RedirectData:
        """Prompts and comments from the dev and test splits, classifiers from the training split.

        Raises when a side has no prompt; logs when it has fewer than `RECOMMENDED_PROMPTS`.
        """
        held_out = splits["dev"] + splits["test"]
        k, cap = settings.redirect_prompt_tokens, settings.redirect_prompts
        sides = {"concept": (plan.concept.name, [c for c in held_out if plan.holds_concept(c)]),
                 "destination": (plan.destination.name, [c for c in held_out if plan.holds_destination(c)])}
        prompts = {}
        for seed, (side, (name, comments)) in enumerate(sides.items()):
            prompts[side] = select_prompts(tokenizer, comments, k, cap, seed)
            if len(prompts[side]) == 0:
                raise AnchorDataError(f"no held-out {side} prompt: none of the {len(comments)} dev/test comments with "
                                      f"{name!r} (and not the other side) is longer than {k} tokens; lower "
                                      "`redirect_prompt_tokens` or choose another emotion")
            if len(prompts[side]) < min(cap, RECOMMENDED_PROMPTS):
                log(f"[goemotions] only {len(prompts[side])} held-out {side} prompts ({name!r}, longer than {k} "
                    f"tokens); intervals will be wide (recommended: {RECOMMENDED_PROMPTS})")
        train, test = splits["train"], splits["test"]
        texts = [c.text for c in train]
        classifiers = {side: BagOfWords.fit(texts, [int(concept.holds(c)) for c in train])
                       for side, concept in (("concept", plan.concept), ("destination", plan.destination))}
        test_texts = [c.text for c in test]
        aurocs = {side: auroc(clf.score(test_texts), torch.tensor([holds(c) for c in test]))
                  for (side, clf), holds in zip(classifiers.items(), (plan.concept.holds, plan.destination.holds))}
        whole = [encode_comments(tokenizer, [c.text for c in held_out_comments(held_out, holds, cap, seed)],
                                 max_length) for seed, holds in enumerate((plan.holds_concept,
                                                                                  plan.holds_destination))]
        return cls(plan, prompts["concept"], prompts["destination"], classifiers["concept"],
                   classifiers["destination"], aurocs, settings, tokenizer, *whole)


@dataclass
class Continuations:
    """Greedy continuations of a prompt set and their scores.

    Attributes:
        tokens: per prompt, the generated ids up to and including the first end-of-text token.
        texts: the decoded continuations (end-of-text left out).
        p_concept, p_destination: `[P]` the two classifiers' probabilities.
        nll, count: `[P]` summed NLL of the continuation tokens under the control model, and their number.
    """

    tokens: list[list[int]]
    texts: list[str]
    p_concept: torch.Tensor
    p_destination: torch.Tensor
    nll: torch.Tensor
    count: torch.Tensor

    def to_json(self, examples: int = 0) -> dict[str, Any]:
        return {"p_concept": self.p_concept.tolist(), "p_destination": self.p_destination.tolist(),
                "nll": self.nll.tolist(), "count": self.count.tolist(), "examples": self.texts[:examples]}


def generate(model: nn.Module, prompts: torch.Tensor, data: RedirectData, context: Context) -> list[list[int]]:
    """Greedy continuations of `prompts` `[P, k]` under `context()`, each cut after its first end-of-text token."""
    eos, pad = data.tokenizer.eos_token_id, data.tokenizer.pad_token_id
    out: list[list[int]] = []
    with torch.no_grad(), context():
        for batch in prompts.split(data.settings.eval_batch_size):
            ids = model.generate(input_ids=batch, attention_mask=torch.ones_like(batch), do_sample=False,
                                 max_new_tokens=data.settings.redirect_new_tokens, eos_token_id=eos, pad_token_id=pad)
            for row in ids[:, batch.shape[1]:].tolist():
                out.append(row[:row.index(eos) + 1] if eos in row else row)
    return out


def continuation_nll(scorer: nn.Module, prompts: torch.Tensor, tokens: list[list[int]], pad_id: int,
                     batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`([P], [P])`: summed next-token NLL of each continuation (after its prompt) under `scorer`, and its length."""
    k = prompts.shape[1]
    sums, counts = [], []
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            rows = [prompts[i].tolist() + tokens[i] for i in range(start, min(start + batch_size, len(tokens)))]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            logits = scorer(input_ids=ids, attention_mask=mask).logits.float()  # [B, T, V]
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
            target = torch.arange(1, width).expand(len(rows), -1)  # [B, T-1] position of each predicted token
            scored = (target >= k) & mask[:, 1:].bool()
            sums.append((nll * scored).sum(-1))
            counts.append(scored.sum(-1))
    return torch.cat(sums), torch.cat(counts)


def continue_and_score(model: nn.Module, prompts: torch.Tensor, data: RedirectData, control: nn.Module,
                       context: Context = nullcontext) -> Continuations:
    """Generate under `context`, then score the continuations with both classifiers and the control model."""
    tokens = generate(model, prompts, data, context)
    texts = data.tokenizer.batch_decode([[t for t in x if t != data.tokenizer.eos_token_id] for x in tokens],
                                        skip_special_tokens=True)
    nll, count = continuation_nll(control, prompts, tokens, data.tokenizer.pad_token_id,
                                  data.settings.eval_batch_size)
    return Continuations(tokens, texts, data.concept_classifier.score(texts),
                         data.destination_classifier.score(texts), nll, count)


# ---------------------------------------------------------------------- the measures
Scores = dict[str, torch.Tensor]  # p_concept, p_destination, nll, count: [P] each


def shift_ratios(before: Scores, under: Scores, dest: Scores, i: torch.Tensor | None = None,
                 j: torch.Tensor | None = None) -> dict[str, float]:
    """toward, away and their denominators (module docstring); `i`, `j` pick E and F prompts (a bootstrap draw)."""
    def mean(scores: Scores, key: str, index: torch.Tensor | None) -> float:
        values = scores[key] if index is None else scores[key][index]
        return float(values.mean())

    f_before, f_under, f_dest = (mean(s, "p_destination", x) for s, x in ((before, i), (under, i), (dest, j)))
    e_before, e_under, e_dest = (mean(s, "p_concept", x) for s, x in ((before, i), (under, i), (dest, j)))
    toward_den, away_den = f_dest - f_before, e_before - e_dest
    return {"toward": (f_under - f_before) / toward_den if toward_den != 0 else float("nan"),
            "away": (e_before - e_under) / away_den if away_den != 0 else float("nan"),
            "toward_denominator": toward_den, "away_denominator": away_den}


def fluency_ratio(before: Scores, under: Scores, i: torch.Tensor | None = None) -> float:
    """Perplexity of the edited continuations ÷ that of the unedited ones, both under the control model."""
    def log_ppl(scores: Scores) -> torch.Tensor:
        nll, count = (scores[k] if i is None else scores[k][i] for k in ("nll", "count"))
        return nll.sum() / count.sum().clamp_min(1)

    return float(torch.exp(log_ppl(under) - log_ppl(before)))


def as_scores(entry: dict[str, Any]) -> Scores:
    """A stored `Continuations.to_json()` entry as tensors."""
    return {k: torch.tensor(entry[k], dtype=torch.float64) for k in ("p_concept", "p_destination", "nll", "count")}
