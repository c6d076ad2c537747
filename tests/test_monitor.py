"""`ConceptMonitor`: flag (or stop) generations on a concept as they are produced, with `detect`'s scores."""

from __future__ import annotations

import pytest
import torch
from transformers import StoppingCriteriaList

from anchor_hf import ConceptMonitor, detect
from anchor_hf.interventions import AnchorInterventionError
from test_detect import RED, pad, planted

PROMPTS = [[5, 6, 7], [8, 57]]  # the second prompt ends on a planted token


def generate(model, ids, mask, monitor, steps=5, **kw):
    return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=steps, do_sample=False,
                          stopping_criteria=StoppingCriteriaList([monitor]), pad_token_id=0, eos_token_id=1, **kw)


@pytest.mark.parametrize("use_cache", [True, False])
def test_monitor_scores_each_token_as_detect_scores_it_in_the_finished_text(use_cache):
    """Step k scores the token the model read at that step (the prompt's last token first): the same number
    `detect` gives that position once the whole sequence is known."""
    model, cfg = planted()
    ids, mask = pad(PROMPTS, "left")
    with ConceptMonitor(model, cfg, "red", threshold=0.5) as monitor:
        out = generate(model, ids, mask, monitor, use_cache=use_cache)
    full_mask = torch.cat([mask, torch.ones(2, out.shape[1] - ids.shape[1], dtype=torch.long)], 1)
    per_token = detect(model, cfg, "red", out, attention_mask=full_mask, reduce=None).mean(0)  # [B, T]
    read = per_token[:, ids.shape[1] - 1:-1]  # the last prompt token, then every generated token but the last
    assert monitor.scores.shape == (2, 5)
    assert torch.allclose(monitor.scores, read, atol=1e-5)
    assert monitor.flagged.tolist() == [bool((read[0] > 0.5).any()), True]  # the planted prompt token is flagged


def test_monitor_stops_flagged_sequences_only_when_asked():
    model, cfg = planted()
    ids, mask = pad(PROMPTS, "left")
    with ConceptMonitor(model, cfg, "red", threshold=0.5, stop=True) as monitor:
        out = generate(model, ids, mask, monitor, steps=6)
    assert monitor.flagged[1] and (out[1, ids.shape[1] + 1:] == 0).all()  # stopped after one token, then padded
    with ConceptMonitor(model, cfg, "red", threshold=0.5) as watch_only:
        out = generate(model, ids, mask, watch_only, steps=6)
    assert watch_only.flagged[1] and not (out[1, ids.shape[1] + 1:] == 0).all()  # negative control: kept going


def force_end_of(row: int, at_step: int, prompt_length: int):
    """A logits processor that makes sequence `row` generate <eos> (id 1) at generation step `at_step`."""
    def process(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == prompt_length + at_step:
            scores[row] = -float("inf")
            scores[row, 1] = 0.0
        return scores

    return process


def test_monitor_stops_scoring_a_sequence_after_it_reads_its_end_token():
    model, cfg = planted()
    ids, mask = pad(PROMPTS, "left")
    with ConceptMonitor(model, cfg, "red", threshold=0.5) as monitor:
        out = generate(model, ids, mask, monitor, logits_processor=[force_end_of(0, 1, ids.shape[1])])
    assert out[0, ids.shape[1] + 1] == 1 and (out[0, ids.shape[1] + 2:] == 0).all()  # <eos>, then pads
    assert not torch.isnan(monitor.scores[0, :3]).any()  # the prompt's last token, one token, <eos> itself
    assert torch.isnan(monitor.scores[0, 3:]).all()  # the pads generate feeds after the end never score
    assert not torch.isnan(monitor.scores[1]).any()  # the other sequence goes on


def test_monitor_removes_its_hooks_on_exit_and_on_error():
    model, cfg = planted()
    sites = [model.model.layers[0], model.model.layers[1]]
    with pytest.raises(ValueError, match="boom"):
        with ConceptMonitor(model, cfg, "red", threshold=0.5):
            assert all(len(m._forward_hooks) == 1 for m in sites)
            raise ValueError("boom")
    assert all(len(m._forward_hooks) == 0 for m in sites)


@pytest.mark.parametrize("kwargs, message", [
    (dict(threshold=1.5), r"`threshold` must be <= 1"),
    (dict(threshold="high"), r"`threshold` must be a finite number, got 'high'"),
])
def test_monitor_refuses_bad_arguments(kwargs, message):
    model, cfg = planted()
    with pytest.raises(AnchorInterventionError, match=message):
        ConceptMonitor(model, cfg, "red", **kwargs)


def test_monitor_called_before_any_forward_says_how_to_use_it():
    model, cfg = planted()
    with ConceptMonitor(model, cfg, "red", threshold=0.5) as monitor:
        with pytest.raises(AnchorInterventionError, match=r"no forward pass.*stopping_criteria"):
            monitor(torch.tensor([[RED[0], 5]]), None)


def test_the_readme_monitoring_example_flags_the_prompt_that_reads_the_concept():
    """The README's example as written, on the tiny model and tokenizer: text prompts, left padding."""
    from tiny import make_tokenizer

    model, cfg = planted()
    tokenizer = make_tokenizer()
    prompts = ["w5 w6 w7", "w8 w57"]
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with ConceptMonitor(model, cfg, "red", threshold=0.4) as monitor:
        out = model.generate(**batch, max_new_tokens=5, stopping_criteria=StoppingCriteriaList([monitor]))
    lines = [("FLAG" if flagged else "ok  ", text)
             for text, flagged in zip(tokenizer.batch_decode(out, skip_special_tokens=True), monitor.flagged)]
    assert lines[1][0] == "FLAG" and lines[1][1].startswith("w8 w57")
    assert monitor.scores.shape == (2, 5)
