"""Imported once by the benchmark's fork server: pay every lazy import and one-time set-up before measuring.

Trains the micro model a few steps with a plain `Trainer`, an `AnchorTrainer` and the
tuple-capture variant (under the memory profiler too), and imports PEFT, so that no
measured child spends memory or time loading code. Children forked afterwards start
from this state.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import peft  # noqa: E402,F401
import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from .arm import ArmSpec, run_alone, run_group  # noqa: E402

torch.set_num_threads(1)
hf_logging.disable_progress_bar()  # weight-loading bars would bury the benchmark's progress lines
_micro = ArmSpec(model="micro", batch=4, seq_len=16, steps=1, warmup=1)
run_group([_micro, ArmSpec(**{**_micro.to_dict(), "concepts": 1, "separation": True}),
           ArmSpec(**{**_micro.to_dict(), "concepts": 1, "capture": "hidden_states"})], rounds=1)
run_alone(_micro)
