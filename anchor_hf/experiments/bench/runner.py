"""Run arms in forked children and form the ratios anchored ÷ plain.

Every child is forked from one clean server process (multiprocessing's `forkserver`),
which has imported torch and transformers and trained a micro model once with each
trainer (`anchor_hf.experiments.bench.warm`), so no measurement pays for lazy imports or one-time
set-up, every child starts from the same allocator state (what makes resident-set
growth comparable), and a fork costs milliseconds where a fresh interpreter would spend
seconds importing.

A comparison has `repeats` repeats. Each repeat is one child timing all its arms side
by side (`arm.run_group`, the arm order rotated per repeat); each anchored arm's step
time and tensor peak are divided by the plain arm's from the same child. Resident-set
growth, when asked for, comes from one child per arm and repeat (`arm.run_alone`),
alternating arms. Ratios are summarised by their median, upper quartile, minimum and maximum.
"""

from __future__ import annotations

import multiprocessing
import statistics
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .arm import ArmSpec

WARM_MODULE = "anchor_hf.experiments.bench.warm"


def _child(kind: str, specs: list[dict[str, Any]], rounds: int, shift: int, conn: Any) -> None:
    try:
        from .arm import run_alone, run_group

        arms = [ArmSpec(**s) for s in specs]
        conn.send(("ok", run_group(arms, rounds, shift) if kind == "group" else run_alone(arms[0])))
    except BaseException:  # report every failure to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class ArmRunner:
    """Runs `arm.run_group` / `arm.run_alone` in children forked from a warmed-up server."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([WARM_MODULE])

    def _run(self, kind: str, specs: Sequence[ArmSpec], rounds: int = 0, shift: int = 0) -> Any:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_child, args=(kind, [s.to_dict() for s in specs], rounds, shift, send))
        process.start()
        send.close()
        labels = ", ".join(s.label() for s in specs)
        try:
            status, payload = receive.recv()
        except EOFError:
            process.join()
            raise RuntimeError(f"benchmark child ({labels}) died with exit code {process.exitcode}") from None
        process.join()
        if status != "ok":
            raise RuntimeError(f"benchmark child ({labels}) failed:\n{payload}")
        return payload

    def group(self, specs: Sequence[ArmSpec], rounds: int, shift: int = 0) -> list[dict[str, Any]]:
        return self._run("group", specs, rounds, shift)

    def alone(self, spec: ArmSpec) -> dict[str, Any]:
        return self._run("alone", [spec])


@dataclass
class Ratio:
    """Per-repeat ratios anchored ÷ plain and their summary."""

    values: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        values = self.values
        q3 = statistics.quantiles(values, n=4, method="inclusive")[2] if len(values) > 1 else values[0]
        return {"median": statistics.median(values), "q3": q3, "min": min(values), "max": max(values),
                "n": len(values), "values": values}


def compare(runner: ArmRunner, plain: ArmSpec, anchored: Sequence[ArmSpec], repeats: int, rounds: int,
            rss: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time `plain` and `anchored` side by side `repeats` times; with `rss`, also measure resident-set growth.

    Returns:
        `{"plain": [runs], "arms": [{"spec", "label", "runs", "step_time_ratio", "wall_time_ratio",
        "peak_memory_ratio"[, "rss_growth_ratio"]}]}`; each run holds its step times, their
        medians `step_time` (CPU) and `step_wall_time`, `peak_memory` and, with `rss`, `rss_growth`.
    """
    arms = [plain, *anchored]
    runs: list[list[dict[str, Any]]] = [[] for _ in arms]
    for r in range(repeats):
        for i, result in enumerate(runner.group(arms, rounds, shift=r)):
            result["step_time"] = statistics.median(result["step_times"])
            result["step_wall_time"] = statistics.median(result["step_wall_times"])
            runs[i].append(result)
        if progress is not None:
            progress(f"repeat {r + 1}/{repeats}: " + "; ".join(
                f"{a.label()} {runs[i][-1]['step_time'] * 1e3:.1f} ms ({runs[i][-1]['step_wall_time'] * 1e3:.0f} wall)"
                for i, a in enumerate(arms)))
    if rss:
        for r in range(repeats):
            k = r % len(arms)
            for i in list(range(k, len(arms))) + list(range(k)):
                runs[i][r]["rss_growth"] = runner.alone(arms[i])["rss_growth"]
            if progress is not None:
                progress(f"RSS repeat {r + 1}/{repeats}: " + "; ".join(
                    f"{a.label()} +{runs[i][r]['rss_growth'] / 2**20:.1f} MiB" for i, a in enumerate(arms)))
    out: dict[str, Any] = {"plain": runs[0], "arms": [], "rounds": rounds}
    for spec, arm_runs in zip(anchored, runs[1:]):
        entry = {"spec": spec.to_dict(), "label": spec.label(), "runs": arm_runs}
        keys = [("step_time_ratio", "step_time"), ("wall_time_ratio", "step_wall_time"),
                ("peak_memory_ratio", "peak_memory")] + ([("rss_growth_ratio", "rss_growth")] if rss else [])
        for name, key in keys:
            entry[name] = Ratio([a[key] / p[key] if p[key] else float("nan")
                                 for a, p in zip(arm_runs, runs[0])]).summary()
        out["arms"].append(entry)
    return out
