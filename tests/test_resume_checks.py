"""Resume refuses what would not resume: a broken anchor state, another anchor config, a finished run.

The equality of a resumed and an uninterrupted run is shown in tests/test_resume.py; here
each checkpoint is made by a 2-step run (one checkpoint per step) and then damaged.
"""

from __future__ import annotations

import shutil

import pytest

from anchor_hf import AnchorCheckpointError, AnchorConfig, ConceptAnchor
from tiny import make_model
from trainer_utils import anchor_config, anchored_trainer, exact_rows, sgd_args


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 2-step run on 256 rows (32 batches an epoch), checkpointed at steps 1 and 2."""
    from tiny import make_tokenizer

    out = tmp_path_factory.mktemp("finished")
    args = sgd_args(out, steps=2, save_strategy="steps", save_steps=1, learning_rate=1e-3)
    anchored_trainer(make_model("llama"), make_tokenizer(), args, anchor_config(), exact_rows(n=256),
                     draw="bernoulli").train()
    return out


def resume(tmp_path, tokenizer, checkpoint, cfg: AnchorConfig | None = None, steps: int = 3, **kw):
    """A new trainer resuming `checkpoint`; returns it once trained."""
    args = sgd_args(tmp_path, steps=steps, learning_rate=1e-3, **kw)
    trainer = anchored_trainer(make_model("llama"), tokenizer, args, cfg or anchor_config(), exact_rows(n=256),
                               draw="bernoulli")
    trainer.train(resume_from_checkpoint=str(checkpoint))
    return trainer


def copy_of(finished, tmp_path, step: int = 1):
    checkpoint = tmp_path / f"checkpoint-{step}"
    shutil.copytree(finished / checkpoint.name, checkpoint)
    return checkpoint


def test_resume_continues_from_an_intact_checkpoint(finished, tmp_path, tokenizer):
    """Control for the refusals below: the same checkpoint, untouched, resumes to step 3."""
    assert resume(tmp_path, tokenizer, copy_of(finished, tmp_path)).state.global_step == 3


@pytest.mark.parametrize("content, match", [
    ("{}", r"anchor_state.json has no `dose`, `collator`"),
    ('{"dose": {}, "collator": {"seed": 0}}', r"anchor_state.json: `collator` has no `generator`"),
    ('{"dose": {"dose": {}}, "coll', r"anchor_state.json is not valid JSON"),
    ("[1, 2]", r"anchor_state.json must hold a JSON object"),
])
def test_a_broken_anchor_state_is_refused_naming_the_file(finished, tmp_path, tokenizer, content, match):
    """`{}` used to resume without the label draws and without a word; a truncated file gave a raw
    JSONDecodeError without the path."""
    checkpoint = copy_of(finished, tmp_path)
    (checkpoint / "anchor_state.json").write_text(content)
    with pytest.raises(AnchorCheckpointError, match=rf"{checkpoint}.*{match}"):
        resume(tmp_path, tokenizer, checkpoint)


def test_a_checkpoint_without_anchor_state_resumes_with_a_warning(finished, tmp_path, tokenizer):
    checkpoint = copy_of(finished, tmp_path)
    (checkpoint / "anchor_state.json").unlink()
    with pytest.warns(UserWarning, match=r"has no anchor_state.json: the label draws restart from the seed and the "
                                         r"dose from 0"):
        resume(tmp_path, tokenizer, checkpoint)


@pytest.mark.parametrize("cfg, match", [
    (AnchorConfig(layers=[0, -1], concepts=[ConceptAnchor(name="red", dims=[4], attract=1.0, repel=0.5)]),
     r"`concepts\[0\].dims`: \[3\] in the checkpoint, \[4\] now"),
    (AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="red", dims=[3], attract=1.0, repel=0.5)]),
     r"`layers`: \[0, -1\] in the checkpoint, \[0\] now"),
])
def test_resuming_with_another_anchor_config_is_refused(finished, tmp_path, tokenizer, cfg, match):
    checkpoint = copy_of(finished, tmp_path)
    with pytest.raises(AnchorCheckpointError, match=rf"{checkpoint} was trained with another anchor config: {match}"):
        resume(tmp_path, tokenizer, checkpoint, cfg=cfg)


def test_resuming_a_finished_run_is_refused_instead_of_training_one_more_step(finished, tmp_path, tokenizer):
    """Upstream Trainer, resumed at step == max_steps mid-epoch, trains step max_steps + 1."""
    checkpoint = copy_of(finished, tmp_path, step=2)
    with pytest.raises(AnchorCheckpointError, match=r"is at step 2, and this run stops at `max_steps` = 2: it is "
                                                    r"finished.*raise `max_steps`"):
        resume(tmp_path, tokenizer, checkpoint, steps=2)


def test_resuming_with_dataloader_workers_warns_that_the_draws_are_not_replayed(finished, tmp_path, tokenizer):
    checkpoint = copy_of(finished, tmp_path)
    with pytest.warns(UserWarning, match=r"`dataloader_num_workers` = 1: each worker draws labels from its own copy "
                                         r"of the collator, so the resumed run does not replay"):
        resume(tmp_path, tokenizer, checkpoint, dataloader_num_workers=1)
