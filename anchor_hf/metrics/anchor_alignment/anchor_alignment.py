"""Margin and containment of an anchored concept from per-example alignments (docs/method.md §6)."""

import datasets
import evaluate
import torch
from anchor_hf.probes.alignment import containment
from anchor_hf.probes.alignment import labelled_alignment

_DESCRIPTION = """
Given each example's alignment cos(h, v) with a concept's anchored direction and its label
weight, returns the label-weighted mean alignment (`labelled`), the plain mean over all
examples (`containment`: high when the whole cloud drifted onto the axis) and their
difference (`margin`: how much closer an example sits for being the concept).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[float]`): alignment of each example (e.g. its mean cos over tokens).
    references (`list[float]`): label weight of each example in [0, 1] (exact 0/1 labels or probabilities).
Returns:
    labelled (`float`), containment (`float`), margin (`float`); `labelled` and `margin` are
    NaN when no example carries a label.
Example:
    >>> metric = evaluate.load("path/to/anchor_alignment")
    >>> metric.compute(predictions=[0.8, 0.0, 0.0, 0.0], references=[1, 0, 0, 0])
    {'labelled': 0.8, 'containment': 0.2, 'margin': 0.6}
"""

_CITATION = """
Sparse Concept Anchoring for Interpretable and Controllable Neural Representations, arXiv 2512.12469.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AnchorAlignment(evaluate.Metric):
    """Margin and containment, computed by `anchor_hf.probes.alignment`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions: list, references: list) -> dict:
        cos = torch.tensor(predictions, dtype=torch.float64).reshape(-1, 1)  # [N, 1]: one "position" each
        weights = torch.tensor(references, dtype=torch.float64)
        live = torch.ones_like(cos, dtype=torch.bool)
        labelled = labelled_alignment(cos, live, weights)
        contained = containment(cos, live)
        return {"labelled": labelled, "containment": contained, "margin": labelled - contained}
