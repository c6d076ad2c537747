"""Compare redirect runs side by side: one row per `anchor-hf goemotions --destination` report folder.

    python scripts/redirect_variants.py --out docs/reports/redirect/goemotions/variants \
        --run "opposite pole=docs/reports/redirect/goemotions/opposite" \
        --run "untrained (no destination)=docs/reports/redirect/goemotions/untrained"

Each folder holds the `summary.json` and `report.json` its command wrote; the table copies
their numbers (medians over seeds, 95% intervals in brackets) and lists every command, so
nothing in it is typed by hand. Writes OUT/report.md and OUT/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from anchor_hf.probes.report import markdown_table, write_report

KEYS = ("redirect_toward", "redirect_away", "redirect_fluency_ratio", "redirect_random_toward", "redirect_random_away",
        "leace_toward", "leace_away", "perplexity_ratio", "auroc_anchored", "suppression_selectivity_ratio")


def cell(summary: dict, key: str) -> str:
    value = summary.get(key)
    if value is None:
        return "not measurable" if key in summary else "–"
    ci = summary.get(f"{key}_ci95")
    return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci else "")


def main(args: argparse.Namespace) -> int:
    rows, commands, summaries = [], [], {}
    for item in args.run:
        label, sep, folder = item.partition("=")
        if not sep or not os.path.isfile(os.path.join(folder, "summary.json")):
            raise SystemExit(f"--run takes LABEL=FOLDER with FOLDER/summary.json, got {item!r}")
        with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        with open(os.path.join(folder, "report.json"), encoding="utf-8") as f:
            command = json.load(f)["command"]
        rows.append([label, summary["seeds"], *[cell(summary, k) for k in KEYS]])
        summaries[label] = {"folder": folder, "command": command, "summary": summary}
        commands.append(f"- {label} ([report]({os.path.relpath(folder, args.out)}/report.md)):\n"
                        f"  `{command}`")
    this = "python scripts/redirect_variants.py --out " + shlex.quote(args.out) + "".join(
        f" --run {shlex.quote(r)}" for r in args.run)
    md = ["# Redirect on GoEmotions: variants side by side", "", f"Written by `{this}`.", "",
          "Medians over seeds; 95% bootstrap intervals over prompts in brackets (each report says how).", "",
          markdown_table(["variant", "seeds", *KEYS], rows), "", "Commands:", "", *commands, ""]
    write_report(args.out, {"command": this, "runs": summaries}, "\n".join(md), {})
    print(f"wrote {args.out}/report.md")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=FOLDER")
    parser.add_argument("--out", required=True, help="folder for report.md and report.json")
    return parser


if __name__ == "__main__":
    sys.exit(main(make_parser().parse_args()))
