"""Weight schedules and dose (docs/method.md §4)."""

from __future__ import annotations

import pytest

from anchor_hf import Schedule
from anchor_hf.schedules import DoseMeter, minjerk, schedule_factor


def test_minjerk_has_fixed_ends_and_midpoint():
    assert minjerk(0.0) == 0.0 and minjerk(1.0) == 1.0 and minjerk(0.5) == pytest.approx(0.5)
    assert minjerk(-1.0) == 0.0 and minjerk(2.0) == 1.0


def test_schedule_ramps_holds_and_anneals_to_the_floor_not_zero():
    s = Schedule(ramp_end=0.2, anneal_start=0.5, anneal_end=0.9, floor=0.1)
    assert schedule_factor(s, 0.0) == 0.0
    assert schedule_factor(s, 0.1) == pytest.approx(0.5)  # min-jerk midpoint of the ramp
    assert schedule_factor(s, 0.3) == 1.0
    assert schedule_factor(s, 0.7) == pytest.approx(0.55)  # halfway down from 1 to 0.1
    assert schedule_factor(s, 0.95) == pytest.approx(0.1)
    assert schedule_factor(s, 1.0) == pytest.approx(0.1)


def test_schedule_shares_the_lr_warmup_when_ramp_end_is_none():
    s = Schedule(shape="linear")
    assert schedule_factor(s, 0.05, warmup_fraction=0.1) == pytest.approx(0.5)
    assert schedule_factor(s, 0.5, warmup_fraction=0.1) == 1.0
    assert schedule_factor(s, 0.0, warmup_fraction=0.0) == 1.0  # no warmup: full weight from the start


def test_relative_repel_schedule_is_strong_early_then_holds_a_ratio():
    s = Schedule(ramp_end=0.0, start=1.0, anneal_start=0.3, anneal_end=0.7, peak=2.5, floor=0.12)
    assert schedule_factor(s, 0.1) == pytest.approx(2.5)
    assert schedule_factor(s, 0.9) == pytest.approx(0.3)


def test_flat_and_missing_schedules_are_constant():
    assert schedule_factor(None, 0.3) == 1.0
    assert schedule_factor(Schedule(shape="flat", anneal_start=0.1, peak=2.0), 0.9) == 2.0


def test_dose_meter_counts_each_step_once():
    meter = DoseMeter()
    meter.update(0, {"a": 2.0}, lr=0.1)
    meter.update(0, {"a": 2.0}, lr=0.1)  # a second micro-batch of the same step
    meter.update(1, {"a": 1.0}, lr=0.1)
    assert meter.dose["a"] == pytest.approx(0.3)
    restored = DoseMeter()
    restored.load_state_dict(meter.state_dict())
    assert restored.dose == meter.dose and restored.last_step == 1
