"""Tiny GGUF checkpoints written in the test, the way llama.cpp's converter writes a Llama.

The tensor names, the rotary permutation of q/k and the byte-level BPE vocabulary follow
llama.cpp's `convert_hf_to_gguf.py`, so transformers reads the file back exactly as it reads
a real one (the packaged SmolLM2 file has the same layout, only 4-bit and larger).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

HEADS, KV_HEADS, WIDTH, LAYERS = 4, 2, 16, 2
BLOCK_TENSORS = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
TOP_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}


def byte_vocabulary() -> tuple[list[str], list[str]]:
    """GPT-2 byte-level tokens (256 bytes, two merges, an end token) and the merges."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return [*bytes_to_unicode().values(), "Ġt", "he", "<|endoftext|>"], ["Ġ t", "h e"]


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """The HF model a tiny GGUF file is written from, in eval mode."""
    tokens, _ = byte_vocabulary()
    torch.manual_seed(seed)
    end = len(tokens) - 1
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokens), hidden_size=WIDTH, intermediate_size=2 * WIDTH,
                                        num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                        num_key_value_heads=KV_HEADS, max_position_embeddings=64,
                                        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                                        bos_token_id=end, eos_token_id=end)).eval()


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """HF's rotary layout of q/k rows -> GGML's (llama.cpp's `permute`; transformers undoes it on load)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path: Path, model: LlamaForCausalLM) -> Path:
    """Write `model` (from `tiny_llama`) as a float32 GGUF file at `path`."""
    import gguf

    tokens, merges = byte_vocabulary()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(64)
    writer.add_embedding_length(WIDTH)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(2 * WIDTH)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - 1) + [3])  # 1 normal, 3 control
    writer.add_token_merges(merges)
    writer.add_bos_token_id(len(tokens) - 1)
    writer.add_eos_token_id(len(tokens) - 1)
    for name, tensor in model.state_dict().items():
        w = tensor.detach().float().numpy()
        if name in TOP_TENSORS:
            writer.add_tensor(TOP_TENSORS[name], w)
            continue
        _, _, layer, *rest = name.split(".")  # model.layers.{i}.{sub}.weight
        sub = ".".join(rest[:-1])
        if sub in ("self_attn.q_proj", "self_attn.k_proj"):
            w = _permute(w, HEADS if sub == "self_attn.q_proj" else KV_HEADS)
        writer.add_tensor(f"blk.{layer}.{BLOCK_TENSORS[sub]}.weight", np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
