"""DeepSpeed ZeRO-2 and ZeRO-3 on two CPU processes train like one process, resume after `kill -9`, save full weights.

DeepSpeed runs here through its CPU accelerator on torch's gloo group
(`recipes/accelerate_configs/deepspeed_zero{2,3}_cpu_2proc.yaml`). Every run starts from the
same saved weights: under ZeRO-3 a model built from a config is initialized partition by
partition (`deepspeed.zero.Init`) and gets other random weights than a 1-process build.
Per stage two launches (~30-60 s each on 2 shared cores), both with activation
checkpointing on: one killed with SIGKILL while writing checkpoint-4, one resumed from
checkpoint-2 that then intervenes on the model as DeepSpeed still holds it. Skipped where
deepspeed is not installed. Tolerances: `launch_utils` (as for DDP, docs/multiprocess.md).
"""

from __future__ import annotations

import os

import pytest
import torch
import yaml

import anchor_hf.experiments  # noqa: F401  registers the synthetic dataset of the recipe
from anchor_hf.commands.train import build_model, run
from anchor_hf.experiments.synthetic import synthetic_tokenizer
from anchor_hf.train_args import parse_train_args
from launch_utils import (ABORTS, COMMON, RECIPE, STEPS, WEIGHT_TOL, assert_same_steps, interventions_of, launch,
                          max_weight_diff, steps_of)

pytest.importorskip("deepspeed")
CHECKPOINTING = ("--activation_checkpointing", "true", "--activation_checkpointing_kwargs", '{"use_reentrant": false}')


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """The tiny recipe's model saved once, a recipe that loads it, and the 1-process run from it."""
    root = tmp_path_factory.mktemp("start")
    model_args, _, _, _ = parse_train_args(["--config", RECIPE, "--output_dir", str(root / "unused")])
    torch.manual_seed(0)
    tokenizer = synthetic_tokenizer(64)  # the recipe's vocabulary
    build_model(model_args, tokenizer).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    with open(RECIPE, encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    for key in ("model_type", "model_config"):
        recipe.pop(key)
    recipe["model_name_or_path"] = str(root / "model")
    with open(root / "recipe.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe, f)
    run(["--config", str(root / "recipe.yaml"), *COMMON, "--per_device_train_batch_size", "8",
         "--save_strategy", "no", "--output_dir", str(root / "one")])
    return root / "recipe.yaml", root / "one"


@pytest.fixture(scope="module", params=[2, 3], ids=["zero2", "zero3"])
def zero(request, start, tmp_path_factory):
    """Killed while writing checkpoint-4, then resumed from `last` (activation checkpointing on)."""
    recipe, one = start
    config = f"deepspeed_zero{request.param}_cpu_2proc.yaml"
    out = tmp_path_factory.mktemp(f"zero{request.param}")
    killed = launch(config, out, recipe=str(recipe), kill_step=STEPS, extra=CHECKPOINTING)
    listing = sorted(os.listdir(out))
    checkpoint = sorted(os.listdir(out / "checkpoint-2")) if "checkpoint-2" in listing else []
    resumed = launch(config, out, recipe=str(recipe), extra=(*CHECKPOINTING, "--resume_from_checkpoint", "last"))
    return {"stage": request.param, "out": out, "one": one, "killed": killed, "listing": listing,
            "checkpoint": checkpoint, "resumed": resumed}


def test_zero_was_killed_while_writing_a_checkpoint_and_left_sharded_ones(zero):
    killed = zero["killed"]
    assert killed.returncode != 0 and "Signal 9 (SIGKILL) received" in killed.stderr, killed.stderr[-2000:]
    assert "checkpoint-2" in zero["listing"] and "checkpoint-4" not in zero["listing"]
    shards = sorted(os.listdir(zero["out"] / "checkpoint-2" / "global_step2"))
    optimizer_shards = [s for s in shards if "optim_states" in s]  # one per process: each wrote its own
    assert len(optimizer_shards) == 2 and any("rank_0" in s for s in optimizer_shards) \
        and any("rank_1" in s for s in optimizer_shards), shards


def test_zero_resumed_after_kill_9_takes_the_steps_of_one_process(zero):
    """Steps 1-2 (logged by the killed run, kept in checkpoint-2) and 3-4 (the resumed run) match the
    1-process run on the same global batch, and so do the final weights."""
    resumed = zero["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not any(sign in resumed.stderr for sign in ABORTS)
    assert interventions_of(zero["out"])["checkpointed_blocks"] > 0  # activation checkpointing was on
    assert [h["step"] for h in steps_of(zero["out"])] == list(range(1, STEPS + 1))
    assert_same_steps(steps_of(zero["one"]), steps_of(zero["out"]))
    assert max_weight_diff(zero["one"], zero["out"]) < WEIGHT_TOL


def test_saved_zero_model_loads_in_one_process_and_gives_the_interventions_of_the_wrapped_one(zero):
    """Full safetensors + anchor_config.json; suppress, steer and (ZeRO-2) ablate on the loaded copy
    reproduce what they gave on the model DeepSpeed held; ZeRO-3's partitioned model refuses ablate."""
    from sharded_run import saved_edits

    assert zero["resumed"].returncode == 0, zero["resumed"].stderr[-3000:]
    found = interventions_of(zero["out"])
    assert found["sharded"] == (zero["stage"] == 3)
    got, _ = saved_edits(zero["out"], with_ablate=True)
    if zero["stage"] == 3:
        assert found["ablate_error"].startswith("AnchorInterventionError")
        assert "DeepSpeed ZeRO-3 partition" in found["ablate_error"] and "save_model" in found["ablate_error"]
        del got["ablate"]
    else:
        assert found["ablate_error"] is None
    for key, logits in got.items():
        assert (logits - torch.tensor(found[key])).abs().max().item() < 1e-5, key
    assert (got["suppress"] - got["plain"]).abs().max().item() > 1e-4  # control: the edits change the output
