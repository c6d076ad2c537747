"""The accelerate configs under recipes/accelerate_configs parse into the launch each one promises.

The 2-process CPU configs run here (DDP: tests/test_multiprocess.py, FSDP2: tests/test_fsdp.py,
ZeRO-2/3: tests/test_deepspeed.py); the GPU ones are checked as far as accelerate goes without
a GPU: the launcher it picks, the processes, the precision, and the environment it hands the
training processes (FSDP2 down to the plugin).
"""

from __future__ import annotations

import os
import re

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "recipes", "accelerate_configs")
NAMES = ["cpu_2proc", "fsdp2_cpu_2proc", "deepspeed_zero2_cpu_2proc", "deepspeed_zero3_cpu_2proc", "single_gpu",
         "multi_gpu", "fsdp2", "deepspeed_zero2", "deepspeed_zero3"]
LAUNCHED = ["-m", "anchor_hf.cli", "train"]  # the installed module: no script from a checkout


def launch_args(name: str, path: str | None = None):
    args = launch_command_parser().parse_args(["--config_file", path or os.path.join(CONFIGS, f"{name}.yaml"),
                                               *LAUNCHED])
    args, defaults, _ = _validate_launch_command(args)
    return args, defaults


def test_every_config_is_listed_with_its_launch_line_in_the_recipe_readme():
    readme = open(os.path.join(ROOT, "recipes", "README.md")).read()
    assert sorted(f[:-5] for f in os.listdir(CONFIGS) if f.endswith(".yaml")) == sorted(NAMES)
    for name in NAMES:
        line = f"--config_file recipes/accelerate_configs/{name}.yaml"
        assert line in readme, name
        assert line in open(os.path.join(CONFIGS, f"{name}.yaml")).read(), name  # and in its own header


def test_launch_lines_run_the_installed_module_not_a_checkout_script():
    """Every `accelerate launch` / `torchrun` line in the recipe README and the config headers runs
    `-m anchor_hf.cli train`, which works from an installed wheel; a `scripts/...py` path needs a checkout."""
    texts = {"recipes/README.md": open(os.path.join(ROOT, "recipes", "README.md")).read()}
    texts.update({f"{name}.yaml": open(os.path.join(CONFIGS, f"{name}.yaml")).read() for name in NAMES})
    for where, text in texts.items():
        text = re.sub(r"\\\n#?", " ", text)  # a launch line may go on in the next (comment) line
        lines = re.findall(r"(?:accelerate launch|torchrun) --[^\n]*", text)
        assert lines, where
        for line in lines:
            assert "-m anchor_hf.cli train" in line and "scripts/" not in line, (where, line)
    args, _ = launch_args("cpu_2proc")
    assert args.module and args.training_script == "anchor_hf.cli" and args.training_script_args[0] == "train"


def test_cpu_config_starts_two_processes_through_torchrun(tmp_path):
    args, _ = launch_args("cpu_2proc")
    assert args.multi_gpu and not args.cpu and args.num_processes == 2 and args.mixed_precision == "no"
    # negative control: accelerate's MULTI_CPU type would hand the script to the one-process launcher
    text = open(os.path.join(CONFIGS, "cpu_2proc.yaml")).read().replace("distributed_type: MULTI_GPU",
                                                                        "distributed_type: MULTI_CPU")
    (tmp_path / "multi_cpu.yaml").write_text(text)
    other, _ = launch_args("multi_cpu", str(tmp_path / "multi_cpu.yaml"))
    assert not other.multi_gpu


@pytest.mark.parametrize("name, backend", [("fsdp2_cpu_2proc", "FSDP"), ("deepspeed_zero2_cpu_2proc", "DEEPSPEED"),
                                           ("deepspeed_zero3_cpu_2proc", "DEEPSPEED")])
def test_sharded_cpu_configs_start_two_float32_processes(name, backend):
    config = load_config_from_file(os.path.join(CONFIGS, f"{name}.yaml"))
    assert config.distributed_type.value == backend
    args, _ = launch_args(name)
    assert not args.cpu and args.num_processes == 2 and args.mixed_precision in ("no", None)


@pytest.mark.parametrize("name, backend, processes", [
    ("single_gpu", "NO", 1), ("multi_gpu", "MULTI_GPU", 8), ("fsdp2", "FSDP", 8),
    ("deepspeed_zero2", "DEEPSPEED", 8), ("deepspeed_zero3", "DEEPSPEED", 8)])
def test_gpu_configs_pick_their_backend_bf16_and_no_cpu(name, backend, processes):
    config = load_config_from_file(os.path.join(CONFIGS, f"{name}.yaml"))
    assert config.distributed_type.value == backend and config.compute_environment.value == "LOCAL_MACHINE"
    args, _ = launch_args(name)
    assert not args.cpu and args.num_processes == processes and args.mixed_precision == "bf16"
    assert args.use_fsdp == (backend == "FSDP") and args.use_deepspeed == (backend == "DEEPSPEED")


def test_fsdp2_config_builds_an_fsdp2_plugin_that_saves_full_weights(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import StateDictType

    args, _ = launch_args("fsdp2")
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.state_dict_type == StateDictType.FULL_STATE_DICT
    assert plugin.auto_wrap_policy is not None and plugin.activation_checkpointing is False


@pytest.mark.parametrize("name, stage", [("deepspeed_zero2", "2"), ("deepspeed_zero3", "3")])
def test_deepspeed_configs_hand_the_zero_stage_to_the_processes(name, stage):
    args, defaults = launch_args(name)
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as accelerate's launcher
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == stage
    if stage == "3":  # full 16-bit weights gathered on save, so the saved folder can be shared and intervened on
        assert env["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"
        assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
