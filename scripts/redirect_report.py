"""Write docs/reports/redirect/report.md from the runs it summarizes (no number typed by hand).

Reads the `anchor-hf colour` reports of the names and mixing runs (`report.json`,
`summary.json`), the variant screen (`variants.md` from scripts/redirect_colour_variants.py), the
`anchor-hf goemotions --destination` runs, the measurability check
(scripts/redirect_measurability.py) and the `anchor-hf robustness` runs, and writes one report:
the targets met or missed per corpus, every intervention on the same models and seeds, the
paired cost, the intervention-aware steps' withheld names, the variants tried, the redirected
model attacked beside the ablated one, and the figures, each with the command that produced it.

    python scripts/redirect_report.py --names docs/reports/redirect/names \
        --mixing docs/reports/redirect/mixing --variants docs/reports/redirect/variants \
        --goemotions docs/reports/redirect/goemotions/opposite docs/reports/redirect/goemotions/untrained \
        --measurability docs/reports/redirect/goemotions/measurability \
        --robustness docs/reports/redirect/robustness/colour_red docs/reports/redirect/robustness/goemotions_anger \
        --out docs/reports/redirect/report.md
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from anchor_hf.experiments.colour.lm.redirect_report import (aware_rows, comparison_rows, cost_rows,
                                                              destination_ceiling, redirect_targets)
from anchor_hf.probes.report import markdown_table
from anchor_hf.probes.stats import median

COMPARISON_HEADER = ["intervention", "model", "target base", "target error", "remaining", "dissimilar rise", "ratio",
                     "mean error"]
COST_HEADER = ["seed", "held-out A", "held-out no-dest", "held-out C", "A ÷ C", "no-dest ÷ C", "held-out EM A",
               "held-out EM C"]


def run_section(title: str, folder: str, report: dict[str, Any]) -> list[str]:
    """Targets, comparison, cost and figures of one run."""
    summary, per_seed, seeds = report["summary"], report["per_seed"], report["seeds"]
    exact = None
    if summary["corpus"] == "mixing":
        exact = (median([r["anchored"]["heldout_exact_match"] for r in per_seed], nan="propagate"),
                 median([r["control"]["heldout_exact_match"] for r in per_seed], nan="propagate"))
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
             markdown_table(["target", "measured", "met"], redirect_targets(summary, summary["auroc_anchored"], exact,
                                                                     destination_ceiling(per_seed))),
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


GOEMOTIONS_TARGETS = (("redirect_toward", "≥ 0.5", lambda v: v >= 0.5), ("redirect_away", "≥ 0.5", lambda v: v >= 0.5),
                      ("redirect_fluency_ratio", "≤ 1.2", lambda v: v <= 1.2),
                      ("perplexity_ratio", "≤ 1.03", lambda v: v <= 1.03))
READING_KEYS = ("redirect_concept_perplexity_ratio", "redirect_destination_perplexity_ratio",
                "leace_concept_perplexity_ratio", "leace_destination_perplexity_ratio",
                "redirect_random_concept_perplexity_ratio", "redirect_random_destination_perplexity_ratio")


def _json(folder: str, name: str) -> dict[str, Any] | None:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _run(folder: str, heading: str) -> tuple[list[str], dict[str, Any] | None, str]:
    """Heading lines with the run's command, its summary and its folder relative to the report;
    a line saying so and None where the folder holds no run."""
    report, summary = _json(folder, "report.json"), _json(folder, "summary.json")
    rel = os.path.relpath(folder, "docs/reports/redirect")
    if report is None or summary is None:
        return [f"(no run in `{folder}`)", ""], None, rel
    return [heading.format(rel=rel), "", "```bash", report["command"], "```", ""], summary, rel


def _cell(summary: dict[str, Any], key: str) -> str:
    """A summary value with its 95% interval; `not measurable` where the run left it out (denominator < 0.05)."""
    value = summary.get(key)
    if value is None:
        return "not measurable" if key in summary else "–"
    ci = summary.get(f"{key}_ci95")
    return f"{value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci and None not in ci else "")


def goemotions_section(folders: list[str], measurability: str | None) -> list[str]:
    """Targets and the reading view of each `anchor-hf goemotions --destination` run."""
    lines = ["## GoEmotions (anger → neutral)", ""]
    for folder in folders:
        head, summary, rel = _run(folder, "### `{rel}`")
        lines += head
        if summary is None:
            continue
        lines += [f"{summary['seeds']} seed(s); full report: [`{rel}/report.md`]({rel}/report.md).", ""]
        rows = []
        for key, bound, met in GOEMOTIONS_TARGETS:
            value = summary.get(key)
            verdict = "no (not measurable)" if value is None else ("yes" if met(value) else "no")
            rows.append([f"{key} {bound}", _cell(summary, key), verdict])
        for key in ("redirect_toward", "redirect_away"):
            leace = key.replace("redirect", "leace")
            rows.append([f"{key} > {leace}", f"{_cell(summary, key)} vs {_cell(summary, leace)}", "–"])
        for key in ("redirect_toward_denominator", "redirect_away_denominator"):
            rows.append([f"{key} (≥ 0.05 to be measurable)", _cell(summary, key), "–"])
        lines += [markdown_table(["target", "measured [95% interval]", "met"], rows), "",
                  "Reading view (perplexity of held-out E and F comments under the edit ÷ unedited):", "",
                  markdown_table(["key", "value [95% interval]"], [[k, _cell(summary, k)] for k in READING_KEYS]), ""]
    if measurability is not None:
        rel = os.path.relpath(measurability, "docs/reports/redirect")
        lines += [f"Whether continuations can show a redirect at all (denominators of the unedited models beside "
                  f"the real-text ceiling): [`{rel}/report.md`]({rel}/report.md).", ""]
    return lines


def robustness_section(folders: list[str]) -> list[str]:
    """The redirected model attacked beside the ablated one (`anchor-hf robustness`)."""
    lines = ["## Does a permanent redirect stick? (`anchor-hf robustness`)", ""]
    header = ["run", "arm", "relearn half steps", "probe AUROC max", "fingerprint p"]
    rows = []
    for folder in folders:
        head, summary, rel = _run(folder, "`{rel}`:")
        lines += head
        if summary is None:
            continue
        for arm in ("ablated", "redirected", "posthoc", "never"):
            steps = summary.get(f"relearn_half_steps_{arm}", "–")  # null: not within the relearning budget
            rows.append([f"[`{rel}`]({rel}/report.md)", arm, "∞" if steps is None else steps,
                         summary.get(f"probe_auroc_max_{arm}"), summary.get(f"fingerprint_pvalue_{arm}")])
    if rows:
        lines += [markdown_table(header, rows), ""]
    return lines


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
    parser.add_argument("--goemotions", nargs="*", default=["docs/reports/redirect/goemotions/opposite",
                                                            "docs/reports/redirect/goemotions/untrained"])
    parser.add_argument("--measurability", default="docs/reports/redirect/goemotions/measurability")
    parser.add_argument("--robustness", nargs="*", default=["docs/reports/redirect/robustness/colour_red",
                                                            "docs/reports/redirect/robustness/goemotions_anger"])
    parser.add_argument("--out", default="docs/reports/redirect/report.md")
    args = parser.parse_args(argv)
    lines = ["# Redirect: point a concept somewhere else", "",
             "Written by `python scripts/redirect_report.py "
             f"--names {args.names} --mixing {args.mixing} --variants {args.variants} "
             f"--goemotions {' '.join(args.goemotions)} --measurability {args.measurability} "
             f"--robustness {' '.join(args.robustness)} --out {args.out}` from the "
             "runs below; every number comes from their reports.", "",
             "Subtracting an anchored concept leaves the model to fall back on whatever else carries it; moving it to "
             "a place the model was trained to read as something definite competes with that fallback "
             "(docs/method.md §10). Here red is redirected to mid grey (`#808080`) and measured as efficacy "
             "(error against red's own answer), fidelity (remaining distance to grey: 1 = unmoved, 0 = every "
             "answer grey), selectivity (dissimilar colours' error rise), and cost (held-out error against the "
             "control, paired by seed), always beside suppress, ablate, LEACE and the untrained opposite pole on "
             "the same models.", ""]
    for title, folder in (("Colour names (XKCD)", args.names), ("Mixing language", args.mixing)):
        report = _json(folder, "report.json")
        lines += run_section(title, folder, report) if report else [f"## {title}", "", f"(no run in `{folder}`)", ""]
    lines += goemotions_section(args.goemotions, args.measurability)
    lines += robustness_section(args.robustness)
    lines += variants_section(args.variants)
    tmp = f"{args.out}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
