"""`anchor-hf probe`: measure an anchored model and write report.json, report.md and PNG plots.

    anchor-hf probe out/model --data heldout.jsonl --out out/probe --measures detection steerability

Every input is checked before the model is loaded (model folder, anchor config, concept
names, data columns, options), so mistakes fail fast with a message saying what is wrong.
The exact command, with every option spelled out, is written into both reports beside
the numbers it produced. `scripts/probe_steerability.py` and
`scripts/probe_entanglement.py` are this command with one measure preselected.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
from typing import Any

MEASURES = ("alignment", "detection", "steerability", "entanglement")


def add_arguments(parser: argparse.ArgumentParser, measures: tuple[str, ...] = MEASURES) -> None:
    """The probe options; `measures` is the default of `--measures`."""
    parser.add_argument("model", help="model folder (AnchorTrainer.save_model output: weights, tokenizer, "
                                      "anchor_config.json); checkpoint-* subfolders are used by --checkpoints")
    parser.add_argument("--data", required=True, help="held-out texts with concept-label columns: .jsonl, .json, "
                                                      ".csv, or a datasets folder (save_to_disk)")
    parser.add_argument("--out", required=True, help="folder for report.json, report.md and the PNG plots")
    parser.add_argument("--anchor-config", default=None,
                        help="anchor_config.json (or its folder); default: the one in the model folder")
    parser.add_argument("--concepts", nargs="+", default=None, help="concepts to probe (default: all anchored)")
    parser.add_argument("--measures", nargs="+", choices=MEASURES, default=list(measures),
                        help=f"what to measure (default: {' '.join(measures)})")
    parser.add_argument("--text-column", default="text", help="column holding the texts (default: text)")
    parser.add_argument("--split", default=None, help="split of a datasets folder holding a DatasetDict")
    parser.add_argument("--max-examples", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--doses", type=float, nargs="+", default=[-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0],
                        help="steering doses c in h + c·|h|·v (steerability)")
    parser.add_argument("--score", choices=("contrast", "logprob", "alignment"), default="contrast",
                        help="steerability score: log-likelihood of the concept's examples minus the others' "
                             "(contrast), of the concept's examples alone (logprob), or cos(h, v) at "
                             "--readout-layer (alignment)")
    parser.add_argument("--readout-layer", type=int, default=-1, help="block read by --score alignment")
    parser.add_argument("--entanglement-mode", choices=("suppress", "ablate"), default="suppress",
                        help="remove each concept by suppression hooks or by weight ablation (restored after)")
    parser.add_argument("--groups", nargs="+", default=[],
                        help="extra label columns to use as entanglement groups B")
    parser.add_argument("--pool", choices=("mean", "max"), default="mean",
                        help="how detection pools cos(h, v) over an example's tokens")
    parser.add_argument("--test-fraction", type=float, default=0.5,
                        help="held-out share for detection AUROCs (probes are fitted on the rest)")
    parser.add_argument("--checkpoints", action="store_true",
                        help="also measure margins at the model folder's checkpoint-* subfolders (retention)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128, help="truncate texts to this many tokens")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the detection split and of the bootstrap")
    parser.add_argument("--control", default=None,
                        help="an un-anchored model folder of the same architecture (e.g. trained the same way with "
                             "anchor weights 0), probed with the same config and data: every number gets its "
                             "baseline beside it")
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="resamples of the examples for the 95%% intervals (default 200, at least 20)")
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe", help="Measure alignment, detection, steerability and entanglement; write report.json, report.md, "
                      "PNGs.", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=main)


def canonical_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, every option spelled out."""
    parts = ["anchor-hf", "probe", args.model, "--data", args.data, "--out", args.out]
    if args.anchor_config is not None:
        parts += ["--anchor-config", args.anchor_config]
    if args.concepts:
        parts += ["--concepts", *args.concepts]
    parts += ["--measures", *args.measures, "--text-column", args.text_column]
    if args.split is not None:
        parts += ["--split", args.split]
    if args.max_examples is not None:
        parts += ["--max-examples", str(args.max_examples)]
    parts += ["--doses", *[f"{d:g}" for d in args.doses], "--score", args.score,
              "--readout-layer", str(args.readout_layer), "--entanglement-mode", args.entanglement_mode]
    if args.groups:
        parts += ["--groups", *args.groups]
    parts += ["--pool", args.pool, "--test-fraction", f"{args.test_fraction:g}"]
    if args.checkpoints:
        parts.append("--checkpoints")
    if args.control is not None:
        parts += ["--control", args.control]
    parts += ["--bootstrap", str(args.bootstrap), "--batch-size", str(args.batch_size), "--max-length",
              str(args.max_length), "--device", args.device, "--seed", str(args.seed)]
    return shlex.join(parts)


def _check_options(args: argparse.Namespace) -> None:
    from ..errors import AnchorConfigError

    if args.batch_size < 1:
        raise AnchorConfigError(f"`--batch-size` must be >= 1, got {args.batch_size}")
    if args.max_length < 2:
        raise AnchorConfigError(f"`--max-length` must be >= 2 (a next-token loss needs two tokens), got "
                                f"{args.max_length}")
    if args.max_examples is not None and args.max_examples < 1:
        raise AnchorConfigError(f"`--max-examples` must be >= 1, got {args.max_examples}")
    if args.bootstrap < 20:
        raise AnchorConfigError(f"`--bootstrap` must be >= 20 resamples (95% intervals need them), got "
                                f"{args.bootstrap}")
    if not 0.0 < args.test_fraction < 1.0:
        raise AnchorConfigError(f"`--test-fraction` must be in (0, 1), got {args.test_fraction}")
    if "steerability" in args.measures:
        if not all(math.isfinite(d) for d in args.doses) or len(set(args.doses)) < 2:
            raise AnchorConfigError(f"`--doses` must hold at least two different finite numbers, got {args.doses}")
    args.measures = list(dict.fromkeys(args.measures))


def validate(args: argparse.Namespace) -> dict[str, Any]:
    """Check every input without loading the model; returns the config, concepts and data."""
    from ..errors import AnchorConfigError, AnchorDataError
    from ..probes.inputs import check_concepts, check_model_folder, load_anchor_config, load_probe_data
    from ..probes.plots import require_matplotlib
    from ..probes.suite import checkpoint_folders

    require_matplotlib()  # the report's figures; fail before loading anything
    _check_options(args)
    check_model_folder(args.model)
    if args.control is not None:
        check_model_folder(args.control)
    cfg, cfg_file = load_anchor_config(args.model, args.anchor_config)
    concepts = check_concepts(cfg, args.concepts)
    if "steerability" in args.measures:
        wide = [c for c in concepts if cfg.concept(c).rank > 1]
        if wide:
            raise AnchorConfigError(f"steerability needs one direction per concept, but {wide} span several axes; "
                                    "leave them out with --concepts")
    columns = [cfg.concept(c).column for c in concepts]
    data = load_probe_data(args.data, args.text_column, columns + [g for g in args.groups if g not in columns],
                           args.split, args.max_examples)
    # detection splits each class into train and test; the contrast score needs other examples to compare with
    need_pos, need_neg = 1, 0
    if "detection" in args.measures:
        need_pos, need_neg = 2, 2
    elif "steerability" in args.measures and args.score == "contrast":
        need_neg = 1
    for c, column in zip(concepts, columns):
        positive = int((data.labels[column] >= 0.5).sum())
        if positive < need_pos or len(data) - positive < need_neg:
            raise AnchorDataError(
                f"label column {column!r} of concept {c!r} marks {positive} of {len(data)} examples as the concept "
                f"(label >= 0.5); the measures {args.measures} need at least {need_pos} concept and {need_neg} "
                "other examples")
    checkpoints = checkpoint_folders(args.model) if args.checkpoints else []
    if args.checkpoints and not checkpoints:
        raise AnchorDataError(f"`--checkpoints` was given, but {args.model!r} has no checkpoint-<step> subfolders")
    return {"cfg": cfg, "cfg_file": cfg_file, "concepts": concepts, "data": data, "checkpoints": checkpoints}


def run_measures(args: argparse.Namespace, ctx: Any, control: Any, checkpoints: list[str], device: str) -> dict:
    """Measure name -> `Section`, in the order asked for."""
    from ..probes.effects import run_entanglement, run_steerability
    from ..probes.suite import run_alignment, run_detection

    common = dict(control=control, resamples=args.bootstrap)
    sections = {}
    for measure in args.measures:
        if measure == "alignment":
            sections[measure] = run_alignment(ctx, checkpoints, device, seed=args.seed, **common)
        elif measure == "detection":
            sections[measure] = run_detection(ctx, args.pool, args.test_fraction, args.seed, **common)
        elif measure == "steerability":
            sections[measure] = run_steerability(ctx, args.doses, args.score, args.readout_layer, seed=args.seed,
                                                 **common)
        else:
            sections[measure] = run_entanglement(ctx, args.entanglement_mode, args.groups, seed=args.seed, **common)
    return sections


def main(args: argparse.Namespace) -> int:
    """Validate, load, measure, and write the report; returns 0."""
    import torch
    import transformers

    from .. import __version__
    from ..probes.inputs import load_model_and_tokenizer
    from ..probes.report import glossary_link, write_report
    from ..probes.suite import ProbeContext

    checked = validate(args)
    command = canonical_command(args)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.manual_seed(args.seed)
    model, tokenizer = load_model_and_tokenizer(args.model, device)
    ctx = ProbeContext(model=model, tokenizer=tokenizer, cfg=checked["cfg"], concepts=checked["concepts"],
                       data=checked["data"], batch_size=args.batch_size, max_length=args.max_length,
                       progress=not args.no_progress)
    control = ctx.with_model(*load_model_and_tokenizer(args.control, device)) if args.control is not None else None
    sections = run_measures(args, ctx, control, checked["checkpoints"], device)
    results = {"command": command, "model": os.path.abspath(args.model), "anchor_config": checked["cfg_file"],
               "control": os.path.abspath(args.control) if args.control else None,
               "data": args.data, "split": args.split, "examples": len(ctx.data), "concepts": ctx.concepts,
               "layers": ctx.layer_names, "device": device,
               "versions": {"anchor_hf": __version__, "torch": torch.__version__,
                            "transformers": transformers.__version__},
               "verdicts": {name: s.verdicts for name, s in sections.items()},
               "measures": {name: s.results for name, s in sections.items()}}
    verdicts = "\n".join(f"- **{name}**: {line}" for name, s in sections.items() for line in s.verdicts.values())
    baseline = f", control `{args.control}`" if args.control else " (no control model: pass --control for baselines)"
    header = (f"# Probe report\n\nCommand:\n\n```\n{command}\n```\n\nModel `{args.model}`{baseline}, data "
              f"`{args.data}` ({len(ctx.data)} examples), concepts {ctx.concepts}, layers {ctx.layer_names}, device "
              f"{device}. Every metric is defined in the {glossary_link(args.out)}; intervals are 95% bootstrap "
              f"intervals over the examples ({args.bootstrap} resamples).\n\n## Verdicts\n\n{verdicts}\n")
    markdown = "\n\n".join([header, *[s.markdown for s in sections.values()]])
    figures = {name: fig for s in sections.values() for name, fig in s.figures.items()}
    paths = write_report(args.out, results, markdown, figures)
    print(f"wrote {', '.join(sorted(os.path.basename(p) for p in paths.values()))} to {args.out}")
    return 0
