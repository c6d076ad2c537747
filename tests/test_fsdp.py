"""FSDP2 on two CPU processes trains like one process, resumes after `kill -9`, and saves full weights.

Launched through accelerate with `recipes/accelerate_configs/fsdp2_cpu_2proc.yaml`: the
training entry point lets accelerate run its own FSDP2 code on CPU (`anchor_hf.cpu_fsdp`),
so parameters are DTensors sharded over the two processes, checkpoints are sharded, and
`save_model` gathers full weights. Three launches (each ~20-45 s on 2 shared cores): one
uninterrupted run that also intervenes on the still-sharded model, and one killed with
SIGKILL while writing its second checkpoint then resumed, both with activation
checkpointing on. Tolerances: `launch_utils` (as for DDP, reasoned in docs/multiprocess.md).
"""

from __future__ import annotations

import os

import pytest
import torch

import anchor_hf.experiments  # noqa: F401  registers the synthetic dataset of the recipe
from anchor_hf.commands.train import run
from launch_utils import (ABORTS, COMMON, RECIPE, STEPS, WEIGHT_TOL, assert_same_steps, interventions_of, launch,
                          max_weight_diff, steps_of)

CONFIG = "fsdp2_cpu_2proc.yaml"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    run(["--config", RECIPE, *COMMON, "--per_device_train_batch_size", "8", "--save_strategy", "no",
         "--output_dir", str(out)])
    return out


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    return out, launch(CONFIG, out)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """Activation checkpointing on; SIGKILL while checkpoint-4 is half written; then resumed from `last`."""
    out = tmp_path_factory.mktemp("fsdp_killed")
    checkpointing = ("--fsdp_activation_checkpointing", "true")
    killed = launch(CONFIG, out, kill_step=STEPS, accelerate_flags=checkpointing)
    listing = sorted(os.listdir(out))
    resumed = launch(CONFIG, out, accelerate_flags=checkpointing, extra=("--resume_from_checkpoint", "last"))
    return out, killed, listing, resumed


def test_fsdp2_shards_the_model_writes_sharded_checkpoints_and_exits_cleanly(sharded):
    out, done = sharded
    assert done.returncode == 0, done.stderr[-3000:]
    assert not any(sign in done.stderr for sign in (*ABORTS, "Traceback"))
    assert interventions_of(out)["sharded"]  # parameters were DTensors: accelerate did not fall back to DDP
    files = os.listdir(os.path.join(out, "checkpoint-2"))
    for name in ("pytorch_model_fsdp_0", "optimizer_0", "anchor_state_0.json", "anchor_state_1.json"):
        assert name in files, name
    assert "model.safetensors" not in files  # each process wrote its own shard, nobody gathered


def test_fsdp2_takes_the_steps_of_one_process_on_the_same_global_batch(sharded, one_process):
    """Per-step loss and anchor terms (the logged, process-reduced values) and final weights match."""
    (out, done), one = sharded, one_process
    assert done.returncode == 0, done.stderr[-3000:]
    assert [h["step"] for h in steps_of(out)] == list(range(1, STEPS + 1))
    assert_same_steps(steps_of(one), steps_of(out))
    assert max_weight_diff(one, out) < WEIGHT_TOL
    # negative control: the anchor term is non-zero, so matching it is not trivial
    assert all(step["anchor/marked/attract"] > 0.01 for step in steps_of(one) if step["anchor/marked/labels"] > 0)


def test_saved_fsdp2_model_loads_in_one_process_and_gives_the_interventions_of_the_sharded_one(sharded):
    """`save_model` wrote full safetensors + anchor_config.json; suppress/steer on the loaded copy
    reproduce what they gave on the model while it was still sharded over two processes."""
    from sharded_run import saved_edits

    out, done = sharded
    assert done.returncode == 0, done.stderr[-3000:]
    found = interventions_of(out)
    got, cfg = saved_edits(out)
    assert cfg.resolved_layers == ["model.layers.0", "model.layers.1"]
    for key, logits in got.items():
        assert (logits - torch.tensor(found[key])).abs().max().item() < 1e-5, key
    assert (got["suppress"] - got["plain"]).abs().max().item() > 1e-4  # control: the edits change the output
    assert (got["steer"] - got["plain"]).abs().max().item() > 1e-4


def test_ablate_refuses_the_model_while_fsdp2_still_shards_it(sharded):
    error = interventions_of(sharded[0])["ablate_error"]
    assert error is not None and error.startswith("AnchorInterventionError")
    assert "sharded across processes" in error and "FSDP2 DTensor" in error and "save_model" in error


def test_fsdp2_resumed_after_kill_9_ends_with_the_uninterrupted_weights(killed_and_resumed, sharded):
    """Killed (SIGKILL on rank 0) while writing checkpoint-4, resumed from checkpoint-2, with activation
    checkpointing on: the same logged steps and final weights as the uninterrupted run without it."""
    out, killed, listing, resumed = killed_and_resumed
    full, _ = sharded
    assert killed.returncode != 0 and "Signal 9 (SIGKILL) received" in killed.stderr, killed.stderr[-2000:]
    assert "checkpoint-2" in listing and "checkpoint-4" not in listing  # the half-written one never got its name
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not any(sign in resumed.stderr for sign in ABORTS)
    assert interventions_of(out)["checkpointed_blocks"] == 2  # activation checkpointing wrapped both blocks
    assert_same_steps(steps_of(full), steps_of(out), first=2)
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
        with pytest.raises(AnchorInterventionError, match=r"sharded across processes \('.*' is a FSDP2 DTensor"):
            ablate(model, cfg, "red")
        after = {n: p.full_tensor() for n, p in model.named_parameters()}
    finally:
        dist.destroy_process_group()
    assert all(torch.equal(before[n], after[n]) for n in before)  # refused before editing anything
    ablate(make_model("llama"), cfg, "red")  # control: the same model unsharded is ablated
