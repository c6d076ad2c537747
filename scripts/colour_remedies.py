"""Compare remedies for suppression efficacy on the colour LM (docs/method.md §9), one table.

Each variant is `anchor-hf colour` with extra flags for the anchored training only (each
fully specified: layers, concept and label power, whatever the recipe's defaults); all
variants share the control models (trained once, linked into each variant's folder), so
differences are the remedy's. Writes every variant's report under `--work/<variant>/` and
a table of their summary.json numbers to `--table` (default docs/reports/colour_lm/remedies_table.md).

    python scripts/colour_remedies.py --seeds 1 --variants baseline exclusive subspace
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

# variant -> (what it changes, extra flags for the anchored training)
ANCHOR = {"layers": [0, 1, 2, 3], "concepts": [{"name": "red", "label_column": "concept", "span_column": "concept_span",
                                               "dims": [0], "attract": 1.0,
          "repel": 2.5, "tau": 0.1, "repel_schedule": {"ramp_end": 0.0, "start": 1.0, "anneal_start": 0.3,
                                                       "anneal_end": 0.7, "floor": 0.12}}]}


def anchor(**concept_changes: object) -> list[str]:
    cfg = json.loads(json.dumps(ANCHOR))
    cfg["concepts"][0].update(concept_changes)
    return ["--anchor_config", json.dumps(cfg)]


VARIANTS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("pooled pull + anti-subspace at the 4 block outputs, label power 8", anchor()),
    "exclusive": ("+ exclusivity on running off-axis class means (λ=10, momentum 0.95)",
                  anchor(exclusive=10.0, exclusive_momentum=0.95)),
    "exclusive_strong": ("+ exclusivity λ=50", anchor(exclusive=50.0, exclusive_momentum=0.95)),
    "subspace4": ("4-axis subspace instead of one axis", anchor(dims=[0, 1, 2, 3])),
    "subspace4_exclusive": ("4-axis subspace + exclusivity λ=10",
                            anchor(dims=[0, 1, 2, 3], exclusive=10.0, exclusive_momentum=0.95)),
    "route": ("+ gradient routing of labelled positions through the axis", anchor(route=True)),
    "route_exclusive": ("+ gradient routing + exclusivity λ=10",
                        anchor(route=True, exclusive=10.0, exclusive_momentum=0.95)),
    "subspace8_route": ("8-axis subspace + gradient routing", anchor(dims=list(range(8)), route=True)),
    "subspace8_route_x10": ("8-axis subspace + routing + label power 4",
                            ["--dataset_args.label_power", "4", *anchor(dims=list(range(8)), route=True)]),
    "route_x10": ("routing + label power 4", ["--dataset_args.label_power", "4", *anchor(route=True)]),
    "labels_x30": ("label power 2 (≈30× more labels)", ["--dataset_args.label_power", "2"]),
    "labels_x30_exclusive": ("label power 2 + exclusivity λ=10",
                             ["--dataset_args.label_power", "2", *anchor(exclusive=10.0, exclusive_momentum=0.95)]),
    "every_slice_x10": ("label power 4 + the embedding output (transformer.drop) as a fifth anchored slice",
                        ["--dataset_args.label_power", "4", "--anchor_config",
                         json.dumps({**ANCHOR, "layers": ["transformer.drop", 0, 1, 2, 3]})]),
    "every_slice_x10_exclusive": ("every slice + label power 4 + exclusivity λ=10",
                                  ["--dataset_args.label_power", "4", "--anchor_config",
                                   json.dumps({**ANCHOR, "layers": ["transformer.drop", 0, 1, 2, 3],
                                               "concepts": [{**ANCHOR["concepts"][0], "exclusive": 10.0,
                                                             "exclusive_momentum": 0.95}]})]),
    "labels_x10": ("label power 4 instead of 8 (≈10× more labels)", ["--dataset_args.label_power", "4"]),
    "labels_x10_exclusive": ("label power 4 + exclusivity λ=10",
                             ["--dataset_args.label_power", "4", *anchor(exclusive=10.0, exclusive_momentum=0.95)]),
}
COLUMNS = ("label_fraction", "heldout_error_anchored", "heldout_error_control", "auroc_anchored", "margin",
           "containment", "suppression_target_error", "suppression_selectivity_ratio", "suppression_r2",
           "posthoc_selectivity_ratio")


def run_variant(name: str, args: argparse.Namespace) -> None:
    out = os.path.join(args.work, name)
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    for seed in range(args.seeds):  # share the controls
        shared = os.path.abspath(os.path.join(args.work, "_control", "models", f"control_seed{seed}"))
        link = os.path.join(out, "models", f"control_seed{seed}")
        if os.path.isdir(shared) and not os.path.exists(link):
            os.symlink(shared, link)
    flags = VARIANTS[name][1]
    if "--dataset_args.label_power" not in flags:  # every variant fully specified, whatever the recipe's defaults
        flags = ["--dataset_args.label_power", "8", *flags]
    cmd = ["anchor-hf", "colour", "--concept", args.concept, "--seeds", str(args.seeds), "--out", out,
           "--anchored-args", shlex.join(flags)]
    if args.max_steps:
        cmd += ["--max-steps", str(args.max_steps)]
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    for seed in range(args.seeds):  # the first variant trains the controls: keep them for the others
        shared = os.path.join(args.work, "_control", "models", f"control_seed{seed}")
        own = os.path.join(out, "models", f"control_seed{seed}")
        if not os.path.exists(shared) and not os.path.islink(own):
            os.makedirs(os.path.dirname(shared), exist_ok=True)
            os.replace(own, shared)
            os.symlink(os.path.abspath(shared), own)


def table(work: str) -> str:
    """The table of every variant with a finished report under `work`, in `VARIANTS` order."""
    from anchor_hf.probes.report import markdown_table

    rows = []
    for name, (what, _) in VARIANTS.items():
        path = os.path.join(work, name, "report.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
            s = report["summary"]
            effects = report["per_seed"][0]["anchored"]["effects"]["suppress"]
            rows.append([name, what, *(s[k] for k in COLUMNS), effects["target_base"], effects["target_rise"]])
    lines = ["# Remedies for suppression efficacy: measured table", "",
             "Each row is `python scripts/colour_remedies.py --variants NAME` (the exact `anchor-hf colour` command "
             f"is in `{work}/NAME/report.md`). Medians over the seeds run; all variants share the control models. "
             "Last two columns: the target group's error before suppression and its rise under it (seed 0).", ""]
    lines.append(markdown_table(["variant", "what changes", *COLUMNS, "target base", "target rise"], rows))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--concept", default="red")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--work", default="results/colour_remedies")
    parser.add_argument("--table", default="docs/reports/colour_lm/remedies_table.md")
    args = parser.parse_args(argv)
    for name in args.variants:
        run_variant(name, args)
        os.makedirs(os.path.dirname(args.table) or ".", exist_ok=True)
        with open(args.table, "w", encoding="utf-8") as f:  # rewritten after each variant, from every report
            f.write(table(args.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
