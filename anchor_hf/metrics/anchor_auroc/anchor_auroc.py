"""Detection AUROC of an anchored concept: how well cos(h, v) ranks concept examples first (docs/method.md §6)."""

import datasets
import evaluate
import torch
from anchor_hf.probes.detection import auroc

_DESCRIPTION = """
Area under the ROC curve of a per-example score (typically the pooled alignment cos(h, v)
of an example's states with the concept's anchored direction) for binary concept labels.
With an anchored model nothing is fitted: the direction is known in advance. Ties count
one half (Mann-Whitney form); 1.0 is a perfect ranking, 0.5 chance.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[float]`): one score per example, higher = more concept-like.
    references (`list[int]`): 1 for concept examples, 0 otherwise; both classes must occur.
Returns:
    auroc (`float`): area under the ROC curve.
Example:
    >>> metric = evaluate.load("path/to/anchor_auroc")
    >>> metric.compute(predictions=[0.9, 0.1, 0.8, 0.3], references=[1, 0, 1, 0])
    {'auroc': 1.0}
"""

_CITATION = """
Sparse Concept Anchoring for Interpretable and Controllable Neural Representations, arXiv 2512.12469.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AnchorAuroc(evaluate.Metric):
    """AUROC of concept scores, computed by `anchor_hf.probes.detection.auroc`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions: list, references: list) -> dict:
        return {"auroc": auroc(torch.tensor(predictions, dtype=torch.float64), torch.tensor(references))}
