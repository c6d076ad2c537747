"""Helper of tests/test_fsdp.py: `anchor-hf train` in a launched process, with two test hooks.

    accelerate launch --config_file recipes/accelerate_configs/fsdp2_cpu_2proc.yaml \
        tests/sharded_run.py KILL_STEP [--key value ...]

KILL_STEP > 0: when the checkpoint of that step has its model shards written and not yet
its optimizer state, rank 0 sends itself SIGKILL (`kill -9`): no cleanup, no `finally`, and
the launcher then stops the other rank.
KILL_STEP = 0: trains to the end, and when training ends, while the model is still sharded,
intervenes on it and writes `interventions.json` beside the weights (rank 0): the logits of
`PROBE_IDS` plain, suppressed and steered, the message `ablate` refuses with, whether the
parameters are sharded, and how many blocks activation checkpointing wrapped.
"""

import json
import os
import signal
import sys

import torch
from transformers import TrainerCallback

import transformers.trainer as hf_trainer
from anchor_hf.commands.train import run
from anchor_hf.interventions import ablate, steer, suppress
from anchor_hf.train_args import parse_train_args

PROBE_IDS = torch.arange(24).reshape(2, 12) % 60 + 3  # fixed token ids of the tiny recipe's vocabulary
INTERVENTIONS = "interventions.json"


def logits_of(model: torch.nn.Module) -> list:
    with torch.no_grad():
        return model(input_ids=PROBE_IDS).logits.float().tolist()


class InterveneAtEnd(TrainerCallback):
    """Runs the interventions on the model as the trainer holds it when training ends."""

    def __init__(self, cfg, out_dir: str) -> None:
        self.cfg, self.out_dir = cfg, out_dir

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.eval()
        found = {"plain": logits_of(model), "sharded": type(next(model.parameters())).__name__ == "DTensor",
                 "checkpointed_blocks": sum("CheckpointWrapper" in type(m).__name__ for m in model.modules())}
        with suppress(model, self.cfg, "marked"):
            found["suppress"] = logits_of(model)
        with steer(model, self.cfg, "marked", 2.0):
            found["steer"] = logits_of(model)
        try:
            ablate(model, self.cfg, "marked")
            found["ablate_error"] = None
        except Exception as err:  # the test checks the type and message
            found["ablate_error"] = f"{type(err).__name__}: {err}"
        model.train()
        if args.process_index == 0:
            with open(os.path.join(self.out_dir, INTERVENTIONS), "w", encoding="utf-8") as f:
                json.dump(found, f)


def main() -> None:
    kill_step, argv = int(sys.argv[1]), sys.argv[2:]
    if kill_step > 0:
        save_optimizer = hf_trainer.save_fsdp_optimizer

        def save_or_die(plugin, accelerator, optimizer, model, output_dir, *args, **kwargs):
            if accelerator.process_index == 0 and f"checkpoint-{kill_step}" in output_dir:
                os.kill(os.getpid(), signal.SIGKILL)
            return save_optimizer(plugin, accelerator, optimizer, model, output_dir, *args, **kwargs)

        hf_trainer.save_fsdp_optimizer = save_or_die
        run(argv)
        return
    _, _, anchor_args, training_args = parse_train_args(argv)
    run(argv, callbacks=[InterveneAtEnd(anchor_args.to_anchor_config(), training_args.output_dir)])


if __name__ == "__main__":
    main()
