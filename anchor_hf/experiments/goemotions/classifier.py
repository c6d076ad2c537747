"""A held-out concept classifier: bag-of-words logistic regression trained on the training split.

Steering is judged by what the model *writes*, not by its own states: a classifier that
never saw the model scores each generated continuation for the concept (the
dose–response). Presence of each of the `max_words` most frequent words, a bias, and
balanced classes; fitted full-batch with Adam (EmbeddingBag keeps it sparse), torch only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import torch

WORD = re.compile(r"[a-z']+")


def words(text: str) -> list[str]:
    """Lower-cased words of a text, each once (presence features)."""
    return sorted(set(WORD.findall(text.lower())))


class BagOfWords:
    """`score(texts) -> [N]` probability of the concept; fit with `BagOfWords.fit`."""

    def __init__(self, vocabulary: dict[str, int], weight: torch.Tensor, bias: float) -> None:
        self.vocabulary, self.weight, self.bias = vocabulary, weight, bias

    def _bags(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, offsets = [], []
        for text in texts:
            offsets.append(len(ids))
            ids += [self.vocabulary[w] for w in words(text) if w in self.vocabulary]
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        ids, offsets = self._bags(texts)
        bag = torch.nn.functional.embedding_bag(ids, self.weight.unsqueeze(-1), offsets, mode="sum")  # [N, 1]
        return bag.squeeze(-1) + self.bias

    def score(self, texts: Sequence[str]) -> torch.Tensor:
        """Probability of the concept for each text `[N]`."""
        with torch.no_grad():
            return torch.sigmoid(self.logits(texts))

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[int], max_words: int = 5000, l2: float = 1e-4,
            steps: int = 300, lr: float = 0.05, seed: int = 0) -> BagOfWords:
        """Fit on `texts` with 0/1 `labels`, classes weighted to balance."""
        counts = Counter(w for t in texts for w in words(t))
        vocabulary = {w: i for i, (w, _) in enumerate(counts.most_common(max_words))}
        model = cls(vocabulary, torch.zeros(len(vocabulary)), 0.0)
        ids, offsets = model._bags(texts)
        y = torch.tensor(list(labels), dtype=torch.float32)
        positive = float(y.mean())
        if not 0 < positive < 1:
            raise ValueError("the classifier needs both concept and non-concept texts")
        sample_weight = torch.where(y > 0, 0.5 / positive, 0.5 / (1 - positive))
        torch.manual_seed(seed)
        weight = torch.zeros(len(vocabulary), 1, requires_grad=True)
        bias = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.Adam([weight, bias], lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            logit = torch.nn.functional.embedding_bag(ids, weight, offsets, mode="sum").squeeze(-1) + bias
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none")
                    * sample_weight).mean() + l2 * weight.pow(2).sum()
            loss.backward()
            optimizer.step()
        return cls(vocabulary, weight.detach().squeeze(-1), float(bias.detach()))
