"""What anchoring costs over a plain `Trainer`: step time, peak memory and `generate()` overhead.

    anchor-hf bench --out bench-out        # or: python scripts/bench_overhead.py --out bench-out

`setups` builds the models, data and anchor configs; `arm` trains and measures one arm;
`runner` runs arms in forked children, alternating, and forms ratios; `generation` times
intervention hooks under `generate()`; `suite` chooses the tables and writes the files;
`report` renders them as Markdown. Results and the machine they came from:
docs/benchmarks.md. Only the names below are defined here, so `anchor-hf --help` does
not import torch.
"""

from importlib import import_module
from typing import Any

# summary.json holds exactly these keys (None where the table producing one was not run)
SUMMARY_KEYS = ("step_time_ratio", "peak_memory_ratio", "step_time_ratio_all_layers", "generate_overhead_ratio",
                "step_time_ratio_smollm2_all_layers")
TABLES = ("main", "variants", "capture", "gpt2", "scaling", "separation", "smollm2", "smollm2_long", "generate")

_LAZY = {"ArmSpec": "arm", "run_arm": "arm", "BenchSettings": "suite", "run_bench": "suite"}

__all__ = ["SUMMARY_KEYS", "TABLES", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'anchor_hf.experiments.bench' has no attribute {name!r}")
