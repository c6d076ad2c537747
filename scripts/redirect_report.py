"""Write docs/reports/redirect/report.md from the runs it summarizes (no number typed by hand).

Reads the `anchor-hf colour` reports of the names and mixing runs (`report.json`,
`summary.json`) and the variant screen (`variants.md` from scripts/redirect_colour_variants.py), and
writes one report: the targets met or missed per corpus, every intervention on the same models
and seeds, the paired cost, the intervention-aware steps' withheld names, the variants tried,
and the figures, each with the command that produced it.

    python scripts/redirect_report.py --names docs/reports/redirect/names \
        --mixing docs/reports/redirect/mixing --variants docs/reports/redirect/variants \
        --out docs/reports/redirect/report.md
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from anchor_hf.experiments.colour.lm.redirect_report import (aware_rows, comparison_rows, cost_rows,
                                                              redirect_targets)
from anchor_hf.probes.report import markdown_table

COMPARISON_HEADER = ["intervention", "model", "target base", "target error", "remaining", "dissimilar rise", "ratio",
                     "mean error"]
COST_HEADER = ["seed", "held-out A", "held-out no-dest", "held-out C", "A ÷ C", "no-dest ÷ C", "held-out EM A",
               "held-out EM C"]


def load_run(folder: str) -> dict[str, Any] | None:
    """`report.json` of an `anchor-hf colour` run, or None when the folder has none."""
    path = os.path.join(folder, "report.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_section(title: str, folder: str, report: dict[str, Any]) -> list[str]:
    """Targets, comparison, cost and figures of one run."""
    summary, per_seed, seeds = report["summary"], report["per_seed"], report["seeds"]
    exact = None
    if summary["corpus"] == "mixing":
        exact = (_median([r["anchored"]["heldout_exact_match"] for r in per_seed]),
                 _median([r["control"]["heldout_exact_match"] for r in per_seed]))
    rel = os.path.basename(os.path.normpath(folder))
    falloff = report["setup"].get("redirect_falloff")
    aware = report["setup"].get("aware_steps")
    recipe = [f"destination `{summary['destination']}`",
              f"graded redirect (falloff {tuple(falloff)})" if falloff else "full redirect",
              f"{aware['steps']} intervention-aware steps (λ {aware['weight']:g}, {aware['withheld']:.0%} of the "
              "target names withheld)" if aware else "no intervention-aware steps"]
    lines = [f"## {title}", "", "```bash", report["command"], "```", "",
             f"{len(seeds)} seeds ({seeds}), medians; {', '.join(recipe)}. Full report: [`{rel}/report.md`]"
             f"({rel}/report.md).", "",
             "### Targets", "",
             markdown_table(["target", "measured", "met"], redirect_targets(summary, summary["auroc_anchored"], exact)),
             "", "### Every intervention on the same models and seeds", "",
             markdown_table(COMPARISON_HEADER, comparison_rows(per_seed, summary["destination"] != "opposite")), ""]
    withheld = aware_rows(per_seed)
    if withheld:
        lines += ["### Intervention-aware steps: trained vs withheld target names", "",
                  markdown_table(["intervention", "remaining (trained names)", "remaining (withheld names)"], withheld),
                  ""]
    lines += ["### Cost, paired by seed (held-out error)", "", markdown_table(COST_HEADER, cost_rows(per_seed, seeds)),
              "", f"![redirect swatches]({rel}/redirect_swatches.png)", "",
              f"![toward the destination]({rel}/toward_destination.png)", ""]
    return lines


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def variants_section(folder: str) -> list[str]:
    """The variant screen's table, as scripts/redirect_colour_variants.py wrote it."""
    path = os.path.join(folder, "variants.md")
    if not os.path.isfile(path):
        return ["## Variants tried", "", f"(no `{path}`: run scripts/redirect_colour_variants.py)", ""]
    with open(path, encoding="utf-8") as f:
        text = f.read().split("\n", 1)[1]  # drop its title
    rel = os.path.basename(os.path.normpath(folder))
    return ["## Variants tried (one seed each; names)", "", f"From [`{rel}/variants.md`]({rel}/variants.md):",
            text.strip(), ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", default="docs/reports/redirect/names")
    parser.add_argument("--mixing", default="docs/reports/redirect/mixing")
    parser.add_argument("--variants", default="docs/reports/redirect/variants")
    parser.add_argument("--out", default="docs/reports/redirect/report.md")
    args = parser.parse_args(argv)
    lines = ["# Redirect: point a concept somewhere else", "",
             "Written by `python scripts/redirect_report.py "
             f"--names {args.names} --mixing {args.mixing} --variants {args.variants} --out {args.out}` from the "
             "runs below; every number comes from their reports.", "",
             "Subtracting an anchored concept leaves the model to fall back on whatever else carries it; moving it to "
             "a place the model was trained to read as something definite competes with that fallback "
             "(docs/method.md §10). Here red is redirected to mid grey (`#808080`) and measured as efficacy "
             "(error against red's own answer), fidelity (remaining distance to grey: 1 = unmoved, 0 = every "
             "answer grey), selectivity (dissimilar colours' error rise), and cost (held-out error against the "
             "control, paired by seed), always beside suppress, ablate, LEACE and the untrained opposite pole on "
             "the same models.", ""]
    for title, folder in (("Colour names (XKCD)", args.names), ("Mixing language", args.mixing)):
        report = load_run(folder)
        lines += run_section(title, folder, report) if report else [f"## {title}", "", f"(no run in `{folder}`)", ""]
    lines += variants_section(args.variants)
    tmp = f"{args.out}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
