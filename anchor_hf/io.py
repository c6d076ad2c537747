"""Files in and out: atomic writes, and loading a saved model (adapters included).

Atomic: every file is written to a temporary name in its own folder and moved onto its
final name with `os.replace` (atomic on one filesystem), so a reader, or a run resumed
after a crash, never sees half a config, report or figure. The temporary file is removed
if writing fails. Importing this module needs neither torch nor transformers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import AnchorCheckpointError

ADAPTER_CONFIG = "adapter_config.json"  # PEFT's file: the folder holds an adapter, not a full model


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside `path`; when the block succeeds, move it onto `path`.

    The file gets the permissions a plain `open(path, "w")` would (`mkstemp` makes it 0600),
    and the temporary file is removed if the block raises.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> str:
    """Write `text` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return os.fspath(path)


def write_json(path: str | os.PathLike, value: Any, indent: int | None = 2, allow_nan: bool = True) -> str:
    """Write `value` as JSON (with a final newline) to `path` atomically; returns the path."""
    return write_text(path, json.dumps(value, indent=indent, allow_nan=allow_nan) + "\n")


def load_model(path: str | os.PathLike, *, base_model: str | None = None, merge_adapter: bool = False,
               device: str | None = None) -> Any:
    """A saved causal LM in eval mode: a full checkpoint, or a PEFT adapter over its base model.

    Args:
        path: a folder written by `save_pretrained` (`anchor-hf train` writes one).
        base_model: for an adapter folder, the base model's folder or Hub id; default the
            `base_model_name_or_path` its `adapter_config.json` names.
        merge_adapter: fold the adapter into the base weights (`merge_and_unload`), so weight
            edits such as `ablate` act on plain weights; otherwise the `PeftModel` is returned
            (the interventions and probes see through it).
        device: where to put the model (default: where it loads, the CPU).
    """
    from transformers import AutoModelForCausalLM

    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, ADAPTER_CONFIG)):
        if base_model is not None:
            raise AnchorCheckpointError(f"`base_model` = {base_model!r} was given, but {path!r} holds a full model, "
                                        f"not an adapter ({ADAPTER_CONFIG} is missing)")
        model = AutoModelForCausalLM.from_pretrained(path)
    else:
        from peft import PeftConfig, PeftModelForCausalLM

        base = base_model or PeftConfig.from_pretrained(path).base_model_name_or_path
        if not base:
            raise AnchorCheckpointError(f"{path!r} holds a LoRA adapter whose {ADAPTER_CONFIG} names no base model; "
                                        "pass `base_model`")
        model = PeftModelForCausalLM.from_pretrained(AutoModelForCausalLM.from_pretrained(base), path)
        if merge_adapter:
            model = model.merge_and_unload()
    if device is not None:
        model = model.to(device)
    return model.eval()


def load_tokenizer(path: str | os.PathLike) -> Any:
    """The tokenizer saved in `path` (a folder or Hub id), with a pad token (`with_pad_token`)."""
    from transformers import AutoTokenizer

    return with_pad_token(AutoTokenizer.from_pretrained(os.fspath(path)), f"the tokenizer in {os.fspath(path)!r}")


def with_pad_token(tokenizer: Any, source: str = "the tokenizer") -> Any:
    """`tokenizer` with the eos token as its pad token when it has none (causal LMs often ship so).

    Padding is needed to batch examples of different lengths; the pads are masked out, so
    which token pads does not change any loss or state.
    """
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise AnchorCheckpointError(f"{source} has neither a pad nor an eos token to pad with; set one")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
