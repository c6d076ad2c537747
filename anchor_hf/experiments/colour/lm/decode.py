"""Read a colour LM's answers: greedy hex digits for a name, the mixed colour word for a pair.

Decoding is greedy and restricted to the answer's alphabet (the 16 hex digits, or the
216 colour words), so every answer parses and errors measure the colour, not the
format. Prompts are grouped by length and run without padding, so no position or
attention mask can differ from training; any intervention hooks on the model apply to
every forward, as they would under `generate()`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..corpus import HEX_DIGITS, ColourName, encode
from ..mixing import grid_words, word_rgb


def _groups(prompts: list[list[int]], batch_size: int) -> list[list[int]]:
    """Indices of `prompts` grouped by length, in chunks of at most `batch_size`."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        by_length[len(p)].append(i)
    return [idx[k:k + batch_size] for _, idx in sorted(by_length.items()) for k in range(0, len(idx), batch_size)]


@torch.no_grad()
def greedy(model: nn.Module, prompts: list[list[int]], allowed: Sequence[int], steps: int,
           batch_size: int = 256) -> torch.Tensor:
    """`steps` greedy tokens after each prompt, chosen among `allowed` ids → `[N, steps]` ids."""
    device = next(model.parameters()).device
    allowed_t = torch.tensor(list(allowed), device=device)
    out = torch.zeros(len(prompts), steps, dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        for idx in _groups(prompts, batch_size):
            ids = torch.tensor([prompts[i] for i in idx], device=device)  # [B, T], all one length
            for s in range(steps):
                logits = model(input_ids=ids).logits[:, -1, allowed_t]  # [B, |allowed|]
                nxt = allowed_t[logits.argmax(-1)]
                out[idx, s] = nxt.cpu()
                ids = torch.cat([ids, nxt.unsqueeze(-1)], dim=-1)
    finally:
        model.train(was_training)
    return out


def hex_ids(tokenizer: Any) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(ch) for ch in HEX_DIGITS]


def predict_rgb(model: nn.Module, tokenizer: Any, names: Sequence[ColourName], batch_size: int = 256) -> torch.Tensor:
    """The colour `[N, 3]` in [0, 1] the model writes after `name: #` for each name."""
    prompts = [encode(tokenizer, c.prompt, eos=False) for c in names]
    ids = hex_ids(tokenizer)
    digits = greedy(model, prompts, ids, 6, batch_size)  # [N, 6] token ids
    value = torch.tensor([[ids.index(int(t)) for t in row] for row in digits], dtype=torch.float32)  # [N, 6] 0..15
    return (value[:, 0::2] * 16 + value[:, 1::2]) / 255.0


def predict_mix(model: nn.Module, tokenizer: Any, pairs: Sequence[tuple[str, str, str]],
                batch_size: int = 512) -> list[str]:
    """The colour word the model writes after `a + b =` for each pair."""
    words = grid_words()
    ids = [tokenizer.convert_tokens_to_ids(w) for w in words]
    prompts = [encode(tokenizer, f"{a} + {b} =", eos=False) for a, b, _ in pairs]
    chosen = greedy(model, prompts, ids, 1, batch_size)[:, 0]
    return [words[ids.index(int(t))] for t in chosen]


def mix_rgb(words: Sequence[str]) -> torch.Tensor:
    """RGB `[N, 3]` of colour words."""
    return torch.tensor([word_rgb(w) for w in words], dtype=torch.float32)


def rgb_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-colour mean squared error over the three channels `[N]` (RGB in [0, 1])."""
    return (pred.float() - true.float()).pow(2).mean(-1)
