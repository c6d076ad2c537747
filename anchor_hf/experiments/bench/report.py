"""Render benchmark results as Markdown tables (pasted as-is into docs/benchmarks.md)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


def _ratio(summary: dict[str, Any]) -> str:
    return f"{summary['median']:.3f} [{summary['min']:.3f}, {summary['max']:.3f}]"


def _ms(runs: list[dict[str, Any]], key: str = "step_time") -> str:
    return f"{statistics.median(r[key] for r in runs) * 1e3:.1f}"


def _mib(runs: list[dict[str, Any]], key: str = "peak_memory") -> str:
    return f"{statistics.median(r[key] for r in runs) / 2**20:.1f}"


def _shape(spec: dict[str, Any]) -> str:
    lora = " + LoRA" if spec.get("lora") else ""
    return f"{spec['model']}{lora}, batch {spec['batch']} × {spec['seq_len']} tokens"


def group_table(table: dict[str, Any]) -> str:
    """One comparison: the plain row, then each anchored arm with its ratios (RSS columns when measured)."""
    plain = table["plain"]
    spec = plain[0]["spec"]
    rss = all("rss_growth_ratio" in arm for arm in table["arms"]) and bool(table["arms"])
    timed = len(plain[0]["step_times"])
    lines = [f"{_shape(spec)}; per repeat {timed} timed steps per arm ({table.get('rounds', '?')} alternating "
             f"calls of {spec['steps']}, after {spec['warmup']} warm-up), {len(plain)} repeats, "
             f"{spec['threads']} torch thread(s)", "",
             "| arm | step CPU ms | step-time ratio | wall ms | wall-time ratio | tensor peak MiB "
             "| peak-memory ratio |" + (" RSS growth MiB | RSS-growth ratio |" if rss else ""),
             "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if rss else ""),
             f"| plain `Trainer` | {_ms(plain)} | 1 | {_ms(plain, 'step_wall_time')} | 1 | {_mib(plain)} | 1 |"
             + (f" {_mib(plain, 'rss_growth')} | 1 |" if rss else "")]
    for arm in table["arms"]:
        lines.append(f"| {arm['label']} | {_ms(arm['runs'])} | {_ratio(arm['step_time_ratio'])} | "
                     f"{_ms(arm['runs'], 'step_wall_time')} | {_ratio(arm['wall_time_ratio'])} | "
                     f"{_mib(arm['runs'])} | {_ratio(arm['peak_memory_ratio'])} |"
                     + (f" {_mib(arm['runs'], 'rss_growth')} | {_ratio(arm['rss_growth_ratio'])} |" if rss else ""))
    lines += ["", "Times and memory are medians over the repeats; ratios (anchored ÷ plain of the same repeat) are "
              "median [min, max]. Step-time ratios use process CPU time, wall-time ratios wall time."]
    return "\n".join(lines)


def scaling_table(tables: dict[str, Any]) -> str:
    """Step-time ratio of 1c 2L and 4c allL as batch × sequence length halves and doubles."""
    rows = []
    for name in ("scaling floor", "scaling batch 16", "scaling seq 32", "main", "scaling seq 128", "scaling batch 64"):
        table = tables.get(name)
        if table is None:
            continue
        spec = table["plain"][0]["spec"]
        cells = {a["label"]: _ratio(a["step_time_ratio"]) for a in table["arms"]}
        rows.append(f"| {spec['batch']} × {spec['seq_len']} | {_ms(table['plain'])} | "
                    f"{cells.get('1c 2L pooled', '–')} | {cells.get('4c allL pooled', '–')} |")
    if not rows:
        return ""
    return "\n".join(["| batch × tokens | plain step ms | 1c 2L ratio | 4c allL ratio |", "|---|---:|---:|---:|",
                      *rows])


@dataclass(frozen=True)
class Target:
    """An overhead target: bounds on the median step-time and peak-memory ratios of one arm,
    and optionally on the step-time ratio's upper quartile over the repeats (its spread)."""

    table: str
    label: str
    step: float
    memory: float
    step_q3: float | None = None


TARGETS = (Target("main", "1c 2L pooled", 1.05, 1.05), Target("main", "4c allL pooled", 1.10, 1.10),
           Target("smollm2", "1c 2L pooled", 1.05, 1.05), Target("smollm2", "4c allL pooled", 1.10, 1.10),
           Target("smollm2_long", "4c allL pooled", 1.02, 1.05, step_q3=1.05))


def targets_table(tables: dict[str, Any]) -> str:
    """The overhead targets against the measured medians (and upper quartile, where a target bounds it)."""
    rows = []
    for t in TARGETS:
        arm = next((a for a in tables.get(t.table, {}).get("arms", []) if a["label"] == t.label), None)
        if arm is None:
            continue
        step, memory = arm["step_time_ratio"], arm["peak_memory_ratio"]
        met_step = step["median"] <= t.step and (t.step_q3 is None or step.get("q3", step["max"]) <= t.step_q3)
        spread = f", upper quartile {step['q3']:.3f} (≤ {t.step_q3:.2f})" if t.step_q3 is not None else ""
        rows.append(f"| {_shape(arm['spec'])}, {t.label} | ≤ {t.step:.2f} / ≤ {t.memory:.2f} | {_ratio(step)}{spread} "
                    f"{'met' if met_step else 'MISSED'} | {_ratio(memory)} "
                    f"{'met' if memory['median'] <= t.memory else 'MISSED'} |")
    if not rows:
        return ""
    return "\n".join(["| setting | target (step / memory) | step-time ratio | peak-memory ratio |",
                      "|---|---:|---:|---:|", *rows])


def generate_table(gen: dict[str, Any]) -> str:
    lines = [f"{gen['model']}, batch {gen['batch']}, {gen['prompt_len']}-token prompts, {gen['new_tokens']} new "
             f"tokens (greedy, KV cache), median of {gen['calls']} calls per timing, {gen['repeats']} alternated "
             f"repeats, {gen['threads']} torch thread(s)", "",
             "| condition | generate() CPU ms | ratio to no hook | wall ms | wall ratio |", "|---|---:|---:|---:|---:|",
             f"| no hook | {statistics.median(gen['seconds']['plain']) * 1e3:.1f} | 1 | "
             f"{statistics.median(gen['wall_seconds']['plain']) * 1e3:.1f} | 1 |"]
    for name, ratio in gen["ratios"].items():
        lines.append(f"| {name} | {statistics.median(gen['seconds'][name]) * 1e3:.1f} | {_ratio(ratio)} | "
                     f"{statistics.median(gen['wall_seconds'][name]) * 1e3:.1f} | {_ratio(gen['wall_ratios'][name])} |")
    lines += ["", "Ratios: hooked ÷ no hook of the same repeat, median [min, max]; CPU time is the basis."]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = ["# Benchmark results", "",
           f"Command: `{results['command']}`", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_bytes'] / 2**30:.1f} GiB RAM; {m['platform']}; "
           f"Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}, peft {m['peft']}.", "",
           f"Started {results['started']}, finished {results.get('finished', '?')}; load average (1, 5, 15 min) "
           f"before {tuple(round(x, 2) for x in results['load_before'])}, after "
           f"{tuple(round(x, 2) for x in results.get('load_after', (float('nan'),) * 3))}.", "",
           "Summary: " + ", ".join(f"`{k}` = {v:.3f}" if isinstance(v, float) else f"`{k}` = {v}"
                                   for k, v in results.get("summary", {}).items()), ""]
    targets = targets_table(results["tables"])
    if targets:
        out += ["## targets", "", targets, "", "Medians over the repeats, [min, max] beside them; a target is met "
                "when the median (and, where bounded, the repeats' upper quartile) is within it.", ""]
    for name, table in results["tables"].items():
        out += [f"## {name}", "", group_table(table), ""]
    scaling = scaling_table(results["tables"])
    if scaling:
        out += ["## scaling: step-time ratio as batch and sequence length double", "", scaling, ""]
    for name, reason in results.get("skipped", {}).items():
        out += [f"## {name}", "", f"Skipped: {reason}", ""]
    if "generate" in results:
        out += ["## generate", "", generate_table(results["generate"]), ""]
    return "\n".join(out)
