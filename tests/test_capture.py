"""HiddenStateCapture: records block outputs during one forward and leaves no hook behind."""

from __future__ import annotations

import pytest
import torch

from anchor_hf.capture import HiddenStateCapture
from anchor_hf.layers import resolve_layers
from tiny import make_model


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox"])
def test_capture_records_block_outputs_equal_to_hidden_states(family):
    model = make_model(family, layers=2).eval()
    ids = torch.randint(2, 60, (2, 7))
    sites = resolve_layers(model, [0, 1])
    with HiddenStateCapture([m for _, m in sites]) as capture:
        out = model(ids, output_hidden_states=True)
    states = capture.states
    assert states[0].shape == (2, 7, model.config.hidden_size)
    assert torch.equal(states[0], out.hidden_states[1])  # hidden_states[0] is the embedding output
    # the last entry of hidden_states has the final norm applied, so compare the first block only


def test_capture_leaves_outputs_bit_identical_and_removes_hooks():
    model = make_model("llama").eval()
    ids = torch.randint(2, 60, (2, 6))
    before = model(ids).logits
    with HiddenStateCapture([m for _, m in resolve_layers(model, [0, 1])]):
        during = model(ids).logits
    after = model(ids).logits
    assert torch.equal(before, during) and torch.equal(before, after)
    assert hook_count(model) == 0


def test_capture_removes_hooks_when_the_forward_raises():
    model = make_model("gpt2")
    with pytest.raises(IndexError):
        with HiddenStateCapture([m for _, m in resolve_layers(model, [0])]):
            model(torch.tensor([[10_000]]))  # token id outside the vocabulary
    assert hook_count(model) == 0


def test_capture_keeps_only_the_first_call_of_a_module():
    block = torch.nn.Linear(3, 3)
    with HiddenStateCapture([block]) as capture:
        first = block(torch.ones(1, 3))
        block(torch.zeros(1, 3))
    assert torch.equal(capture.states[0], first)


def test_capture_names_modules_that_never_ran():
    used, unused = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with HiddenStateCapture([used, unused], names=["used", "unused"]) as capture:
        used(torch.ones(1, 2))
    with pytest.raises(RuntimeError, match=r"anchored modules \['unused'\] produced no tensor output"):
        _ = capture.states


def test_capture_is_not_recording_after_exit_so_checkpoint_recompute_is_ignored():
    block = torch.nn.Linear(2, 2)
    capture = HiddenStateCapture([block])
    with capture:
        block(torch.ones(1, 2))
    assert not capture.is_recording and hook_count(block) == 0
