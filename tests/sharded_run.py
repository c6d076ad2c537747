"""Helper of the launched tests (tests/test_fsdp.py, tests/test_deepspeed.py): `anchor-hf train` with two hooks.

    accelerate launch --config_file recipes/accelerate_configs/fsdp2_cpu_2proc.yaml \
        tests/sharded_run.py KILL_STEP [--key value ...]

KILL_STEP > 0: when the checkpoint of that step has its model written and not yet its
optimizer state, rank 0 sends itself SIGKILL (`kill -9`): no cleanup, no `finally`, and the
launcher then stops the other rank.
KILL_STEP = 0: trains to the end, and when training ends, on the model as the trainer still
holds it (sharded under FSDP2 / ZeRO-3), intervenes and writes `interventions.json` beside
the weights (rank 0): the logits of `PROBE_IDS` plain, suppressed and steered, then either
the message `ablate` refuses with or the logits after ablating; whether the parameters are
sharded, and how many blocks activation checkpointing wrapped.
"""

import json
import os
import signal
import sys

import torch
from transformers import Trainer, TrainerCallback

import anchor_hf.experiments  # noqa: F401  registers the synthetic dataset of the recipe
from anchor_hf.commands.train import run
from anchor_hf.interventions import ablate, steer, suppress
from anchor_hf.train_args import parse_train_args

PROBE_IDS = torch.arange(24).reshape(2, 12) % 60 + 3  # fixed token ids of the tiny recipe's vocabulary
INTERVENTIONS = "interventions.json"


def logits_of(model: torch.nn.Module) -> list:
    with torch.no_grad():
        return model(input_ids=PROBE_IDS).logits.float().tolist()


def saved_edits(out: str, with_ablate: bool = False) -> tuple[dict[str, torch.Tensor], object]:
    """Logits of the saved model in `out`, loaded in one process: plain, under `suppress` and `steer`
    (and after `ablate`); returns them with the loaded config."""
    from transformers import AutoModelForCausalLM

    from anchor_hf import AnchorConfig

    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    cfg = AnchorConfig.from_pretrained(str(out))
    with torch.no_grad():
        got = {"plain": model(input_ids=PROBE_IDS).logits}
        with suppress(model, cfg, "marked"):
            got["suppress"] = model(input_ids=PROBE_IDS).logits
        with steer(model, cfg, "marked", 2.0):
            got["steer"] = model(input_ids=PROBE_IDS).logits
        if with_ablate:
            ablate(model, cfg, "marked")
            got["ablate"] = model(input_ids=PROBE_IDS).logits
    return got, cfg


def is_sharded(model: torch.nn.Module) -> bool:
    """FSDP2 DTensors, or ZeRO-3 parameters partitioned away (empty locally)."""
    p = next(model.parameters())
    return type(p).__name__ == "DTensor" or (hasattr(p, "ds_id") and p.numel() == 0)


class InterveneAtEnd(TrainerCallback):
    """Runs the interventions on the model as the trainer holds it when training ends."""

    def __init__(self, cfg, out_dir: str) -> None:
        self.cfg, self.out_dir = cfg, out_dir

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.eval()
        found = {"sharded": is_sharded(model),  # before any forward: ZeRO-3 gathers for it
                 "checkpointed_blocks": sum("CheckpointWrapper" in type(m).__name__ for m in model.modules())
                 or sum(bool(getattr(m, "gradient_checkpointing", False)) for m in model.modules()),
                 "plain": logits_of(model)}
        with suppress(model, self.cfg, "marked"):
            found["suppress"] = logits_of(model)
        with steer(model, self.cfg, "marked", 2.0):
            found["steer"] = logits_of(model)
        backup = {n: p.detach().clone() for n, p in model.named_parameters()}  # the run saves them after this
        try:
            ablate(model, self.cfg, "marked")
            found["ablate_error"], found["ablate"] = None, logits_of(model)
            with torch.no_grad():
                for n, p in model.named_parameters():
                    p.copy_(backup[n])
        except Exception as err:  # the tests check the type and message
            found["ablate_error"] = f"{type(err).__name__}: {err}"
        model.train()
        if args.process_index == 0:
            with open(os.path.join(self.out_dir, INTERVENTIONS), "w", encoding="utf-8") as f:
                json.dump(found, f)


def main() -> None:
    kill_step, argv = int(sys.argv[1]), sys.argv[2:]
    if kill_step > 0:
        save_optimizer = Trainer._save_optimizer_and_scheduler

        def save_or_die(self, output_dir: str) -> None:
            if self.state.global_step == kill_step and self.args.process_index == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            save_optimizer(self, output_dir)

        Trainer._save_optimizer_and_scheduler = save_or_die
        run(argv)
        return
    _, _, anchor_args, training_args = parse_train_args(argv)
    run(argv, callbacks=[InterveneAtEnd(anchor_args.to_anchor_config(), training_args.output_dir)])


if __name__ == "__main__":
    main()
