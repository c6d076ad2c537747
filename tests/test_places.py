"""Places for pretrained models (anchor_hf.places): outlier axes found, random directions clear of them, warnings.

The "pretrained" stand-in is a tiny Llama whose embeddings carry +40 on axis 3 for every
token, so the residual stream has one massive-activation axis at every block, as SmolLM2's does.
"""

import warnings

import pytest
import torch

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.errors import AnchorConfigError
from anchor_hf.places import (AnchorScaleWarning, axis_scale, live_states, outlier_axes, place_scale,
                              place_statistics, pretrained_direction, random_direction, warn_outlier_places)
from tiny import WIDTH, make_model, make_tokenizer
from trainer_utils import anchored_trainer, exact_rows, sgd_args

MASSIVE = 3


def massive_model() -> torch.nn.Module:
    model = make_model("llama", layers=2)
    with torch.no_grad():
        model.get_input_embeddings().weight[:, MASSIVE] += 40.0
    return model.eval()


def ids() -> torch.Tensor:
    return torch.randint(2, 64, (4, 12), generator=torch.Generator().manual_seed(0))


def test_random_direction_is_a_seeded_unit_vector_clear_of_avoided_axes_and_rows():
    v = torch.tensor(random_direction(WIDTH, seed=5))
    assert torch.equal(v, torch.tensor(random_direction(WIDTH, seed=5)))  # same seed, same vector
    g = torch.randn(WIDTH, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(v, g / g.norm())  # exactly a normalized seeded Gaussian when nothing is avoided
    rows = torch.randn(2, WIDTH)
    w = torch.tensor(random_direction(WIDTH, seed=5, avoid=[1, 7], orthogonal_to=rows))
    assert abs(float(w.norm()) - 1) < 1e-6 and w[1] == 0 and w[7] == 0
    assert (rows @ w).abs().max() < 1e-5  # orthogonal to the original rows, not only to their kept part
    with pytest.raises(AnchorConfigError, match="`avoid` must hold axes in 0..31"):
        random_direction(WIDTH, avoid=[WIDTH])


def test_outlier_axes_find_a_massive_activation_and_nothing_in_isotropic_states():
    states = torch.randn(500, WIDTH, generator=torch.Generator().manual_seed(1))
    assert outlier_axes(states) == []  # negative control: Gaussian states have no outlier axis
    states[:, 6] *= 30.0
    assert outlier_axes(states) == [6] and 20 < float(axis_scale(states)[6]) < 40
    assert place_scale(states, torch.eye(WIDTH)[:, [6]]) == pytest.approx(float(axis_scale(states)[6]), rel=1e-5)


def test_pretrained_direction_avoids_the_massive_axis_and_centres_the_alignment():
    """A plain random direction on the massive model gives cos(h, v) one sign for nearly every state; the
    pretrained direction has no massive-axis component and cos(h, v) with mean 0 at each measured layer."""
    model, tokens = massive_model(), ids()
    states = live_states(model, [0, 1], tokens)
    assert all(outlier_axes(s) == [MASSIVE] for s in states.values())
    plain = torch.tensor(random_direction(WIDTH, seed=0))
    v = torch.tensor(pretrained_direction(model, [0, 1], tokens, seed=0))
    assert v[MASSIVE] == 0
    for s in states.values():
        cos_plain = (s @ plain) / s.norm(dim=-1)
        assert (cos_plain > 0).float().mean() in (0.0, 1.0)  # negative control: the sign is the axis's
        assert abs(float((s @ v).mean())) < 1e-4 * float(s.norm(dim=-1).mean())  # centred
        assert place_scale(s, v.unsqueeze(1)) < 3 < place_scale(s, plain.unsqueeze(1))


def test_warn_outlier_places_names_the_concept_the_layer_and_the_axis():
    states = {"model.layers.0": live_states(massive_model(), [0], ids())["model.layers.0"]}
    bases = {"on_axis": torch.eye(WIDTH)[:, [MASSIVE]], "clear": torch.eye(WIDTH)[:, [5]]}
    with pytest.warns(AnchorScaleWarning, match=r"concept 'on_axis' at 'model.layers.0'.*outlier axes there: 3 \("):
        messages = warn_outlier_places(place_statistics(states, bases))
    assert len(messages) == 1  # the clear axis is not warned about


def test_place_statistics_of_padded_batches_count_only_live_positions():
    """[B, T, D] states with a live mask give the statistics of the live states alone (pads can be huge)."""
    g = torch.Generator().manual_seed(2)
    h = torch.randn(3, 5, WIDTH, generator=g)
    live = torch.ones(3, 5, dtype=torch.bool)
    live[0, 3:] = False
    h[~live] = 1e4  # what a padded position may hold
    basis = torch.eye(WIDTH)[:, [1]]
    masked = place_statistics({"l": h}, {"c": basis}, live)
    alone = place_statistics({"l": h[live]}, {"c": basis})
    torch.testing.assert_close(masked.axis_rms, alone.axis_rms)
    torch.testing.assert_close(masked.along_rms, alone.along_rms)


def test_trainer_warns_on_its_first_step_when_an_anchored_axis_is_a_massive_activation(tmp_path):
    cfg = AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="red", dims=[MASSIVE])])
    rows = exact_rows()
    with pytest.warns(AnchorScaleWarning, match="concept 'red' at 'model.layers.0'"):
        anchored_trainer(massive_model().train(), make_tokenizer(), sgd_args(tmp_path, steps=2), cfg, rows).train()
    clear = AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="red", dims=[MASSIVE + 1])])
    with warnings.catch_warnings(record=True) as record:  # negative control: an ordinary axis trains quietly
        warnings.simplefilter("always")
        anchored_trainer(massive_model().train(), make_tokenizer(), sgd_args(tmp_path, steps=2), clear, rows).train()
    assert not [w for w in record if issubclass(w.category, AnchorScaleWarning)]
