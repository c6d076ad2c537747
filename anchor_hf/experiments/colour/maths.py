"""Colour maths for the colour-autoencoder experiments (docs/method.md §3, §6).

torch only: RGB↔HSV, the named test colours, similarity to an anchor colour, the
label affinities that make labels sparse and noisy, and the RGB-cube grid the
autoencoder is trained and scored on. Colours are `[..., 3]` tensors in [0, 1];
hue is a fraction of a turn in [0, 1).
"""

from __future__ import annotations

import torch

from anchor_hf.errors import AnchorDataError

# The twelve hues at 30° steps with full saturation and value, then three greys.
# Exact RGB, so "red" is the anchored colour itself and "cyan" its complement.
NAMED_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "orange": (1.0, 0.5, 0.0),
    "yellow": (1.0, 1.0, 0.0),
    "lime": (0.5, 1.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "teal": (0.0, 1.0, 0.5),
    "cyan": (0.0, 1.0, 1.0),
    "azure": (0.0, 0.5, 1.0),
    "blue": (0.0, 0.0, 1.0),
    "purple": (0.5, 0.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "pink": (1.0, 0.0, 0.5),
    "black": (0.0, 0.0, 0.0),
    "gray": (0.5, 0.5, 0.5),
    "white": (1.0, 1.0, 1.0),
}
RED_HSV = (0.0, 1.0, 1.0)


def named_colours() -> tuple[list[str], torch.Tensor]:
    """(names, rgb `[15, 3]`) of the named test colours, in hue order then greys."""
    return list(NAMED_COLOURS), torch.tensor(list(NAMED_COLOURS.values()))


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """`[..., 3]` RGB → `[..., 3]` HSV, hue in [0, 1) (0 for greys), as `colorsys` does."""
    rgb = rgb.float()
    r, g, b = rgb.unbind(-1)
    v, _ = rgb.max(-1)
    delta = v - rgb.min(-1).values
    s = torch.where(v > 0, delta / v.clamp_min(1e-12), torch.zeros_like(v))
    safe = delta.clamp_min(1e-12)
    h = torch.where(v == r, ((g - b) / safe) % 6.0,
                    torch.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = torch.where(delta > 0, h / 6.0, torch.zeros_like(h)) % 1.0
    return torch.stack([h, s, v], -1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """`[..., 3]` HSV (hue in turns) → `[..., 3]` RGB."""
    h, s, v = hsv.float().unbind(-1)

    def channel(n: float) -> torch.Tensor:
        k = (n + h * 6.0) % 6.0
        return v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)

    return torch.stack([channel(5.0), channel(3.0), channel(1.0)], -1)


def hsv_similarity(hsv: torch.Tensor, anchor_hsv: torch.Tensor | tuple[float, float, float]) -> torch.Tensor:
    """Similarity in [0, 1] of colours `[..., 3]` to an anchor colour, both HSV → `[...]`.

    docs/method.md §6: the hue term `max(0, (90° − Δhue)/90°)` (zero beyond a quarter turn),
    blended by vibrancy `s·v`, times `(1 − |Δs|)(1 − |Δv|)`. The blend is
    `r·hue_term + (1 − r)` with `r` the mean vibrancy of the two colours: hue is
    undefined for greys, so the less vibrant the pair, the less hue counts.
    Red is 1 to itself and 0 to cyan, greys, black and white.
    """
    anchor = torch.as_tensor(anchor_hsv, dtype=torch.float32).to(hsv.device)
    h, s, v = hsv.float().unbind(-1)
    ha, sa, va = anchor.unbind(-1)
    turn = (h - ha).abs()
    degrees = 360.0 * torch.minimum(turn, 1.0 - turn)
    hue_term = ((90.0 - degrees) / 90.0).clamp_min(0.0)
    r = (s * v + sa * va) / 2.0
    return (r * hue_term + (1.0 - r)) * (1.0 - (s - sa).abs()) * (1.0 - (v - va).abs())


def red_similarity(rgb: torch.Tensor) -> torch.Tensor:
    """Similarity of RGB colours `[..., 3]` to pure red → `[...]` (see `hsv_similarity`)."""
    return hsv_similarity(rgb_to_hsv(rgb), RED_HSV)


def vibrancy(rgb: torch.Tensor) -> torch.Tensor:
    """`s·v` of RGB colours `[..., 3]` → `[...]`: 1 on the fully saturated, fully bright hue ring."""
    hsv = rgb_to_hsv(rgb)
    return hsv[..., 1] * hsv[..., 2]


def p_red(rgb: torch.Tensor) -> torch.Tensor:
    """Label probability of "red", `0.08·[r(1 − g/2 − b/2)]^8` (docs/method.md §3) → `[...]`.

    Pure red is labelled on 8% of its visits; the 8th power makes the labels sparse
    (≈0.09% of draws from the 8³ cube) and concentrated on reds.
    """
    r, g, b = rgb.float().unbind(-1)
    return 0.08 * (r * (1.0 - g / 2.0 - b / 2.0)).clamp_min(0.0).pow(8)


def p_vibrant(rgb: torch.Tensor) -> torch.Tensor:
    """Label probability of "vibrant", `0.01·(s·v)^10` → `[...]`: only near the hue ring."""
    return 0.01 * vibrancy(rgb).pow(10)


AFFINITIES = {"red": p_red, "vibrant": p_vibrant}


def cube_grid(steps: int) -> torch.Tensor:
    """The `steps³` RGB colours `[steps³, 3]` with each channel on `linspace(0, 1, steps)`."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise AnchorDataError(f"`steps` must be an int >= 2, got {steps!r}")
    axis = torch.linspace(0.0, 1.0, steps)
    r, g, b = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([r, g, b], -1).reshape(-1, 3)


def sample_cube(n: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """`n` colours `[n, 3]` drawn with replacement from the `steps³` grid."""
    grid = cube_grid(steps)
    index = torch.randint(len(grid), (n,), generator=generator)
    return grid[index]
