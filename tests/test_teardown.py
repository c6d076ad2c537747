"""Ending a multi-process run cleanly (`anchor_hf.teardown`), and a user's own script that relies on it.

The release frees the DDP wrapper (whose C++ Reducer holds the gloo group) while the group is
still registered, then unregisters the group; the launched test runs a plain user script
(AnchorTrainer under `accelerate launch`, no anchor_hf CLI, no teardown call) once; the
20-run count is in docs/multiprocess.md (`scripts/check_clean_shutdown.sh 20 user`).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from types import SimpleNamespace

import torch
import torch.distributed as dist

from anchor_hf.teardown import release_process_group

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_release_frees_the_ddp_wrapper_and_unregisters_the_group(tmp_path):
    """After the release the trainer points at its plain model, the DDP wrapper is gone and no
    group is registered. Negative control: before it, the trainer keeps the wrapper alive."""
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    model = torch.nn.Linear(2, 2)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    trainer = SimpleNamespace(model=model, model_wrapped=ddp, accelerator=SimpleNamespace(_models=[ddp]))
    wrapper = weakref.ref(ddp)
    del ddp
    gc.collect()
    assert wrapper() is not None  # control: held by the trainer
    assert release_process_group(trainer) is True
    assert wrapper() is None and trainer.model_wrapped is model and trainer.accelerator._models == []
    assert not dist.is_initialized()
    assert release_process_group(trainer) is False  # nothing left to release


def test_a_users_own_script_under_accelerate_launch_exits_cleanly(tmp_path):
    """scripts/user_trainer_script.py: 2 processes, trains, saves, returns; nothing in it tears down."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = os.path.join(ROOT, "scripts", "user_trainer_script.py")
    assert "teardown" not in open(script).read().split('"""')[2]  # the code itself never calls it
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           os.path.join(ROOT, "recipes", "accelerate_configs", "cpu_2proc.yaml"), script,
                           "--max_steps", "4", "--output_dir", str(tmp_path / "out")],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not any(sign in done.stderr for sign in ("Aborted", "terminate called", "core dumped", "Traceback"))
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out" / "anchor_config.json").is_file()
