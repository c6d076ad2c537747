"""Data parallelism and accumulation leave the anchored step unchanged (DESIGN.md "Tests and CI").

The anchor denominators are totalled over the optimizer step across micro-batches and
processes (`AnchorTrainerMixin.get_batch_samples`), so a 2-process run on a global batch
of 8 must take the steps of a 1-process run on the same 8 examples, and log the same
anchor metrics. One 2-process launch (about 20-40 s on 2 CPU cores) carries the
equivalence claims, a second one resumes it from a checkpoint; the accumulation claims
run in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import anchor_hf.experiments  # noqa: F401  registers the synthetic dataset of the recipe
from anchor_hf.commands.train import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "tiny_llama_synthetic.yaml")
ACCELERATE_CPU = os.path.join(ROOT, "recipes", "accelerate_configs", "cpu_2proc.yaml")
STEPS = 4
# Exact labels (probability 0 or 1) so the draws cannot depend on how the batch is split.
COMMON = ["--config", RECIPE, "--max_steps", str(STEPS), "--logging_steps", "1", "--save_strategy", "no",
          "--dataset_args.label_rate", "1.0", "--disable_tqdm", "true", "--report_to", "none"]
TERMS = ("loss", "anchor/loss", "anchor/marked/attract", "anchor/marked/repel", "anchor/marked/labels")
# float32 sums in another order (DDP's all-reduce, per-process partial sums) differ by ~1e-7
# relative per step; Adam's first steps divide by sqrt(v) ~ |g| and so pass that on at ~lr·1e-6.
LOSS_TOL, WEIGHT_TOL = 1e-5, 1e-5


def steps_of(out_dir) -> list[dict]:
    history = json.loads(open(os.path.join(out_dir, "trainer_state.json")).read())["log_history"]
    return [h for h in history if "anchor/loss" in h]


def launch_two(out, *extra: str, entry: tuple[str, ...] = ("-m", "anchor_hf.cli", "train")
               ) -> subprocess.CompletedProcess:
    """A 2-process CPU launch through accelerate + the cpu_2proc config (per process 4, global 8)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    # `accelerate launch -m anchor_hf.cli train` through this interpreter, so the test needs no activated
    # environment, from the output's folder, so nothing depends on the working folder being a checkout
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", ACCELERATE_CPU, *entry,
           *COMMON, "--per_device_train_batch_size", "4", "--save_strategy", "steps", "--save_steps", "2",
           "--output_dir", str(out), *extra]
    return subprocess.run(cmd, env=env, cwd=os.path.dirname(out), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("two")
    return out, launch_two(out)


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    trainer = run([*COMMON, "--per_device_train_batch_size", "8", "--output_dir", str(out)])
    return out, trainer


def test_two_processes_exit_cleanly_with_whole_checkpoints_of_both_ranks(two_process_run):
    out, done = two_process_run
    assert done.returncode == 0, done.stderr[-3000:]
    for sign in ("Aborted", "terminate called", "core dumped", "Traceback"):
        assert sign not in done.stderr
    assert not os.path.exists(os.path.join(out, "_anchor_staging"))
    for step in (2, 4):
        files = os.listdir(os.path.join(out, f"checkpoint-{step}"))
        for name in ("anchor_state_0.json", "anchor_state_1.json", "rng_state_0.pth", "rng_state_1.pth",
                     "model.safetensors", "optimizer.pt", "trainer_state.json"):
            assert name in files, (step, name)


def test_a_failing_rank_brings_the_launch_down_and_leaves_only_whole_checkpoints(tmp_path):
    """Rank 1 raises at step 3, after checkpoint-2 is written, and rank 0 is left waiting in the next
    all-reduce: the launch must end (non-zero, well inside the 300 s timeout) instead of hanging, with
    checkpoint-2 whole for both ranks and nothing written for step 4."""
    done = launch_two(tmp_path, entry=(os.path.join(ROOT, "tests", "failing_rank_run.py"), "1", "3"))
    assert done.returncode != 0
    assert "injected fault on rank 1 at step 3" in done.stdout + done.stderr
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("checkpoint-")) == ["checkpoint-2"]
    assert {"anchor_state_0.json", "anchor_state_1.json", "model.safetensors"} <= \
        set(os.listdir(tmp_path / "checkpoint-2"))
    assert not os.path.exists(tmp_path / "_anchor_staging")


def test_two_processes_resumed_from_a_checkpoint_end_with_the_same_weights(two_process_run, tmp_path):
    """Second launch: continue the run from its checkpoint-2 (per-rank anchor state, staged saves)."""
    (out, done) = two_process_run
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.copytree(os.path.join(out, "checkpoint-2"), tmp_path / "checkpoint-2")
    resumed = launch_two(tmp_path, "--resume_from_checkpoint", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    wa, wb = load_file(os.path.join(out, "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-6
    first = load_file(str(tmp_path / "checkpoint-2" / "model.safetensors"))
    assert max((wa[k] - first[k]).abs().max().item() for k in wa) > 1e-4  # control: steps 3-4 did train
    assert [h["step"] for h in steps_of(tmp_path)] == list(range(1, STEPS + 1))


def test_two_processes_take_the_steps_of_one_process_on_the_same_global_batch(two_process_run, one_process_run):
    """Per-step total loss and every anchor term match; so do the final weights."""
    (two, done), (one, _) = two_process_run, one_process_run
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = steps_of(one), steps_of(two)
    assert len(a) == len(b) == STEPS
    for step_a, step_b in zip(a, b):
        for key in TERMS:
            assert step_b[key] == pytest.approx(step_a[key], rel=LOSS_TOL, abs=1e-6), (step_a["step"], key)
    wa, wb = load_file(os.path.join(one, "model.safetensors")), load_file(os.path.join(two, "model.safetensors"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < WEIGHT_TOL
    # negative control: the anchor term is non-zero, so matching it is not trivial
    assert all(step["anchor/marked/attract"] > 0.01 for step in a if step["anchor/marked/labels"] > 0)


def test_logged_anchor_metrics_are_reduced_across_processes(two_process_run, one_process_run):
    """The 2-process log shows the global batch's label count, not rank 0's half of it.

    Negative control: at some step the two halves of the global batch (rank 0's and rank 1's
    shards) hold different label counts, so a log of one process alone would differ.
    """
    (two, _), (_, trainer) = two_process_run, one_process_run
    loader = trainer.get_train_dataloader()  # same seed, same epoch-0 order as the run
    halves = []
    for _, batch in zip(range(STEPS), loader):
        weights = batch["anchor_span_weights"][:, 0]
        halves.append((float(weights[:4].sum()), float(weights[4:].sum())))
    assert any(h0 != h1 for h0, h1 in halves)
    for (h0, h1), step in zip(halves, steps_of(two)):
        assert step["anchor/marked/labels"] == h0 + h1


def test_accumulation_does_not_change_the_logged_anchor_terms(tmp_path):
    """2 micro-batches of 4 log the anchor terms of 1 batch of 8 (each micro-batch holds a partial sum).

    Negative control: the per-micro-batch partial sums (the logged value divided by the
    micro-batch count) would be half as large, which the tolerance rules out.
    """
    one = run([*COMMON, "--per_device_train_batch_size", "8", "--output_dir", str(tmp_path / "a")])
    two = run([*COMMON, "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
               "--output_dir", str(tmp_path / "b")])
    a, b = steps_of_trainer(one), steps_of_trainer(two)
    for step_a, step_b in zip(a, b):
        for key in TERMS:
            assert step_b[key] == pytest.approx(step_a[key], rel=LOSS_TOL, abs=1e-6), key
        assert step_b["anchor/loss"] / 2 != pytest.approx(step_a["anchor/loss"], rel=0.1)


def steps_of_trainer(trainer) -> list[dict]:
    return [h for h in trainer.state.log_history if "anchor/loss" in h]


def test_separation_is_a_mean_over_micro_batches_not_a_sum(tmp_path):
    """Accumulating two copies of a batch equals one step on that batch, separation included.

    Every term is a mean (labels, live tokens, or micro-batches for the pairwise separation
    term), so duplicating each micro-batch must change nothing. Negative control: the same
    check on the run without the 1/micro-batches weighting is a factor 2 off in separation,
    seen here as a different step when separation alone is doubled.
    """
    anchor = json.dumps({"layers": [0, 1], "separation": 0.5, "separation_samples": 4096,
                         "concepts": [{"name": "marked", "dims": [0], "attract": 0.5, "repel": 1.0}]})
    base = [*COMMON, "--anchor_config", anchor, "--max_steps", "3", "--train_sampling_strategy", "sequential"]
    four = ["--dataset_args.min_len", "32", "--dataset_args.examples", "4"]
    single = run([*base, *four, "--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "single")])
    from anchor_hf.experiments import synthetic

    # the same 4 examples twice: micro-batch 1 and 2 of every step are identical
    doubled_rows = synthetic.synthetic_concept_dataset(4, concept_rate=0.25, label_rate=1.0, min_len=32)
    from datasets import concatenate_datasets

    path = tmp_path / "doubled"
    concatenate_datasets([doubled_rows, doubled_rows]).save_to_disk(str(path))
    own_data = [a for i, a in enumerate(base) if "--dataset_args.label_rate" not in base[max(i - 1, 0):i + 1]]
    doubled = run([*own_data, "--dataset", str(path), "--dataset_args", "null", "--tokenizer_name_or_path",
                   _tokenizer(tmp_path), "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
                   "--output_dir", str(tmp_path / "doubled_run")])
    w1 = {n: p.detach() for n, p in single.model.named_parameters()}
    w2 = {n: p.detach() for n, p in doubled.model.named_parameters()}
    assert max((w1[n] - w2[n]).abs().max().item() for n in w1) < 1e-6
    sep = [h["anchor/separation"] for h in steps_of_trainer(doubled)]
    assert all(s > 1e-3 for s in sep)  # the term is active
    strong = run([*base, "--anchor_config", anchor.replace('"separation": 0.5', '"separation": 1.0'),
                  *four, "--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "strong")])
    w3 = {n: p.detach() for n, p in strong.model.named_parameters()}
    assert max((w1[n] - w3[n]).abs().max().item() for n in w1) > 1e-5


def _tokenizer(tmp_path) -> str:
    from anchor_hf.experiments.synthetic import synthetic_tokenizer

    synthetic_tokenizer(64).save_pretrained(tmp_path / "tok")
    return str(tmp_path / "tok")


def test_fully_sharded_model_resolves_the_same_layers_and_gets_the_same_anchor_gradient(tmp_path):
    """FSDP2 (`fully_shard`, the recipes' fsdp2 config) on a 1-process gloo group, on CPU.

    Sharding turns parameters into DTensors but keeps module names and objects, so layers
    resolve to the same names, hooks capture the same states, and the gradient of task +
    anchor loss equals the unsharded model's. Negative control: the anchor term is non-zero
    and moves the gradient.
    """
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    from anchor_hf.capture import HiddenStateCapture
    from anchor_hf.collator import AnchorDataCollator, masks_from_batch
    from anchor_hf.config import AnchorConfig
    from anchor_hf.experiments.synthetic import synthetic_concept_dataset, synthetic_tokenizer
    from anchor_hf.layers import resolve_layers
    from anchor_hf.regularizer import AnchorRegularizer, AnchorWeights
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = AnchorConfig(layers=[0, -1], concepts=[{"name": "marked", "dims": [0], "attract": 1.0, "repel": 1.0}])
    rows = list(synthetic_concept_dataset(8, concept_rate=0.5, label_rate=1.0, seed=1))
    batch = AnchorDataCollator(synthetic_tokenizer(64), cfg, draw="expected")(rows)
    regularizer = AnchorRegularizer(cfg.concepts, 32)

    def gradients(model, weight: float) -> dict[str, torch.Tensor]:
        sites = resolve_layers(model, cfg.layers)
        with HiddenStateCapture([m for _, m in sites]) as capture:
            loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss
        term, _ = regularizer(capture.states, masks_from_batch(batch), AnchorWeights([weight], [weight]))
        (loss + term).backward()
        full = {n: p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
                for n, p in model.named_parameters()}
        return {"names": [n for n, _ in sites], **full}

    def llama() -> LlamaForCausalLM:
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                            num_key_value_heads=2, intermediate_size=64, vocab_size=64))

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        sharded = llama()
        for layer in sharded.model.layers:
            fully_shard(layer)
        fully_shard(sharded)
        assert type(next(sharded.parameters())).__name__ == "DTensor"
        got = gradients(sharded, 1.0)
    finally:
        dist.destroy_process_group()
    want, plain = gradients(llama(), 1.0), gradients(llama(), 0.0)
    assert got["names"] == want["names"] == ["model.layers.0", "model.layers.1"]
    params = [k for k in want if k != "names"]
    assert max((got[k] - want[k]).abs().max().item() for k in params) < 1e-6
    assert max((plain[k] - want[k]).abs().max().item() for k in params) > 1e-4
