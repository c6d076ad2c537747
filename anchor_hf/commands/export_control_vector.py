"""`anchor-hf export-control-vector MODEL CONCEPT OUT.gguf`: an anchored concept as a llama.cpp control vector.

    anchor-hf export-control-vector out/model anger anger.gguf
    llama-cli -m model.gguf --control-vector-scaled anger.gguf 0.1      # dose 0.1

The file holds `direction.N = dose · s_N · v̂` for each anchored block N ≥ 1, where `s_N` is
the median norm of block N's output over the tokens of `--text` (a built-in paragraph of
ordinary English by default). `steer` scales by each state's own norm; llama.cpp adds this
constant to every state, so the two agree at a state of typical norm (anchor_hf.control_vector).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export-control-vector",
                                   help="Write an anchored concept as a llama.cpp control-vector GGUF file.",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model folder (AnchorTrainer.save_model output: weights, tokenizer, "
                                      "anchor_config.json)")
    parser.add_argument("concept", help="the concept to export (one direction)")
    parser.add_argument("out", help="the .gguf file to write")
    parser.add_argument("--anchor-config", default=None,
                        help="anchor_config.json (or its folder); default: the one in the model folder")
    parser.add_argument("--dose", type=float, default=1.0,
                        help="c: each block's vector is c times its typical norm (default 1; scale it at run time "
                             "with llama.cpp's --control-vector-scaled FILE STRENGTH)")
    parser.add_argument("--layers", type=int, nargs="+", default=None,
                        help="block indices to steer (default: the config's anchored blocks; block 0 has no slot)")
    parser.add_argument("--text", default=None,
                        help="a text file (one example per line) to measure the typical norms on; default: a "
                             "built-in paragraph of ordinary English")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..control_vector import DEFAULT_TEXT, control_vector, write_control_vector
    from ..probes.inputs import check_concepts, check_model_folder, load_anchor_config, load_model_and_tokenizer

    check_model_folder(args.model)
    cfg, cfg_file = load_anchor_config(args.model, args.anchor_config)
    check_concepts(cfg, [args.concept])
    texts = DEFAULT_TEXT
    if args.text is not None:
        with open(args.text, encoding="utf-8") as f:
            texts = tuple(line.strip() for line in f if line.strip())
    model, tokenizer = load_model_and_tokenizer(args.model, "cpu")
    vector = control_vector(model, tokenizer, cfg, args.concept, dose=args.dose, layers=args.layers, texts=texts)
    write_control_vector(vector, args.out)
    scales = ", ".join(f"direction.{b}: {vector.dose:g} × {vector.norms[b]:.4g}" for b in sorted(vector.norms))
    print(f"wrote {args.out} ({vector.model_hint}, concept {args.concept!r} from {cfg_file}); {scales}")
    return 0
