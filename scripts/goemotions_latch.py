"""Where does the pooled pull land? A latch check for GoEmotions anchored models.

The pooled pull is a soft maximum of cos(h_t, v̂) over a comment's tokens, so it can be
satisfied by one position. If that position is the same token in every comment (the
appended end-of-text token), the pull puts *every* comment on the axis there, whatever its
emotion, and the anchor detects nothing. This script measures, per anchored layer on the
held-out test comments: detection AUROC by the mean alignment (the report's metric), by
the max alignment, and the share of comments whose max alignment sits on their last token.
It writes a markdown table to `--out`.

    python scripts/goemotions_latch.py --tokenizer results/goemotions/scratch_anger_long/tokenizer \
        --models results/goemotions/scratch_anger_long/anchored_rate1_seed0 --set max_steps=2700 \
        --data-dir ../shared/datasets/goemotions --out docs/reports/goemotions/latch.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

import torch


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="the run's tokenizer folder (MODELS_DIR/tokenizer)")
    parser.add_argument("--models", nargs="+", required=True, help="anchored model folders")
    parser.add_argument("--concept", default="anger")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe overrides")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from transformers import AutoTokenizer

    from anchor_hf.config import AnchorConfig
    from anchor_hf.experiments.goemotions.data import load_goemotions, resolve_concept
    from anchor_hf.geometry import direction_basis
    from anchor_hf.experiments.goemotions.evaluate import EvalData, load_trained
    from anchor_hf.experiments.goemotions.recipe import load_recipe, parse_overrides, recipe_path
    from anchor_hf.io import write_text
    from anchor_hf.layers import resolve_layers
    from anchor_hf.probes.detection import auroc, pool_alignment
    from anchor_hf.probes.report import markdown_table
    from anchor_hf.probes.states import collect_states

    recipe = load_recipe(recipe_path("scratch"), parse_overrides(args.set))
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    data = EvalData.build(load_goemotions(args.data_dir), resolve_concept(args.concept), recipe.evaluation,
                          recipe.data.max_length, tokenizer)
    test = data.concept_test + data.other_test
    labels = torch.tensor([1] * len(data.concept_test) + [0] * len(data.other_test)).bool()
    rows = []
    for folder in args.models:
        name = os.path.relpath(folder, os.path.dirname(os.path.dirname(os.path.abspath(folder))))
        model = load_trained(folder, None)
        cfg = AnchorConfig.from_pretrained(folder)
        c = cfg.concepts[0]
        basis = direction_basis(c.dims, c.vector, cfg.hidden_size)
        states = collect_states(model, resolve_layers(model, list(cfg.layers)), data.batches(test),
                                {c.name: (basis, c.dims)}, progress=False)
        last = states.live.sum(1) - 1
        for layer, cos in zip(cfg.layers, states.cos[c.name]):
            masked = cos.masked_fill(~states.live, float("-inf"))
            on_last = float((masked.argmax(1) == last).float().mean())
            rows.append([name, layer, auroc(pool_alignment(cos, states.live, "mean"), labels),
                         auroc(pool_alignment(cos, states.live, "max"), labels), on_last])
    command = "python scripts/goemotions_latch.py " + " ".join(shlex.quote(a) for a in argv)
    md = ["# Where the pooled pull lands (GoEmotions)", "", "Produced by:", "", f"```\n{command}\n```", "",
          f"Held-out test comments: {len(data.concept_test)} with `{args.concept}`, {len(data.other_test)} without. "
          "On last token: share of comments whose largest alignment with the anchor is at their last token (the "
          "appended end-of-text token); 1/length would be chance.", "",
          markdown_table(["model", "layer", "AUROC (mean alignment)", "AUROC (max alignment)", "max on last token"],
                         rows), ""]
    write_text(args.out, "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
