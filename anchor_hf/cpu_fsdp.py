"""FSDP2 on CPU processes: let accelerate run its own FSDP2 path where it would fall back to DDP.

An FSDP launch (`accelerate launch --config_file recipes/accelerate_configs/fsdp2_cpu_2proc.yaml`)
becomes `DistributedType.FSDP` in accelerate (checked on 1.15) only when the processes run
on an accelerator type (`MULTI_GPU`, `MULTI_NPU`, `MULTI_XPU`, ...). Processes on CPU
(`TrainingArguments(use_cpu=True)`, gloo) are `MULTI_CPU`, the FSDP plugin is dropped, and
the model is wrapped in DDP: the run trains, unsharded, without a word (measured: plain
`Parameter`s, `distributed_type == MULTI_CPU`). `torch.distributed.fsdp.fully_shard` itself
runs on CPU with gloo, so the one missing piece is accelerate's gate. `enable_fsdp_on_cpu`
presents the process state as a multi-device one while the Trainer builds its Accelerator;
accelerate then selects FSDP2 and runs its own code unchanged: `fully_shard` of every
decoder block over a CPU device mesh, full or sharded state dicts, activation checkpointing,
distributed checkpoints. That is the code path of a GPU FSDP2 run, on gloo instead of NCCL,
which is what lets the CPU tests stand for it (docs/multiprocess.md).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from .errors import AnchorConfigError


def fsdp_requested() -> bool:
    """Whether the launcher asked for FSDP (`accelerate launch` with an FSDP config sets this)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def enable_fsdp_on_cpu(training_args: Any) -> bool:
    """Make the next Accelerator (the Trainer's) use FSDP on CPU processes; returns whether it had to.

    Call it after `TrainingArguments` exist and before the Trainer is built, in every process.
    It does nothing (returns False) unless the launch asked for FSDP and the processes form a
    CPU group (accelerate's `MULTI_CPU`: launched, any number of processes); on GPUs
    accelerate selects FSDP itself.

    Raises:
        AnchorConfigError: an Accelerator was built already, so FSDP can no longer be selected.
    """
    if not fsdp_requested():
        return False
    _ = training_args.world_size  # reading it sets up accelerate's process state
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    if PartialState().distributed_type != DistributedType.MULTI_CPU:
        return False
    if AcceleratorState._shared_state:
        raise AnchorConfigError("enable_fsdp_on_cpu must run before the Trainer (or any Accelerator) is built: "
                                "call it right after creating TrainingArguments")
    # accelerate's AcceleratorState turns a multi-device state with an FSDP launch into FSDP and
    # writes FSDP back into this shared state; the CPU device and the gloo group stay as they are.
    PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU
    return True


def warn_if_fsdp_dropped(trainer: Any) -> None:
    """Warn when the launch asked for FSDP but the trainer's Accelerator set up something else."""
    if fsdp_requested() and not getattr(trainer, "is_fsdp_enabled", False):
        warnings.warn("the launch asked for FSDP, but accelerate set up "
                      f"{trainer.accelerator.distributed_type} (it ignores FSDP on CPU processes), so the model is not "
                      "sharded; call anchor_hf.cpu_fsdp.enable_fsdp_on_cpu(training_args) before building the trainer, "
                      "as `anchor-hf train` does", stacklevel=3)
