"""Loss-weight schedules over training progress, and the dose `∫ w·lr` (docs/method.md §4).

Pure Python: a schedule is a function of progress `t` in [0, 1], so it can be plotted,
tested and logged without a model.
"""

from __future__ import annotations

from .config import Schedule


def minjerk(t: float) -> float:
    """Min-jerk smoothstep `6t⁵ − 15t⁴ + 10t³` on [0, 1]: zero velocity and acceleration at both ends."""
    t = min(1.0, max(0.0, t))
    return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


def _blend(a: float, b: float, t: float, shape: str) -> float:
    s = minjerk(t) if shape == "minjerk" else min(1.0, max(0.0, t))
    return a + (b - a) * s


def schedule_factor(schedule: Schedule | None, progress: float, warmup_fraction: float = 0.0) -> float:
    """Multiple of the peak weight at training progress `progress`.

    ramp (start → peak, ending at `ramp_end`, or at the LR warmup when it is None) →
    hold → anneal (peak → floor·peak between `anneal_start` and `anneal_end`) → floor.

    Args:
        schedule: the schedule; `None` means a constant weight (factor 1).
        progress: `global_step / max_steps`, clipped to [0, 1].
        warmup_fraction: the learning-rate warmup as a fraction of the run, used when
            `schedule.ramp_end` is None ("ramp shared with LR warmup").
    """
    if schedule is None:
        return 1.0
    peak = schedule.peak
    if schedule.shape == "flat":
        return peak
    t = min(1.0, max(0.0, progress))
    ramp_end = schedule.ramp_end if schedule.ramp_end is not None else warmup_fraction
    ramp_end = min(ramp_end, schedule.anneal_start)
    if t < ramp_end:
        return _blend(schedule.start * peak, peak, t / ramp_end, schedule.shape)
    if t < schedule.anneal_start:
        return peak
    if t < schedule.anneal_end:
        span = schedule.anneal_end - schedule.anneal_start
        return _blend(peak, schedule.floor * peak, (t - schedule.anneal_start) / span, schedule.shape)
    return schedule.floor * peak if schedule.anneal_start < 1.0 else peak


class DoseMeter:
    """Accumulates the dose `∫ w·lr` of each named weight, once per optimizer step.

    docs/method.md §4 asks for the dose to be logged: two schedules with the same peak but
    different shapes deliver very different amounts of pull, and the dose is what a
    "dose-matched" comparison holds fixed.
    """

    def __init__(self) -> None:
        self.dose: dict[str, float] = {}
        self.last_step = -1

    def update(self, step: int, weights: dict[str, float], lr: float) -> None:
        """Add `w·lr` for each weight if `step` has not been counted yet."""
        if step <= self.last_step:
            return
        self.last_step = step
        for key, w in weights.items():
            self.dose[key] = self.dose.get(key, 0.0) + w * lr

    def state_dict(self) -> dict:
        return {"dose": dict(self.dose), "last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        self.dose = {k: float(v) for k, v in state.get("dose", {}).items()}
        self.last_step = int(state.get("last_step", -1))
