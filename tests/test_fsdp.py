"""FSDP2 on two CPU processes trains like one process, resumes after `kill -9`, and saves full weights.

Launched through accelerate with `recipes/accelerate_configs/fsdp2_cpu_2proc.yaml`: the
training entry point lets accelerate run its own FSDP2 code on CPU (`anchor_hf.cpu_fsdp`),
so parameters are DTensors sharded over the two processes, checkpoints are sharded, and
`save_model` gathers full weights. Three launches (each ~20-45 s on 2 shared cores): one
uninterrupted run that also intervenes on the still-sharded model, and one killed with
SIGKILL while writing its second checkpoint then resumed, both with activation
checkpointing on. Tolerances are those of the DDP comparison (tests/test_multiprocess.py,
reasoned in docs/multiprocess.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from anchor_hf.commands.train import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "tiny_llama_synthetic.yaml")
FSDP_CPU = os.path.join(ROOT, "recipes", "accelerate_configs", "fsdp2_cpu_2proc.yaml")
HELPER = os.path.join(ROOT, "tests", "sharded_run.py")
STEPS = 4
# Exact labels (probability 0 or 1) so the draws cannot depend on how the batch is split.
COMMON = ["--config", RECIPE, "--max_steps", str(STEPS), "--logging_steps", "1", "--synthetic_label_rate", "1.0",
          "--disable_tqdm", "true", "--report_to", "none"]
TERMS = ("loss", "anchor/loss", "anchor/marked/attract", "anchor/marked/repel", "anchor/marked/labels")
LOSS_TOL, WEIGHT_TOL = 1e-5, 1e-5  # as for DDP: float32 sums in another order, passed on by Adam at ~lr·1e-6
ABORTS = ("Aborted", "terminate called", "core dumped")


def launch(out, kill_step: int = 0, *accelerate_flags: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`tests/sharded_run.py KILL_STEP` on 2 processes (per process 4, global 8), checkpoints every 2 steps."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", FSDP_CPU, *accelerate_flags,
           HELPER, str(kill_step), *COMMON, "--per_device_train_batch_size", "4", "--save_strategy", "steps",
           "--save_steps", "2", "--output_dir", str(out), *extra]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)


def steps_of(out_dir) -> list[dict]:
    with open(os.path.join(out_dir, "trainer_state.json"), encoding="utf-8") as f:
        return [h for h in json.load(f)["log_history"] if "anchor/loss" in h]


def max_weight_diff(dir_a, dir_b) -> float:
    wa = load_file(os.path.join(dir_a, "model.safetensors"))
    wb = load_file(os.path.join(dir_b, "model.safetensors"))
    assert sorted(wa) == sorted(wb) and all(wa[k].shape == wb[k].shape for k in wa)
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    run([*COMMON, "--per_device_train_batch_size", "8", "--save_strategy", "no", "--output_dir", str(out)])
    return out


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    return out, launch(out)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """Activation checkpointing on; SIGKILL while checkpoint-4 is half written; then resumed from `last`."""
    out = tmp_path_factory.mktemp("fsdp_killed")
    checkpointing = ("--fsdp_activation_checkpointing", "true")
    killed = launch(out, STEPS, *checkpointing)
    listing = sorted(os.listdir(out))
    resumed = launch(out, 0, *checkpointing, extra=("--resume_from_checkpoint", "last"))
    return out, killed, listing, resumed


def test_fsdp2_shards_the_model_writes_sharded_checkpoints_and_exits_cleanly(sharded):
    out, done = sharded
    assert done.returncode == 0, done.stderr[-3000:]
    assert not any(sign in done.stderr for sign in (*ABORTS, "Traceback"))
    with open(os.path.join(out, "interventions.json"), encoding="utf-8") as f:
        assert json.load(f)["sharded"]  # parameters were DTensors: accelerate did not fall back to DDP
    files = os.listdir(os.path.join(out, "checkpoint-2"))
    for name in ("pytorch_model_fsdp_0", "optimizer_0", "anchor_state_0.json", "anchor_state_1.json"):
        assert name in files, name
    assert "model.safetensors" not in files  # each process wrote its own shard, nobody gathered


def test_fsdp2_takes_the_steps_of_one_process_on_the_same_global_batch(sharded, one_process):
    """Per-step loss and anchor terms (the logged, process-reduced values) and final weights match."""
    (out, done), one = sharded, one_process
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = steps_of(one), steps_of(out)
    assert [h["step"] for h in a] == [h["step"] for h in b] == list(range(1, STEPS + 1))
    for step_a, step_b in zip(a, b):
        for key in TERMS:
            assert step_b[key] == pytest.approx(step_a[key], rel=LOSS_TOL, abs=1e-6), (step_a["step"], key)
    assert max_weight_diff(one, out) < WEIGHT_TOL
    # negative control: the anchor term is non-zero, so matching it is not trivial
    assert all(step["anchor/marked/attract"] > 0.01 for step in a if step["anchor/marked/labels"] > 0)


def test_saved_fsdp2_model_loads_in_one_process_and_gives_the_interventions_of_the_sharded_one(sharded):
    """`save_model` wrote full safetensors + anchor_config.json; suppress/steer on the loaded copy
    reproduce what they gave on the model while it was still sharded over two processes."""
    from transformers import AutoModelForCausalLM

    from anchor_hf import AnchorConfig, steer, suppress
    from sharded_run import PROBE_IDS

    out, done = sharded
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(out, "interventions.json"), encoding="utf-8") as f:
        found = json.load(f)
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    cfg = AnchorConfig.from_pretrained(str(out))
    assert cfg.resolved_layers == ["model.layers.0", "model.layers.1"]
    with torch.no_grad():
        got = {"plain": model(input_ids=PROBE_IDS).logits}
        with suppress(model, cfg, "marked"):
            got["suppress"] = model(input_ids=PROBE_IDS).logits
        with steer(model, cfg, "marked", 2.0):
            got["steer"] = model(input_ids=PROBE_IDS).logits
    for key, logits in got.items():
        assert (logits - torch.tensor(found[key])).abs().max().item() < 1e-5, key
    assert (got["suppress"] - got["plain"]).abs().max().item() > 1e-4  # control: the edits change the output
    assert (got["steer"] - got["plain"]).abs().max().item() > 1e-4


def test_ablate_refuses_the_model_while_fsdp2_still_shards_it(sharded):
    out, _ = sharded
    with open(os.path.join(out, "interventions.json"), encoding="utf-8") as f:
        error = json.load(f)["ablate_error"]
    assert error is not None and error.startswith("AnchorInterventionError")
    assert "sharded across processes" in error and "save_model" in error


def test_fsdp2_resumed_after_kill_9_ends_with_the_uninterrupted_weights(killed_and_resumed, sharded):
    """Killed (SIGKILL on rank 0) while writing checkpoint-4, resumed from checkpoint-2, with activation
    checkpointing on: the same logged steps and final weights as the uninterrupted run without it."""
    out, killed, listing, resumed = killed_and_resumed
    full, _ = sharded
    assert killed.returncode != 0 and "Signal 9 (SIGKILL) received" in killed.stderr, killed.stderr[-2000:]
    assert "checkpoint-2" in listing and "checkpoint-4" not in listing  # the half-written one never got its name
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not any(sign in resumed.stderr for sign in ABORTS)
    with open(os.path.join(out, "interventions.json"), encoding="utf-8") as f:
        assert json.load(f)["checkpointed_blocks"] == 2  # activation checkpointing wrapped both blocks
    a, b = steps_of(full), steps_of(out)
    assert [h["step"] for h in b] == list(range(1, STEPS + 1))
    for step_a, step_b in zip(a[2:], b[2:]):
        for key in TERMS:
            assert step_b[key] == pytest.approx(step_a[key], rel=LOSS_TOL, abs=1e-6), (step_a["step"], key)
    assert max_weight_diff(full, out) < 1e-6


def test_ablate_refuses_a_fully_sharded_model_in_process(tmp_path):
    """The same refusal on a 1-process `fully_shard` model, with the message checked (no launch needed)."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    from anchor_hf import AnchorConfig, ablate
    from anchor_hf.interventions import AnchorInterventionError
    from tiny import make_model

    cfg = AnchorConfig(layers=[0, 1], concepts=[{"name": "red", "dims": [0]}])
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        model = make_model("llama")
        before = {n: p.full_tensor().clone() for n, p in fully_shard(model).named_parameters()}
        with pytest.raises(AnchorInterventionError, match=r"sharded across processes \(FSDP2"):
            ablate(model, cfg, "red")
        after = {n: p.full_tensor() for n, p in model.named_parameters()}
    finally:
        dist.destroy_process_group()
    assert all(torch.equal(before[n], after[n]) for n in before)  # refused before editing anything
    ablate(make_model("llama"), cfg, "red")  # control: the same model unsharded is ablated
