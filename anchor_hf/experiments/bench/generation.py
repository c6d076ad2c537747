"""What `suppress` and `steer` hooks cost during `generate()`.

The same prompts are decoded greedily to a fixed length with no hook, with a steering
hook and with a suppression hook, at the anchored layers of a 1-concept config (two
blocks) and of a 4-concept config (every block). Decoding a tiny model token by token
is dominated by per-module Python overhead, so this is the harsh case for a hook that
adds a few tensor operations per block and token. Conditions alternate within each
repeat (order rotated per repeat); each timing is the median of `calls` decodes, in
process CPU time (the ratios' basis, as for training steps) and in wall time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from anchor_hf.interventions import steer, suppress
from .runner import Ratio
from .setups import anchor_config, anchored_layers, build_model, count_blocks, vocab_size_of


def _conditions(model: torch.nn.Module) -> dict[str, Callable[[], Any] | None]:
    blocks = count_blocks(model)
    two = anchor_config(1, anchored_layers("2", blocks), pooled=True, separation=False)
    every = anchor_config(4, anchored_layers("all", blocks), pooled=True, separation=False)
    return {"plain": None,
            "steer 1c 2L": lambda: steer(model, two, "c0", 1.0),
            "suppress 1c 2L": lambda: suppress(model, two, "c0"),
            "steer allL": lambda: steer(model, every, "c0", 1.0),
            "suppress allL": lambda: suppress(model, every, "c0")}


def generate_overhead(model_name: str = "llama", repeats: int = 5, calls: int = 3, batch: int = 8,
                      prompt_len: int = 16, new_tokens: int = 32, threads: int = 1,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Median CPU and wall time per `generate()` call per condition, and ratios to no hook (median, min, max)."""
    torch.set_num_threads(threads)
    model = build_model(model_name).eval()
    vocab = vocab_size_of(model)
    prompts = torch.randint(3, vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(0))
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                  attention_mask=torch.ones_like(prompts), pad_token_id=0)
    conditions = _conditions(model)
    names = list(conditions)

    def timed(make: Callable[[], Any] | None) -> tuple[float, float]:
        cpu, wall = [], []
        for _ in range(calls):
            handle = make() if make is not None else None
            try:
                start = time.process_time(), time.perf_counter()
                model.generate(prompts, **kwargs)
                cpu.append(time.process_time() - start[0])
                wall.append(time.perf_counter() - start[1])
            finally:
                if handle is not None:
                    handle.remove()
        return statistics.median(cpu), statistics.median(wall)

    timed(None)  # warm-up: first-call initialisation
    seconds: dict[str, list[float]] = {n: [] for n in names}
    wall_seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            cpu, wall = timed(conditions[name])
            seconds[name].append(cpu)
            wall_seconds[name].append(wall)
        if progress is not None:
            progress(f"generate repeat {r + 1}/{repeats}: " + ", ".join(
                f"{n} {seconds[n][-1] * 1e3:.1f} ms" for n in names))
    out: dict[str, Any] = {"model": model_name, "batch": batch, "prompt_len": prompt_len,
                           "new_tokens": new_tokens, "calls": calls, "repeats": repeats, "threads": threads,
                           "seconds": seconds, "wall_seconds": wall_seconds, "ratios": {}, "wall_ratios": {}}
    for name in names[1:]:
        out["ratios"][name] = Ratio([a / p for a, p in zip(seconds[name], seconds["plain"])]).summary()
        out["wall_ratios"][name] = Ratio([a / p for a, p in zip(wall_seconds[name],
                                                                wall_seconds["plain"])]).summary()
    return out
