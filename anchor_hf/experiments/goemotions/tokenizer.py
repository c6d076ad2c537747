"""A byte-level BPE tokenizer trained locally on the GoEmotions training text (recipe A).

Nothing can be downloaded here, and a from-scratch model needs no borrowed vocabulary:
a few thousand merges learned from the 43k training comments cover Reddit text well.
The tokenizer is saved under the output folder and reused by every model of a run, so
anchored, control and never-saw-it models share one vocabulary (their losses compare).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

PAD, EOS = "<pad>", "<|endoftext|>"


def train_bpe(texts: Sequence[str], vocab_size: int, save_dir: str | None = None) -> Any:
    """A `PreTrainedTokenizerFast` with `<pad>` (id 0) and `<|endoftext|>` (id 1) learned on `texts`.

    Loaded from `save_dir` when a tokenizer was saved there before, else trained and saved there.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if save_dir is not None and os.path.isfile(os.path.join(save_dir, "tokenizer.json")):
        return PreTrainedTokenizerFast.from_pretrained(save_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=EOS)
    if save_dir is not None:
        fast.save_pretrained(save_dir)
    return fast
