"""Can a GoEmotions model's continuations show a redirect at all? The denominators of toward/away, measured.

`redirect_toward` and `redirect_away` divide by how differently the *unedited* model writes
after E prompts and after F prompts, as the two held-out classifiers see it:

    toward denominator = P_F(continuations of F prompts) − P_F(continuations of E prompts)
    away denominator   = P_E(continuations of E prompts) − P_E(continuations of F prompts)

Below 0.05 the report says "not measurable". This script measures both for a model, for
several concept/destination pairs, prompt lengths and decodings (greedy, as the report;
and sampling at temperature 1, several samples per prompt, seeded), beside the ceiling:
the same differences for the held-out comments' *real* remainders after the prompt, i.e.
what a model that wrote like the data would give. It writes OUT/report.md and report.json.

    python scripts/redirect_measurability.py --model results/goemotions/redirect_base/control_seed0 \
        --tokenizer results/goemotions/redirect_base/tokenizer --data-dir ../shared/datasets/goemotions \
        --pairs anger:neutral gratitude:neutral --prompt-tokens 2 4 8 \
        --out docs/reports/redirect/goemotions/measurability
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

import torch

SAMPLES = 4  # sampled continuations per prompt in the sampling mode


def continuations(model: Any, prompts: torch.Tensor, tokenizer: Any, new_tokens: int, sampled: bool) -> list[str]:
    """Continuations of `prompts` `[P, k]` cut at the end-of-text token: greedy, or `SAMPLES` sampled per prompt."""
    eos = tokenizer.eos_token_id
    texts: list[str] = []
    torch.manual_seed(0)
    with torch.no_grad():
        for batch in prompts.split(64):
            out = model.generate(input_ids=batch, attention_mask=torch.ones_like(batch), do_sample=sampled,
                                 temperature=1.0 if sampled else None, num_return_sequences=SAMPLES if sampled else 1,
                                 max_new_tokens=new_tokens, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
            for row in out[:, batch.shape[1]:].tolist():
                texts.append(tokenizer.decode(row[:row.index(eos)] if eos in row else row))
    return texts


def remainders(comments: list[Any], tokenizer: Any, k: int) -> list[str]:
    """The real text after the first `k` tokens of each comment longer than `k` tokens."""
    out = []
    for c in comments:
        ids = tokenizer(c.text, add_special_tokens=False)["input_ids"]
        if len(ids) > k:
            out.append(tokenizer.decode(ids[k:]))
    return out


def gaps(rd: Any, e_texts: list[str], f_texts: list[str]) -> tuple[float, float]:
    """(toward, away) denominators from texts written after E prompts and after F prompts."""
    e_clf, f_clf = rd.concept_classifier, rd.destination_classifier
    return (float(f_clf.score(f_texts).mean() - f_clf.score(e_texts).mean()),
            float(e_clf.score(e_texts).mean() - e_clf.score(f_texts).mean()))


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    from anchor_hf.experiments.goemotions.data import load_goemotions, resolve_concepts
    from anchor_hf.experiments.goemotions.destination import resolve_destination
    from anchor_hf.experiments.goemotions.evaluate import load_trained
    from anchor_hf.experiments.goemotions.builder import GoEmotionsEvaluation
    from anchor_hf.experiments.goemotions.redirect_eval import MIN_DENOMINATOR, RedirectData, select_prompts
    from anchor_hf.probes.report import markdown_table, write_report

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    splits = load_goemotions(args.data_dir)
    held_out = splits["dev"] + splits["test"]
    settings = GoEmotionsEvaluation(redirect_new_tokens=args.new_tokens, redirect_prompt_tokens=min(args.prompt_tokens))
    models = {path: load_trained(path, None) for path in args.model}
    rows, results = [], []
    for pair in args.pairs:
        concept, _, destination = pair.partition(":")
        plan = resolve_destination(destination, resolve_concepts(concept), "opposite")
        rd = RedirectData.build(splits, plan, settings, args.max_length, tokenizer)
        sides = [[c for c in held_out if holds(c)] for holds in (plan.holds_concept, plan.holds_destination)]
        for k in args.prompt_tokens:
            prompts = [select_prompts(tokenizer, side, k, settings.redirect_prompts, seed) for seed, side in
                       enumerate(sides)]
            ceiling = gaps(rd, *(remainders(side, tokenizer, k) for side in sides))
            entry = {"pair": pair, "prompt_tokens": k, "prompts": [len(p) for p in prompts], "ceiling": ceiling}
            for path, model in models.items():
                for mode in ("greedy", "sampled"):
                    texts = [continuations(model, p, tokenizer, args.new_tokens, mode == "sampled") for p in prompts]
                    entry[f"{path} {mode}"] = gaps(rd, *texts)
                    rows.append([pair, k, f"{len(prompts[0])} / {len(prompts[1])}", path, mode,
                                 *entry[f"{path} {mode}"], *ceiling])
            results.append(entry)
            print(entry, flush=True)
    command = "python scripts/redirect_measurability.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = ["# Can the continuations show a redirect? toward/away denominators", "", f"Written by `{command}`.", "",
          f"Denominators of the unedited model (floor: {MIN_DENOMINATOR:g}; below it the report says \"not "
          f"measurable\"), greedy continuations of up to {args.new_tokens} tokens as in the report and {SAMPLES} "
          "sampled ones per prompt (temperature 1), beside the ceiling: the same differences for the held-out "
          "comments' real remainders after the prompt. Prompts: held-out (dev + test) comments of each side.", "",
          markdown_table(["pair", "prompt tokens", "prompts E / F", "model", "decoding", "toward den.", "away den.",
                          "ceiling toward", "ceiling away"], rows), ""]
    write_report(args.out, {"command": command, "results": results}, "\n".join(md), {})
    print(f"wrote {args.out}/report.md")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", required=True, help="trained model folders (unedited)")
    parser.add_argument("--tokenizer", required=True, help="their tokenizer folder")
    parser.add_argument("--data-dir", required=True, help="the GoEmotions folder")
    parser.add_argument("--pairs", nargs="+", default=["anger:neutral"], help="CONCEPT:DESTINATION pairs")
    parser.add_argument("--prompt-tokens", nargs="+", type=int, default=[8])
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=32, help="tokens per comment, as the models trained")
    parser.add_argument("--out", required=True, help="folder for report.md and report.json")
    return parser


if __name__ == "__main__":
    sys.exit(main(make_parser().parse_args()))
