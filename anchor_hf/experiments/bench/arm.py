"""Train arms with a plain `Trainer` or an `AnchorTrainer`; time them side by side and measure their memory.

Step time is the time between consecutive `on_step_end` callbacks, so it holds
everything a user waits for per optimizer step: fetching and collating the batch,
forward, anchor term, backward, optimizer and logging. It is taken twice: as process
CPU time (`time.process_time`, the ratios' basis) and as wall time. With one torch
thread the process computes on one core, so its CPU time is the work of the step; on
an idle machine the two agree, and on a shared one the CPU time does not count the
time the process waited for a core, which other people's jobs decide. Arms of one
comparison are timed in one process, alternating (`run_group`).

Peak memory is measured two ways:
- `peak_memory` (the one ratios and summary.json use): peak bytes of live CPU tensors
  during one untimed step, from the torch profiler's allocation events, plus what is
  alive when that step begins (parameters, buffers, gradients, optimizer state). On
  CPU, torch tensors live in heap memory that neither `tracemalloc` (Python objects
  only) nor a CUDA-style allocator counter sees; the profiler sees every tensor
  allocation and free, so this is exact, repeatable, unaffected by other arms in the
  process, and the CPU counterpart of `torch.cuda.max_memory_allocated`.
- `rss_growth` (`run_alone`): the growth of the peak resident set of a process that
  trains one arm (`VmHWM` after training minus `VmRSS` before the model is built, the
  high-water mark reset through `/proc/self/clear_refs`), less the growth of `RssFile`
  (library code a forked child pages in on first use, not memory the training holds).
  It is what the operating system sees, but glibc's heap reuse and fragmentation make
  it vary by several percent between identical runs, so it is reported beside the
  tensor peak, not instead of it. It is only comparable between runs whose allocator
  starts in the same state, so each such run is a process of its own, forked from one
  clean parent (`anchor_hf.experiments.bench.runner`).
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from transformers import PrinterCallback, TrainerCallback

from .setups import (ModelName, anchor_config, anchored_layers, build_dataset, build_model, build_tokenizer,
                     count_blocks, vocab_size_of)

Capture = Literal["hooks", "hidden_states"]


@dataclass(frozen=True)
class ArmSpec:
    """What one arm trains. `concepts == 0` is the plain `Trainer` baseline.

    `steps` are the timed steps of each `train()` call in `run_group` (after `warmup` steps
    in a first, untimed call), or the steps after `warmup` in `run_alone`.
    """

    model: ModelName = "llama"
    concepts: int = 0
    layers: str = "2"
    pooled: bool = True
    separation: bool = False
    separation_samples: int = 256
    capture: Capture = "hooks"
    batch: int = 32
    seq_len: int = 64
    steps: int = 2
    warmup: int = 2
    lora: bool = False
    threads: int = 1
    model_path: str | None = None

    @property
    def is_plain(self) -> bool:
        return self.concepts == 0

    def label(self) -> str:
        """Short description for tables: `plain` or `4c all pooled +sep`."""
        if self.is_plain:
            return "plain"
        parts = [f"{self.concepts}c", f"{self.layers}L", "pooled" if self.pooled else "mean"]
        if self.separation:
            parts.append(f"+sep{self.separation_samples}")
        if self.capture != "hooks":
            parts.append(self.capture)
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StepClock(TrainerCallback):
    """Records CPU and wall time at the start of each `train()` call and the end of every optimizer step."""

    def __init__(self) -> None:
        self.ends: list[tuple[float, float]] = []

    def intervals(self) -> list[tuple[float, float]]:
        """(CPU, wall) seconds of each step of the last `train()` call."""
        return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(self.ends, self.ends[1:])]

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.ends = [(time.process_time(), time.perf_counter())]

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.ends.append((time.process_time(), time.perf_counter()))


class TensorPeak(TrainerCallback):
    """Profiles the allocations of optimizer step `step` (1-based) and records the peak of live tensor bytes."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.peak: int | None = None
        self._profiler: Any = None
        self._static = 0

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                      **kwargs: Any) -> None:
        if state.global_step + 1 != self.step:
            return
        from torch.profiler import ProfilerActivity, profile

        self._static = live_tensor_bytes(model, optimizer)
        self._profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._profiler.__enter__()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._profiler is None:
            return
        self._profiler.__exit__(None, None, None)
        events = [e for e in self._profiler.profiler.kineto_results.events() if e.name() == "[memory]"]
        events.sort(key=lambda e: e.start_ns())
        live = peak = 0
        for e in events:
            live += e.nbytes()
            peak = max(peak, live)
        self.peak = self._static + peak
        self._profiler = None


def live_tensor_bytes(model: torch.nn.Module, optimizer: Any) -> int:
    """Bytes of the parameters, buffers, gradients and optimizer state (each storage counted once)."""
    seen: set[int] = set()
    total = 0

    def add(t: Any) -> None:
        nonlocal total
        if isinstance(t, torch.Tensor) and t.device.type == "cpu":
            storage = t.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()

    for p in model.parameters():
        add(p)
        add(p.grad)
    for b in model.buffers():
        add(b)
    if optimizer is not None:
        for state in optimizer.state.values():
            for value in state.values():
                add(value)
    return total


def memory_kib(field: str) -> int:
    """`VmRSS`, `VmHWM` or `RssFile` of this process in KiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as f:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def reset_peak_memory() -> None:
    """Reset `VmHWM` to the current resident set (Linux ≥ 4.0)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def build_trainer(spec: ArmSpec, output_dir: str, callbacks: list[TrainerCallback]) -> Any:
    """A plain `Trainer` (plain LM collator) or an `AnchorTrainer` (anchor collator) for `spec`, seeded alike."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from anchor_hf.collator import AnchorDataCollator
    from anchor_hf.trainer import AnchorTrainer
    from .tuple_capture import TupleCaptureTrainer

    model = build_model(spec.model, seed=0, lora=spec.lora, path=spec.model_path)
    vocab = vocab_size_of(model)
    # enough distinct examples for the longest call; every call restarts the (seeded) data order
    data = build_dataset(spec.batch * (spec.warmup + spec.steps + 1), spec.seq_len, vocab, max(spec.concepts, 1))
    tokenizer = build_tokenizer(vocab)
    args = TrainingArguments(output_dir=output_dir, per_device_train_batch_size=spec.batch, max_steps=1,
                             learning_rate=1e-4, logging_steps=5, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False, seed=0)
    if spec.is_plain:
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks,
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    else:
        cfg = anchor_config(spec.concepts, anchored_layers(spec.layers, count_blocks(model)), spec.pooled,
                            spec.separation)
        cfg.separation_samples = spec.separation_samples
        cls = AnchorTrainer if spec.capture == "hooks" else TupleCaptureTrainer
        trainer = cls(model=model, args=args, train_dataset=data, callbacks=callbacks, anchor_config=cfg,
                      data_collator=AnchorDataCollator(tokenizer, cfg))
    trainer.remove_callback(PrinterCallback)  # the log lines would only clutter the benchmark's output
    return trainer


def train_steps(trainer: Any, steps: int) -> None:
    """One `train()` call of `steps` optimizer steps (the optimizer and its state carry over between calls)."""
    trainer.args.max_steps = steps
    trainer.train()


def run_group(specs: list[ArmSpec], rounds: int, shift: int = 0) -> list[dict[str, Any]]:
    """Time the arms side by side in this process and profile each one's tensor peak.

    After a warm-up call per arm (`spec.warmup` steps), `rounds` rounds each make one
    `train()` call per arm, in an order rotated by `shift + round`, of `1 + spec.steps`
    steps; the first step of every call (data-loader start-up) is dropped. Alternating
    this finely puts every arm under the same load from other processes, and one process
    for all arms removes differences between processes (memory layout, CPU placement).
    Finally each arm trains one more step under the memory profiler.

    Returns:
        per arm: spec, step CPU and wall times (s), tensor peak (bytes), loss of its last call.
    """
    torch.set_num_threads(specs[0].threads)
    results = []
    with tempfile.TemporaryDirectory() as out:
        arms = []
        for spec in specs:
            clock = StepClock()
            arms.append((spec, build_trainer(spec, out, [clock]), clock))
        for spec, trainer, _ in arms:
            train_steps(trainer, max(spec.warmup, 1))
        times: list[list[tuple[float, float]]] = [[] for _ in arms]
        for r in range(rounds):
            order = list(range(len(arms)))
            k = (shift + r) % len(arms)
            for i in order[k:] + order[:k]:
                spec, trainer, clock = arms[i]
                train_steps(trainer, 1 + spec.steps)
                times[i] += clock.intervals()[1:]
        for (spec, trainer, _), arm_times in zip(arms, times):
            peak = TensorPeak(step=1)
            trainer.add_callback(peak)
            train_steps(trainer, 1)
            if peak.peak is None:
                raise RuntimeError("the memory-profiled step did not run")
            results.append({"spec": spec.to_dict(), "step_times": [c for c, _ in arm_times],
                            "step_wall_times": [w for _, w in arm_times], "peak_memory": peak.peak,
                            "train_loss": float(trainer.state.log_history[-1].get("train_loss", float("nan")))})
    return results


def run_alone(spec: ArmSpec) -> dict[str, Any]:
    """Train `spec` alone in this (fresh) process: `spec.warmup + spec.steps` steps; return the RSS growth (bytes)."""
    torch.set_num_threads(spec.threads)
    reset_peak_memory()
    baseline, baseline_file = memory_kib("VmRSS"), memory_kib("RssFile")
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(spec, out, [])
        train_steps(trainer, spec.warmup + spec.steps)
    grown = memory_kib("VmHWM") - baseline - (memory_kib("RssFile") - baseline_file)
    return {"spec": spec.to_dict(), "rss_growth": grown * 1024}
