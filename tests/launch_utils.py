"""Shared by the launched multi-process tests (FSDP2, DeepSpeed): launch, read the log, compare weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "tiny_llama_synthetic.yaml")
CONFIGS = os.path.join(ROOT, "recipes", "accelerate_configs")
HELPER = os.path.join(ROOT, "tests", "sharded_run.py")
STEPS = 4
# Exact labels (probability 0 or 1) so the draws cannot depend on how the batch is split.
COMMON = ["--max_steps", str(STEPS), "--logging_steps", "1", "--dataset_args.label_rate", "1.0",
          "--disable_tqdm", "true", "--report_to", "none"]
TERMS = ("loss", "anchor/loss", "anchor/marked/attract", "anchor/marked/repel", "anchor/marked/labels")
# As for DDP (docs/multiprocess.md): float32 sums in another order differ by ~1e-7 relative per
# step, and Adam's first steps pass that on to the weights at about lr·1e-6.
LOSS_TOL, WEIGHT_TOL = 1e-5, 1e-5
ABORTS = ("Aborted", "terminate called", "core dumped")


def launch(config: str, out, recipe: str = RECIPE, kill_step: int = 0, accelerate_flags: tuple[str, ...] = (),
           extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`tests/sharded_run.py KILL_STEP` on 2 processes (per process 4, global 8), checkpoints every 2 steps."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", os.path.join(CONFIGS, config),
           *accelerate_flags, HELPER, str(kill_step), "--config", recipe, *COMMON, "--per_device_train_batch_size",
           "4", "--save_strategy", "steps", "--save_steps", "2", "--output_dir", str(out), *extra]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)


def steps_of(out_dir) -> list[dict]:
    with open(os.path.join(out_dir, "trainer_state.json"), encoding="utf-8") as f:
        return [h for h in json.load(f)["log_history"] if "anchor/loss" in h]


def interventions_of(out_dir) -> dict:
    with open(os.path.join(out_dir, "interventions.json"), encoding="utf-8") as f:
        return json.load(f)


def max_weight_diff(dir_a, dir_b) -> float:
    """Largest absolute difference of the saved weights; both must hold the same full tensors."""
    wa = load_file(os.path.join(dir_a, "model.safetensors"))
    wb = load_file(os.path.join(dir_b, "model.safetensors"))
    assert sorted(wa) == sorted(wb) and all(wa[k].shape == wb[k].shape for k in wa)
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def assert_same_steps(reference: list[dict], other: list[dict], first: int = 0) -> None:
    """Logged loss and anchor terms of steps `first+1..` agree within the tolerance."""
    assert [h["step"] for h in other] == [h["step"] for h in reference]
    for a, b in zip(reference[first:], other[first:]):
        for key in TERMS:
            assert b[key] == pytest_approx(a[key]), (a["step"], key, a[key], b[key])


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, rel=LOSS_TOL, abs=1e-6)
