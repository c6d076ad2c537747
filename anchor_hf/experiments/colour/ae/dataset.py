"""Training data for the colour autoencoder: cube samples and a collator that draws labels.

The paper trains on colours drawn with replacement from the RGB cube, each carrying a
label probability per concept (`p_red`, `p_vibrant`), and labels each visit by a
Bernoulli draw (docs/method.md §3). `CubeSamples` pre-draws the colours for a whole run, so
the Trainer's single pass over it *is* sampling with replacement; `ColourCollator`
turns a list of samples into the batch `AnchorTrainer` expects, with one "token" per
colour (T = 1), and counts the labels it actually drew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from anchor_hf.collator import SEGMENT_IDS, SPAN_MASK, SPAN_WEIGHTS, TOKEN_WEIGHTS, AnchorCollatorBase
from anchor_hf.config import AnchorConfig
from anchor_hf.errors import AnchorDataError
from ..maths import sample_cube

Affinity = Callable[[torch.Tensor], torch.Tensor]  # rgb [N, 3] -> probability [N]


class CubeSamples(Dataset):
    """`n` colours drawn with replacement from the `steps³` RGB grid, with label probabilities.

    Args:
        n: number of samples (training steps × batch size for one pass).
        steps: grid points per channel (8 gives the paper's 8³ cube).
        affinities: column name → function giving each colour's label probability.
        seed: seed of the draw.
    """

    def __init__(self, n: int, steps: int, affinities: Mapping[str, Affinity], seed: int = 0) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise AnchorDataError(f"`n` must be a positive int, got {n!r}")
        generator = torch.Generator().manual_seed(seed)
        self.rgb = sample_cube(n, steps, generator)  # [n, 3]
        self.probs = {name: fn(self.rgb).float() for name, fn in affinities.items()}  # each [n]
        for name, p in self.probs.items():
            if p.shape != (n,) or not bool(((p >= 0) & (p <= 1)).all()):
                raise AnchorDataError(f"affinity {name!r} must give one probability in [0, 1] per colour")

    def __len__(self) -> int:
        return len(self.rgb)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"rgb": self.rgb[i], **{name: p[i] for name, p in self.probs.items()}}


class ColourCollator(AnchorCollatorBase):
    """Stacks colours into `rgb` `[B, 3]` (target `labels` = `rgb`) and builds T = 1 anchor masks.

    Per concept, the column `ConceptAnchor.column` of each sample holds its label
    probability; each call draws the labels (`draw="bernoulli"`) or uses the
    probabilities as weights (`"expected"`, e.g. exact 0/1 labels for validation).

    Attributes:
        labels_drawn: per concept, the labels drawn so far (the paper reports ≈83 for red).
        examples_seen: colours collated so far.
    """

    def __init__(self, config: AnchorConfig, draw: Literal["bernoulli", "expected"] = "bernoulli",
                 seed: int = 0) -> None:
        super().__init__(config, draw, seed)
        self.labels_drawn = {c.name: 0 for c in config.concepts}
        self.examples_seen = 0

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise AnchorDataError("cannot collate an empty list of colours")
        for i, f in enumerate(features):
            if "rgb" not in f:
                raise AnchorDataError(f"sample {i} has no `rgb`; columns present: {sorted(f)}")
        rgb = torch.stack([torch.as_tensor(f["rgb"], dtype=torch.float32) for f in features])  # [B, 3]
        if rgb.shape[-1] != 3:
            raise AnchorDataError(f"`rgb` must hold 3 channels per colour, got shape {tuple(rgb.shape)}")
        concepts = self.config.concepts
        probs = torch.zeros(len(features), len(concepts))  # [B, C]
        for j, concept in enumerate(concepts):
            missing = [i for i, f in enumerate(features) if concept.column not in f]
            if missing:
                raise AnchorDataError(f"sample {missing[0]} has no label column {concept.column!r} for concept "
                                      f"{concept.name!r}; columns present: {sorted(features[missing[0]])}")
            probs[:, j] = torch.tensor([float(f[concept.column]) for f in features])
        if not bool(((probs >= 0) & (probs <= 1)).all()):
            raise AnchorDataError("label probabilities must lie in [0, 1]")
        weights = self.draw_labels(probs)  # [B, C]
        for j, concept in enumerate(concepts):
            self.labels_drawn[concept.name] += int((weights[:, j] > 0).sum())
        self.examples_seen += len(features)
        b, c = weights.shape
        return {
            "rgb": rgb,
            "labels": rgb.clone(),
            SEGMENT_IDS: torch.arange(b).unsqueeze(1),  # [B, 1]: every colour is one live position
            SPAN_WEIGHTS: weights,  # [B, C]
            SPAN_MASK: torch.ones(b, c, 1, dtype=torch.bool),  # a label pools over the single position
            TOKEN_WEIGHTS: torch.zeros(b, c, 1),  # no token-level labels
        }
