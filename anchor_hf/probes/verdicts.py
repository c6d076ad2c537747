"""One line per probe and concept that says what its numbers mean, with their intervals and baseline.

A verdict only claims what the interval supports: a quantity "is" positive when its 95%
interval lies above 0 (or above the control's interval, when a control model was
measured), and otherwise the line says it could not be told apart. Each function takes a
section's results as stored in report.json and returns `{concept: line}`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Interval = Sequence[float]


def fmt(value: float, interval: Interval | None = None) -> str:
    """`0.123 [0.1, 0.15]`, or `–` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if interval is None or any(v is None or math.isnan(v) for v in interval):
        return f"{value:.3g}"
    return f"{value:.3g} [{interval[0]:.3g}, {interval[1]:.3g}]"


def _above(interval: Interval, baseline: Interval | None, floor: float) -> bool:
    """The interval's low end is above `floor` and, with a baseline, above the baseline's high end."""
    low = interval[0]
    if low is None or math.isnan(low) or low <= floor:
        return False
    return baseline is None or baseline[1] is None or math.isnan(baseline[1]) or low > baseline[1]


def _best(entries: list[dict[str, Any]], key: str) -> int:
    values = [e[key] if e[key] is not None and not math.isnan(e[key]) else -math.inf for e in entries]
    return max(range(len(values)), key=values.__getitem__)


def _at_best_layer(results: dict[str, Any], key: str, floor: float, yes: str, no: tuple[str, str],
                   line: Any) -> dict[str, str]:
    """`{concept: line}` at each concept's best layer by `key`: `yes` when its interval clears `floor`
    (and the control's), else `no[0]` + what it was measured against (`no[1]`: without a control)."""
    out = {}
    for concept, entries in results["concepts"].items():
        i = _best(entries, key)
        e, control = entries[i], (results.get("control") or {}).get(concept, [None] * len(entries))[i]
        base = f" (control {fmt(control[key], control[f'{key}_interval'])})" if control else ""
        claim = _above(e[f"{key}_interval"], control[f"{key}_interval"] if control else None, floor)
        what = yes if claim else no[0] + ("the control" if control else no[1])
        out[concept] = line(concept, what, e, base)
    return out


def alignment_verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Does the concept sit closer to its place than other text? (margin at its best layer)."""
    return _at_best_layer(
        results, "margin", 0.0, "sits closer to its place than other text",
        ("no margin that can be told apart from ", "0"),
        lambda c, what, e, base: (f"{c}: {what}: margin {fmt(e['margin'], e['margin_interval'])} at {e['layer']}"
                                  f"{base}; containment {fmt(e['containment'], e['containment_interval'])}."))


def detection_verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Is the concept detectable without search? (held-out anchored AUROC at its best layer)."""
    return _at_best_layer(
        results, "anchored_auroc", 0.5, "detectable without search", ("not detectable beyond ", "chance"),
        lambda c, what, e, base: (f"{c}: {what}: AUROC {fmt(e['anchored_auroc'], e['anchored_auroc_interval'])} at "
                                  f"{e['layer']}{base}; a fitted linear probe reaches {fmt(e['probe_auroc'])}."))


def steerability_verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Does the score follow the dose for (nearly) every example? (mean slope and wrong-way share)."""
    out = {}
    for concept, s in results["concepts"].items():
        control = (results.get("control") or {}).get(concept)
        base = f" (control {fmt(control['slope_mean'], control['slope_mean_interval'])})" if control else ""
        claim = _above(s["slope_mean_interval"], control["slope_mean_interval"] if control else None, 0.0)
        what = "steerable" if claim else "not steerable beyond " + ("the control" if control else "0")
        out[concept] = (f"{concept}: {what}: mean slope {fmt(s['slope_mean'], s['slope_mean_interval'])} per unit "
                        f"dose{base}; {s['wrong_way_fraction']:.0%} of {s['examples']} examples move the wrong way.")
    return out


def entanglement_verdicts(results: dict[str, Any]) -> dict[str, str]:
    """What removing each concept costs the other groups, or why no ratio is given (own change below the floor)."""
    out = {}
    groups = results["groups"]
    for a, concept in enumerate(results["rows"]):
        own, floor = results["own_change"][a], results["floor"][a]
        if results["suppressed"][a]:
            what = "lowers its own loss" if own < 0 else "raises its own loss only"
            out[concept] = (f"{concept}: removing it {what} by {abs(own):.3g} (noise floor {floor:.3g}): no "
                            "entanglement ratio can be read from this data.")
            continue
        row = results["matrix"][a]
        others = [(row[g], results["interval"][a][g], name) for g, name in enumerate(groups)
                  if name != concept and row[g] is not None and not math.isnan(row[g])]
        worst = max(others, key=lambda t: t[0], default=None)
        tail = f"; the most affected other group is {worst[2]} at {fmt(worst[0], worst[1])} of that" if worst else ""
        out[concept] = f"{concept}: removing it raises its own loss by {own:.3g} (noise floor {floor:.3g}){tail}."
    return out
