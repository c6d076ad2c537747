"""Train the tiny recipe on 1 process and on 2 processes under every backend; compare the weights.

    scripts/check_distributed.sh [--out DIR] [--steps 4]     # a few minutes on 2 CPU cores

Runs, one after the other, 4 steps of `recipes/tiny_llama_synthetic.yaml` with exact labels
(probability 1, so draws cannot depend on the split) on a global batch of 8: 1 process × 8,
then 2 processes × 4 through `accelerate launch` with DDP (`cpu_2proc`), FSDP2
(`fsdp2_cpu_2proc`) and, where deepspeed is installed, ZeRO-2 and ZeRO-3. Every run starts
from the same saved weights (under ZeRO-3 a model built from a config would be initialized
partition by partition, with other random values). Prints one JSON line: per backend the
largest absolute weight difference to the 1-process run, whether the run exited cleanly
(exit code 0, no abort in its output), and `ok` (all clean, every difference ≤ 1e-5, the
tolerance reasoned in docs/multiprocess.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "recipes", "accelerate_configs")
BACKENDS = {"ddp": "cpu_2proc.yaml", "fsdp2": "fsdp2_cpu_2proc.yaml", "zero2": "deepspeed_zero2_cpu_2proc.yaml",
            "zero3": "deepspeed_zero3_cpu_2proc.yaml"}
TOLERANCE = 1e-5
ABORTS = ("Aborted", "terminate called", "core dumped", "SIGABRT")


def save_start(folder: str) -> str:
    """Save the recipe's freshly built model (and tokenizer) once; returns a recipe that loads it."""
    import torch
    import yaml

    from anchor_hf.commands.train import build_model
    from anchor_hf.experiments.synthetic import synthetic_tokenizer
    from anchor_hf.train_args import parse_train_args

    recipe_path = os.path.join(ROOT, "recipes", "tiny_llama_synthetic.yaml")
    model_args, _, _, _ = parse_train_args(["--config", recipe_path, "--output_dir", os.path.join(folder, "unused")])
    with open(recipe_path, encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    torch.manual_seed(0)
    tokenizer = synthetic_tokenizer(recipe["dataset_args"]["vocab_size"])
    model = build_model(model_args, tokenizer)
    model.save_pretrained(os.path.join(folder, "start"))
    tokenizer.save_pretrained(os.path.join(folder, "start"))
    for key in ("model_type", "model_config"):
        recipe.pop(key)
    recipe["model_name_or_path"] = os.path.join(folder, "start")
    path = os.path.join(folder, "recipe.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe, f)
    return path


def train(name: str, recipe: str, out: str, steps: int) -> dict:
    """One run (`one`: a plain process; else a 2-process accelerate launch); returns its exit status."""
    common = ["--config", recipe, "--max_steps", str(steps), "--logging_steps", "1", "--save_strategy", "no",
              "--dataset_args.label_rate", "1.0", "--disable_tqdm", "true", "--report_to", "none",
              "--output_dir", out]
    if name == "one":
        cmd = [sys.executable, "-m", "anchor_hf.cli", "train", *common, "--per_device_train_batch_size", "8"]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               os.path.join(CONFIGS, BACKENDS[name]), "-m", "anchor_hf.cli", "train", *common,
               "--per_device_train_batch_size", "4"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"exit_clean": False, "exit_code": "timeout (600 s)"}
    output = done.stdout + done.stderr
    clean = done.returncode == 0 and not any(sign in output for sign in ABORTS)
    result = {"exit_clean": clean, "seconds": round(time.perf_counter() - start, 1)}
    if not clean:
        result.update(exit_code=done.returncode, tail=output[-1500:])
    return result


def max_weight_diff(dir_a: str, dir_b: str) -> float | None:
    from safetensors.torch import load_file

    paths = [os.path.join(d, "model.safetensors") for d in (dir_a, dir_b)]
    if not all(os.path.isfile(p) for p in paths):
        return None
    wa, wb = load_file(paths[0]), load_file(paths[1])
    if sorted(wa) != sorted(wb) or any(wa[k].shape != wb[k].shape for k in wa):
        return float("inf")
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or tmp
        os.makedirs(work, exist_ok=True)
        recipe = save_start(work)
        summary: dict = {"steps": args.steps, "tolerance": TOLERANCE,
                         "one": train("one", recipe, os.path.join(work, "one"), args.steps)}
        for name in BACKENDS:
            if name.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
                summary[name] = {"skipped": "deepspeed is not installed (pip install deepspeed)"}
                continue
            result = train(name, recipe, os.path.join(work, name), args.steps)
            result["max_abs_weight_diff"] = max_weight_diff(os.path.join(work, "one"), os.path.join(work, name))
            summary[name] = result
        ran = [summary[n] for n in ("one", *BACKENDS) if "skipped" not in summary[n]]
        summary["ok"] = all(r["exit_clean"] for r in ran) and all(
            r["max_abs_weight_diff"] is not None and r["max_abs_weight_diff"] <= TOLERANCE
            for r in ran if "max_abs_weight_diff" in r)
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps of every run (default 4)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
