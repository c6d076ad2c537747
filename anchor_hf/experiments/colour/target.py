"""Concept labels from the colour, not the name: any target colour, sparse per-visit probabilities.

The concept of a line such as `cherry red: #cf0234` is decided by its hex value alone, so
labels are exact ground truth for evaluation and need no annotator. For a target colour
(`red`, any named hue, any XKCD name, or a hex such as `#ff8800`):

- `similarity` is docs/method.md §6's similarity to the target (`colour.hsv_similarity`, which
  takes any anchor colour in HSV): hue term within a quarter turn, blended by vibrancy,
  times the saturation and value agreement. 1 at the target, 0 for far hues and greys.
- `label_probability` is the training label probability of docs/method.md §3, generalized
  from red's `0.08·[r(1 − g/2 − b/2)]^8` to any target as `peak · similarity^power`:
  the high power keeps labels sparse and concentrated on colours close to the target,
  and each visit draws the label anew (the collator's Bernoulli draw).
- `exact_labels` marks the target group for evaluation (`similarity ≥ threshold`).
- `destination_probability` labels a redirect destination (docs/method.md §10). Greys have
  no hue (HSV gives them hue 0, red's), so `similarity` to a grey favours pale reds; an
  achromatic destination is labelled by `achromatic_probability` instead, which looks at
  saturation and lightness only. The colour corpora's default destination is `#808080`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from anchor_hf.errors import AnchorDataError
from anchor_hf.experiments.options import COLOUR_DESTINATION
from .maths import NAMED_COLOURS, hsv_similarity, rgb_to_hsv

HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
TARGET_THRESHOLD = 0.5  # similarity at or above which a colour belongs to the target group
DEFAULT_DESTINATION = COLOUR_DESTINATION  # mid grey: where the colour corpora redirect a concept by default
ACHROMATIC_SATURATION = 0.1  # a destination this unsaturated is labelled by lightness alone (no hue)
LIGHTNESS_WIDTH = 0.25  # width of the lightness window of the achromatic labels (HSV value)


@dataclass(frozen=True)
class ColourTarget:
    """A target colour: `name` (safe as a concept and metric name) and `rgb` in [0, 1]."""

    name: str
    rgb: tuple[float, float, float]

    @property
    def hex(self) -> str:
        return "#" + "".join(f"{round(c * 255):02x}" for c in self.rgb)


def hex_to_rgb(value: str) -> tuple[float, float, float]:
    """`#rrggbb` (or `rrggbb`) → (r, g, b) in [0, 1]; raises `AnchorDataError` on anything else."""
    match = HEX.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise AnchorDataError(f"expected a colour as '#rrggbb', got {value!r}")
    digits = match.group(1)
    return tuple(int(digits[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def parse_target(spec: str) -> ColourTarget:
    """The target colour `spec` names: a hue of `colour.NAMED_COLOURS`, an XKCD name, or `#rrggbb`.

    Named hues come first so `red` is pure red (1, 0, 0), as in docs/method.md, not XKCD's
    surveyed red (#e50000).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise AnchorDataError(f"`concept` must be a colour name or '#rrggbb', got {spec!r}")
    key = spec.strip().lower()
    if key in NAMED_COLOURS:
        return ColourTarget(key, tuple(float(c) for c in NAMED_COLOURS[key]))  # type: ignore[arg-type]
    if HEX.match(key):
        rgb = hex_to_rgb(key)
        return ColourTarget("c" + key.lstrip("#"), rgb)
    from matplotlib.colors import XKCD_COLORS

    if f"xkcd:{key}" in XKCD_COLORS:
        return ColourTarget(re.sub(r"[^a-z0-9]+", "_", key), hex_to_rgb(XKCD_COLORS[f"xkcd:{key}"]))
    raise AnchorDataError(f"`concept` = {spec!r} is not a colour: allowed are the hues {sorted(NAMED_COLOURS)}, "
                          "any XKCD colour name (matplotlib.colors.XKCD_COLORS) or '#rrggbb'")


def similarity(rgb: torch.Tensor, target: ColourTarget) -> torch.Tensor:
    """Similarity `[N]` in [0, 1] of colours `[N, 3]` to the target (docs/method.md §6)."""
    target_hsv = rgb_to_hsv(torch.tensor(target.rgb)).tolist()
    return hsv_similarity(rgb_to_hsv(rgb.float()), tuple(target_hsv))


def label_probability(sim: torch.Tensor, peak: float = 0.08, power: float = 8.0) -> torch.Tensor:
    """Per-visit label probability `peak · sim^power` `[N]` (docs/method.md §3, any target)."""
    if not 0.0 <= peak <= 1.0:
        raise AnchorDataError(f"`label_peak` must be a probability in [0, 1], got {peak}")
    if power <= 0:
        raise AnchorDataError(f"`label_power` must be > 0, got {power}")
    return peak * sim.clamp(0.0, 1.0).pow(power)


def exact_labels(sim: torch.Tensor, threshold: float = TARGET_THRESHOLD) -> torch.Tensor:
    """Exact membership of the target group `[N]` bool, for evaluation (no draws)."""
    return sim >= threshold


def achromatic_probability(rgb: torch.Tensor, value: float, peak: float = 1.0, power: float = 3.0,
                           width: float = LIGHTNESS_WIDTH) -> torch.Tensor:
    """Label probability of an achromatic destination, `peak·(1 − s)^power·exp(−((v − value)/width)²)` `[N]`.

    `s`, `v` are HSV saturation and value of colours `[N, 3]`: hue never enters, so a pale red
    and a pale cyan of the same saturation and lightness get the same label, and the
    probability peaks at the grey of lightness `value` (`peak` there), falling off for
    black, white and every saturated colour. docs/method.md §10's prototype used power 3
    and value 0.55.
    """
    if not 0.0 <= peak <= 1.0:
        raise AnchorDataError(f"`destination_peak` must be a probability in [0, 1], got {peak}")
    if power <= 0:
        raise AnchorDataError(f"`destination_power` must be > 0, got {power}")
    hsv = rgb_to_hsv(rgb.float())
    s, v = hsv[..., 1], hsv[..., 2]
    return peak * (1.0 - s).clamp(0.0, 1.0).pow(power) * torch.exp(-((v - value) / width).pow(2))


def is_achromatic(colour: ColourTarget) -> bool:
    """True for a grey (saturation ≤ `ACHROMATIC_SATURATION`): its hue means nothing."""
    return float(rgb_to_hsv(torch.tensor(colour.rgb))[1]) <= ACHROMATIC_SATURATION


def destination_probability(rgb: torch.Tensor, destination: ColourTarget, peak: float = 1.0,
                            power: float = 3.0) -> torch.Tensor:
    """Label probability `[N]` of a redirect destination: achromatic labels for a grey, else `peak·sim^power`."""
    if is_achromatic(destination):
        value = float(rgb_to_hsv(torch.tensor(destination.rgb))[2])
        return achromatic_probability(rgb, value, peak, power)
    return label_probability(similarity(rgb, destination), peak, power)
