"""One-GPU check of what CPUs cannot show: bf16 training, FSDP2 on CUDA, and the overhead at scale.

    scripts/gpu_check.sh [--dry-run] [--out DIR]      # the wrapper: sets PYTHONPATH, checks imports
    python scripts/gpu_check.py [--dry-run] [--out DIR] [--part train|fsdp2|bench]

Needs only torch, transformers, accelerate, safetensors and numpy (what a bare GPU machine
has); no network, no download, no file but this checkout. The model is a randomly
initialised Llama of SmolLM2-135M's shape (hidden 576, 30 blocks, 9 heads, 3 KV heads, MLP
1536, vocabulary 49152), the data random token ids with four concepts labelled on random
examples. Three parts, each in a fresh process (accelerate's state is one per process):
- `train`: AnchorTrainer with bf16 autocast, 4 concepts on every block, sequence 1024,
  batch 8: the anchor term is finite, has a gradient, and pulls (cos_labelled rises);
- `fsdp2`: the same through accelerate's FSDP2 (`fully_shard`) as a 1-process NCCL group:
  parameters become DTensors, `save_model` writes full weights that load and reproduce
  the sharded model's `suppress` logits;
- `bench`: plain `Trainer` against `AnchorTrainer` (4 concepts, all blocks, bf16) on the
  same model, data and batch: per repeat both arms train (order alternating) and the
  step-time ratio is the ratio of their median step times; peak memory from
  `torch.cuda.max_memory_allocated`. Median and upper quartile over the repeats.
It prints one JSON line: every part's numbers and `ok`. `--dry-run` runs the same code on
CPU with tiny sizes and a few steps (gloo instead of NCCL), to check it here.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch

PARTS = ("train", "fsdp2", "bench")
SMOLLM2 = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
               intermediate_size=1536, vocab_size=49152)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=256)
CONCEPTS = 4


def sizes(dry_run: bool) -> dict[str, Any]:
    """Model shape and run lengths: SmolLM2-135M at sequence 1024 on a GPU; tiny on CPU."""
    if dry_run:
        return {"model": TINY, "seq": 32, "batch": 2, "train_steps": 4, "repeats": 2, "warmup": 1, "steps": 2}
    return {"model": SMOLLM2, "seq": 1024, "batch": 8, "train_steps": 60, "repeats": 5, "warmup": 5, "steps": 10}


class PadOnly:
    """The collator's tokenizer needs only a pad id and a padding side (random ids have no text)."""

    pad_token_id = 0
    padding_side = "right"


def make_model(size: dict[str, Any]) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**size["model"], max_position_embeddings=size["seq"], pad_token_id=0,
                                        tie_word_embeddings=True))


def make_rows(size: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Random token ids; concept k is present on a quarter of the examples with label probability 0.5."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, size["model"]["vocab_size"], (count, size["seq"]), generator=g)
    present = torch.rand(count, CONCEPTS, generator=g) < 0.25
    return [{"input_ids": ids[i].tolist(), **{f"c{k}": 0.5 if present[i, k] else 0.0 for k in range(CONCEPTS)}}
            for i in range(count)]


def anchor_config(layers: int):
    from anchor_hf import AnchorConfig, ConceptAnchor

    return AnchorConfig(layers=list(range(layers)), concepts=[
        ConceptAnchor(name=f"c{k}", dims=[k], attract=0.5, repel=1.0, tau=0.1) for k in range(CONCEPTS)])


def training_args(out: str, size: dict[str, Any], steps: int, dry_run: bool, **extra: Any):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=out, per_device_train_batch_size=size["batch"], max_steps=steps,
                             learning_rate=3e-4, warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[],
                             disable_tqdm=True, bf16=True, use_cpu=dry_run, dataloader_drop_last=True, seed=0,
                             remove_unused_columns=False, **extra)


def anchored_trainer(out: str, size: dict[str, Any], steps: int, dry_run: bool, args: Any = None):
    from anchor_hf import AnchorDataCollator, AnchorTrainer

    cfg = anchor_config(size["model"]["num_hidden_layers"])
    args = args if args is not None else training_args(out, size, steps, dry_run)
    return AnchorTrainer(model=make_model(size), args=args, anchor_config=cfg,
                         train_dataset=make_rows(size, size["batch"] * steps),
                         data_collator=AnchorDataCollator(PadOnly(), cfg))


def part_train(size: dict[str, Any], dry_run: bool, out: str) -> dict[str, Any]:
    """bf16 training with anchoring: finite terms, and the pull works (cos_labelled rises)."""
    trainer = anchored_trainer(out, size, size["train_steps"], dry_run)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "anchor/loss" in h]
    # mean over the concepts labelled at that step (a step without labels logs no cos_labelled)
    cos = [statistics.mean(values) for h in logs
           if (values := [h[k] for k in (f"anchor/c{c}/cos_labelled" for c in range(CONCEPTS)) if k in h])]
    third = max(1, len(cos) // 3)
    first, last = statistics.mean(cos[:third]), statistics.mean(cos[-third:])
    finite = all(torch.isfinite(torch.tensor([h["loss"], h["anchor/loss"]])).all() for h in logs)
    return {"steps": len(logs), "seconds": round(seconds, 2), "anchor_loss_first": logs[0]["anchor/loss"],
            "anchor_loss_last": logs[-1]["anchor/loss"], "cos_labelled_first_third": round(first, 4),
            "cos_labelled_last_third": round(last, 4), "ok": bool(finite and (dry_run or last > first))}


def part_fsdp2(size: dict[str, Any], dry_run: bool, out: str) -> dict[str, Any]:
    """FSDP2 through accelerate on a 1-process group; full weights saved and reproduced."""
    from transformers import AutoModelForCausalLM

    from anchor_hf import suppress
    from anchor_hf.cpu_fsdp import enable_fsdp_on_cpu

    steps = size["train_steps"] // 3 or 1
    args = training_args(out, size, steps, dry_run)
    enable_fsdp_on_cpu(args)  # no-op on a GPU; the CPU dry run needs it (new TrainingArguments would undo it)
    trainer = anchored_trainer(out, size, steps, dry_run, args)
    trainer.train()
    model = trainer.model
    sharded = type(next(model.parameters())).__name__ == "DTensor"
    probe = torch.randint(3, size["model"]["vocab_size"], (2, 16), generator=torch.Generator().manual_seed(2))
    cfg, device = trainer.anchor_config, trainer.args.device
    model.eval()
    with torch.no_grad(), suppress(model, cfg, "c0"):
        sharded_logits = model(input_ids=probe.to(device)).logits.float().cpu()
    trainer.save_model(out)
    loaded = AutoModelForCausalLM.from_pretrained(out).to(device).eval()
    with torch.no_grad(), suppress(loaded, cfg, "c0"), torch.autocast(device.type, torch.bfloat16):
        loaded_logits = loaded(input_ids=probe.to(device)).logits.float().cpu()
    # both forwards compute in bf16 (FSDP2's parameter dtype vs autocast): agree to bf16 rounding
    diff = (sharded_logits - loaded_logits).abs().max().item() / sharded_logits.abs().max().item()
    saved = os.path.isfile(os.path.join(out, "model.safetensors")) and os.path.isfile(
        os.path.join(out, "anchor_config.json"))
    return {"sharded": sharded, "saved_full_weights": saved, "suppress_logits_rel_diff": round(diff, 5),
            "ok": bool(sharded and saved and diff < 0.05)}


def timed_arm(anchored: bool, size: dict[str, Any], dry_run: bool, out: str) -> tuple[float, float]:
    """(median step seconds after warm-up, peak bytes) of one arm trained on a fresh model."""
    from transformers import Trainer, TrainerCallback

    steps = size["warmup"] + size["steps"]
    marks: list[float] = []
    cuda = torch.cuda.is_available() and not dry_run

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

    gc.collect()  # the other arm's model and optimizer state
    if cuda:
        torch.cuda.empty_cache()
    if anchored:
        trainer = anchored_trainer(out, size, steps, dry_run)
    else:  # equal-length rows: what DataCollatorForLanguageModeling(mlm=False) makes of them, without a tokenizer
        rows = [{"input_ids": r["input_ids"]} for r in make_rows(size, size["batch"] * steps)]
        trainer = Trainer(model=make_model(size), args=training_args(out, size, steps, dry_run), train_dataset=rows,
                          data_collator=plain_collate)
    trainer.add_callback(StepClock())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() if cuda else 0.0
    times = [b - a for a, b in zip(marks, marks[1:])][size["warmup"] - 1:]
    del trainer
    return statistics.median(times), float(peak)


def plain_collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    ids = torch.tensor([r["input_ids"] for r in rows])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def part_bench(size: dict[str, Any], dry_run: bool, out: str) -> dict[str, Any]:
    """Anchored ÷ plain step time and peak memory, paired per repeat (arm order alternating)."""
    ratios, memory, plain_ms = [], [], []
    for r in range(size["repeats"]):
        arms = {}
        for anchored in ((False, True) if r % 2 == 0 else (True, False)):
            arms[anchored] = timed_arm(anchored, size, dry_run, out)
        ratios.append(arms[True][0] / arms[False][0])
        plain_ms.append(arms[False][0] * 1e3)
        if arms[False][1] > 0:
            memory.append(arms[True][1] / arms[False][1])
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
    tokens = size["batch"] * size["seq"]
    return {"step_time_ratio": round(statistics.median(ratios), 4), "step_time_ratio_upper_quartile": round(q[2], 4),
            "step_time_ratio_range": [round(min(ratios), 4), round(max(ratios), 4)],
            "peak_memory_ratio": round(statistics.median(memory), 4) if memory else None,
            "plain_step_ms": round(statistics.median(plain_ms), 2),
            "plain_tokens_per_s": round(tokens / statistics.median(plain_ms) * 1e3),
            "repeats": len(ratios), "ok": bool(dry_run or (statistics.median(ratios) <= 1.02 and q[2] <= 1.05
                                                          and memory and statistics.median(memory) <= 1.05))}


def run_part(name: str, dry_run: bool) -> dict[str, Any]:
    """Run one part here and return its numbers (called in a child process of `main`)."""
    if name == "fsdp2":  # a 1-process launch, as accelerate's launcher would set it up
        os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                           "MASTER_PORT": "29517", "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2",
                           "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP", "FSDP_RESHARD_AFTER_FORWARD": "true",
                           "FSDP_STATE_DICT_TYPE": "SHARDED_STATE_DICT"})
    size = sizes(dry_run)
    with tempfile.TemporaryDirectory() as out:
        return {"train": part_train, "fsdp2": part_fsdp2, "bench": part_bench}[name](size, dry_run, out)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.part is not None:
        print(json.dumps(run_part(args.part, args.dry_run)), flush=True)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print(json.dumps({"ok": False, "error": "no CUDA device; use --dry-run to check the script on CPU"}))
        return 1
    summary: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if not args.dry_run else "cpu (dry run)",
                               "torch": torch.__version__, "dry_run": args.dry_run, "shape": sizes(args.dry_run)}
    start = time.perf_counter()
    for part in PARTS:
        flags = ["-S"] if sys.flags.no_site else []  # a restricted interpreter (the test's) stays restricted
        cmd = [sys.executable, *flags, os.path.abspath(__file__), "--part", part]
        cmd += ["--dry-run"] if args.dry_run else []
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        lines = [line for line in done.stdout.splitlines() if line.startswith('{"')]  # Trainer's own logs use '
        summary[part] = json.loads(lines[-1]) if done.returncode == 0 and lines else \
            {"ok": False, "exit": done.returncode, "error": done.stderr[-1500:]}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["ok"] = all(summary[p].get("ok") for p in PARTS)
    line = json.dumps(summary)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_check.json"), "w", encoding="utf-8") as f:
            f.write(line + "\n")
    print(line)
    return 0 if summary["ok"] else 1


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU: checks the script, measures nothing")
    parser.add_argument("--out", default=None, help="also write the summary to OUT/gpu_check.json")
    parser.add_argument("--part", choices=PARTS, default=None, help="run one part in this process (internal)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per part")
    return parser


if __name__ == "__main__":
    sys.exit(main())
