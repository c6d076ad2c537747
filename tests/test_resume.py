"""Resume: a run killed mid-way and resumed from its last checkpoint ends where an uninterrupted run ends.

The killed run dies (os._exit, in a subprocess) while writing its second checkpoint, after
the weights and before the optimizer state, so the test also shows that a half-written
checkpoint never takes a `checkpoint-N` name. Labels are drawn at random per visit and the
anchor weight follows a schedule, so weights, label draws, schedule position and dose must
all be restored for the runs to agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import anchor_hf.experiments  # noqa: F401  registers the synthetic dataset of the recipe
from anchor_hf.commands.train import run

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPE = os.path.join(os.path.dirname(HERE), "recipes", "tiny_llama_synthetic.yaml")
ANCHOR = json.dumps({"layers": [0, 1], "concepts": [{
    "name": "marked", "dims": [0], "attract": 0.5, "repel": 1.0, "tau": 0.1,
    "attract_schedule": {"ramp_end": 0.25, "anneal_start": 0.5, "anneal_end": 0.9, "floor": 0.1}}]})
STEPS, SAVE_EVERY = 8, 3  # checkpoints at 3 and 6; the run dies while writing checkpoint-6
ARGS = ["--config", RECIPE, "--anchor_config", ANCHOR, "--max_steps", str(STEPS), "--save_steps", str(SAVE_EVERY),
        "--save_total_limit", "3", "--logging_steps", "1", "--dataset_args.label_rate", "0.5", "--disable_tqdm", "true",
        "--report_to", "none"]


def anchor_logs(trainer) -> list[dict]:
    return [{k: v for k, v in h.items() if k.startswith("anchor/") or k in ("step", "loss", "learning_rate")}
            for h in trainer.state.log_history if "anchor/loss" in h]


def weights(trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    full = run([*ARGS, "--output_dir", str(root / "full")])
    killed_dir = root / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run([sys.executable, os.path.join(HERE, "interrupted_run.py"), str(2 * SAVE_EVERY), *ARGS,
                           "--output_dir", str(killed_dir)], env=env, capture_output=True, text=True, timeout=300)
    listing = sorted(os.listdir(killed_dir))
    staged = sorted(os.listdir(killed_dir / "_anchor_staging" / f"checkpoint-{2 * SAVE_EVERY}"))
    resumed = run([*ARGS, "--output_dir", str(killed_dir), "--resume_from_checkpoint", "last"])
    return {"full": full, "resumed": resumed, "killed": done, "listing": listing, "staged": staged,
            "dir": killed_dir}


def test_the_run_was_killed_while_writing_a_checkpoint_and_left_no_half_checkpoint(runs):
    assert runs["killed"].returncode == 17, runs["killed"].stderr[-2000:]
    assert f"checkpoint-{SAVE_EVERY}" in runs["listing"]
    assert f"checkpoint-{2 * SAVE_EVERY}" not in runs["listing"]  # only a complete checkpoint gets the name
    # what the kill left: the weights of checkpoint-6 but not its optimizer, under the staging folder
    assert "model.safetensors" in runs["staged"] and "optimizer.pt" not in runs["staged"]
    complete = sorted(os.listdir(runs["dir"] / f"checkpoint-{SAVE_EVERY}"))
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json", "anchor_state.json",
                 "anchor_config.json"):
        assert name in complete


def test_resumed_run_ends_with_the_weights_of_the_uninterrupted_run(runs):
    a, b = weights(runs["full"]), weights(runs["resumed"])
    # same process, same thread count, same operations in the same order: equal up to float noise
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert max((a[k] - w).abs().max().item() for k, w in weights_at_start(runs).items()) > 1e-3  # it trained


def weights_at_start(runs) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(runs["dir"] / f"checkpoint-{SAVE_EVERY}" / "model.safetensors"))


def test_resumed_run_has_the_same_schedule_position_dose_and_anchor_metrics(runs):
    full, resumed = runs["full"], runs["resumed"]
    assert resumed.state.global_step == full.state.global_step == STEPS
    assert resumed.lr_scheduler.get_last_lr() == full.lr_scheduler.get_last_lr()
    assert resumed.anchor_weights() == full.anchor_weights()
    assert resumed._anchor_dose.dose == pytest.approx(full._anchor_dose.dose, rel=1e-9)
    assert resumed._anchor_dose.dose["marked/weight_attract"] > 0
    logs_full, logs_resumed = anchor_logs(full), anchor_logs(resumed)
    assert [h["step"] for h in logs_resumed] == list(range(1, STEPS + 1))
    for a, b in zip(logs_full, logs_resumed):
        assert b.keys() == a.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["step"], key)
    weights_over_time = [h["anchor/marked/weight_attract"] for h in logs_full]
    assert len(set(weights_over_time)) > 2  # control: the schedule moves, so its position matters


def test_resuming_without_the_anchor_state_ends_elsewhere(runs, tmp_path):
    """Negative control: without `anchor_state.json` the label draws restart from the seed, and the
    run ends with other weights, so restoring the draws is what makes the runs agree."""
    import shutil

    checkpoint = tmp_path / f"checkpoint-{SAVE_EVERY}"
    shutil.copytree(runs["dir"] / checkpoint.name, checkpoint)
    (checkpoint / "anchor_state.json").unlink()
    other = run([*ARGS, "--output_dir", str(tmp_path), "--resume_from_checkpoint", "last"])
    a, b = weights(runs["full"]), weights(other)
    assert max((a[k] - b[k]).abs().max().item() for k in a) > 1e-5


def test_checkpoint_keeps_the_draw_state_of_the_last_trained_batch_not_the_prefetched_one(runs):
    """The dataloader collates batch k+1 before step k runs; the checkpoint of step k must hold
    the label RNG as it was after batch k, or a resumed run would skip one batch's draws."""
    full = runs["full"]
    collator = full.data_collator
    collator.generator.manual_seed(collator.seed)  # replay the draws of the first epoch in order
    after = [batch["anchor_draw_state"] for _, batch in zip(range(SAVE_EVERY + 1), full.get_train_dataloader())]
    saved = json.loads((runs["dir"] / f"checkpoint-{SAVE_EVERY}" / "anchor_state.json").read_text())
    saved_state = torch.tensor(saved["collator"]["generator"], dtype=torch.uint8)
    assert torch.equal(saved_state, after[SAVE_EVERY - 1])
    assert not torch.equal(saved_state, after[SAVE_EVERY])  # control: the prefetched batch's state differs


def test_staging_leftover_is_cleared_by_the_next_complete_checkpoint(runs):
    assert not os.path.exists(runs["dir"] / "_anchor_staging")
    assert f"checkpoint-{2 * SAVE_EVERY}" in os.listdir(runs["dir"])


def test_rotation_keeps_the_newest_whole_checkpoints(tmp_path):
    """Renamed checkpoints still obey `save_total_limit`: 6 saves with a limit of 2 leave steps 5 and 6."""
    run([*ARGS, "--max_steps", "6", "--save_steps", "1", "--save_total_limit", "2", "--output_dir", str(tmp_path)])
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("checkpoint-")) == ["checkpoint-5", "checkpoint-6"]
    assert not os.path.exists(tmp_path / "_anchor_staging")
