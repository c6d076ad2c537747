"""`bootstrap_interval`: percentile intervals that cover what they should and keep paired samples paired."""

from __future__ import annotations

import math

import pytest
import torch

from anchor_hf.errors import AnchorDataError
from anchor_hf.probes.bootstrap import bootstrap_interval


def test_interval_of_a_mean_matches_the_normal_approximation():
    """For the mean of 400 standard normal draws the 95% interval is about ±1.96/√400 = ±0.098 around the mean."""
    x = torch.randn(400, generator=torch.Generator().manual_seed(0))
    low, high = bootstrap_interval(lambda idx: float(x[idx[0]].mean()), [len(x)], resamples=2000)
    mean = float(x.mean())
    assert low < mean < high
    assert (high - low) / 2 == pytest.approx(1.96 / math.sqrt(400), rel=0.15)  # bootstrap noise at 2000 replicates


def test_paired_samples_give_a_narrower_interval_than_the_same_data_unpaired():
    """Scores before/after an edit of the same items: pairing removes the item-to-item spread from the shift."""
    g = torch.Generator().manual_seed(1)
    item = torch.randn(300, generator=g) * 3
    before, after = item, item + 0.5 + 0.1 * torch.randn(300, generator=g)
    paired = bootstrap_interval(lambda idx: float((after[idx[0]] - before[idx[0]]).mean()), [300])
    unpaired = bootstrap_interval(lambda idx: float(after[idx[0]].mean() - before[idx[1]].mean()), [300, 300])
    assert paired[0] < 0.5 < paired[1]
    assert paired[1] - paired[0] < 0.2 * (unpaired[1] - unpaired[0])


def test_nan_replicates_are_left_out_and_all_nan_gives_nan():
    assert all(math.isnan(v) for v in bootstrap_interval(lambda idx: math.nan, [5], resamples=10))
    calls = iter(range(100))
    low, high = bootstrap_interval(lambda idx: math.nan if next(calls) % 2 else 1.0, [5], resamples=20)
    assert low == high == 1.0


def test_the_same_seed_gives_the_same_interval():
    x = torch.arange(50.0)
    stat = lambda idx: float(x[idx[0]].mean())  # noqa: E731
    assert bootstrap_interval(stat, [50], seed=3) == bootstrap_interval(stat, [50], seed=3)
    assert bootstrap_interval(stat, [50], seed=3) != bootstrap_interval(stat, [50], seed=4)


@pytest.mark.parametrize("kwargs, message", [({"sizes": []}, "sample sizes >= 1"), ({"sizes": [0]}, "sample sizes"),
                                             ({"resamples": 0}, "`resamples`"), ({"level": 1.0}, "`level`")])
def test_bad_arguments_are_refused(kwargs, message):
    args = {"sizes": [3], **kwargs}
    sizes = args.pop("sizes")
    with pytest.raises(AnchorDataError, match=message):
        bootstrap_interval(lambda idx: 0.0, sizes, **args)
