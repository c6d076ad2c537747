"""Intervention handles are one-shot, never leak into copies, and act on compiled models too."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.interventions import AnchorInterventionError, active_sites, steer, suppress
from tiny import make_model

CFG = AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="x", dims=[3])])
IDS = torch.randint(2, 60, (2, 6), generator=torch.Generator().manual_seed(0))


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


@pytest.fixture()
def model() -> torch.nn.Module:
    return make_model("llama").eval()


def test_a_handle_is_one_shot_like_a_contextlib_manager(model):
    """Re-entering a removed handle used to apply nothing, silently; contextlib's managers raise."""
    handle = suppress(model, CFG, "x")
    with handle:
        pass
    with pytest.raises(AnchorInterventionError, match=r"suppress 'x' was already entered once.*call suppress\(\) "
                                                      r"again"):
        with handle:
            pass
    assert active_sites(model) == []


def test_a_handle_cannot_be_entered_twice_while_active(model):
    handle = steer(model, CFG, "x", 1.0)
    with handle:
        with pytest.raises(AnchorInterventionError, match=r"steer 'x' was already entered once"):
            with handle:
                pass
        assert handle.is_active  # the failed re-entry removed nothing
    assert not handle.is_active


def test_a_removed_handle_that_was_never_entered_cannot_be_entered(model):
    handle = suppress(model, CFG, "x")
    handle.remove()
    with pytest.raises(AnchorInterventionError, match=r"suppress 'x' was removed"):
        with handle:
            pass


def test_a_deep_copy_made_inside_suppress_is_a_plain_model(model):
    """The copy used to keep the hooks (suppressed forever, with no handle that knew them)."""
    plain = logits(model)
    with suppress(model, CFG, "x"):
        suppressed = logits(model)
        clone = copy.deepcopy(model)
        assert torch.equal(logits(clone), plain)
    assert not torch.equal(suppressed, plain)  # control: the original was suppressed
    assert active_sites(clone) == [] and torch.equal(logits(clone), plain)


def test_a_model_pickled_inside_suppress_loads_as_a_plain_model(model):
    plain = logits(model)
    with suppress(model, CFG, "x"):
        restored = pickle.loads(pickle.dumps(model))
    assert torch.equal(logits(restored), plain)


@pytest.mark.parametrize("how", ["wrapper", "in_place"])
def test_interventions_act_on_a_compiled_model_and_leave_it_compiled(model, how):
    """Compiled code skips hooks added after compiling: `suppress` on a compiled model used to
    return the plain output. The eager backend compiles in a second and shows the same skip."""
    plain, suppressed = logits(model), None
    with suppress(model, CFG, "x"):
        suppressed = logits(model)
    if how == "wrapper":
        compiled = torch.compile(model, backend="eager")
        original_forward = compiled.forward
    else:
        compiled = model
        compiled.compile(backend="eager")
        original_forward = compiled._compiled_call_impl
    assert torch.allclose(logits(compiled), plain, atol=1e-5)  # compiles here, without hooks
    with suppress(compiled, CFG, "x"):
        assert torch.allclose(logits(compiled), suppressed, atol=1e-5)
    assert torch.allclose(logits(compiled), plain, atol=1e-5)
    current = compiled.forward if how == "wrapper" else compiled._compiled_call_impl
    assert current is original_forward  # compiled again once no intervention is active
