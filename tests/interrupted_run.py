"""Helper of tests/test_resume.py: `anchor-hf train` killed in the middle of writing a checkpoint.

    python tests/interrupted_run.py KILL_STEP [--key value ...]

Trains as `anchor_hf.commands.train.run(argv)` would, but when the checkpoint of step
KILL_STEP has its model written and not yet its optimizer, the process dies with
`os._exit(17)`: no cleanup, no `finally`, as if the machine had lost power.
"""

import os
import sys

from transformers import Trainer

import anchor_hf.experiments  # noqa: F401  registers the synthetic dataset of the recipe
from anchor_hf.commands.train import run

KILLED = 17


def main() -> None:
    kill_step = int(sys.argv[1])
    save_optimizer = Trainer._save_optimizer_and_scheduler

    def save_or_die(self, output_dir: str) -> None:
        if self.state.global_step == kill_step:
            os._exit(KILLED)
        save_optimizer(self, output_dir)

    Trainer._save_optimizer_and_scheduler = save_or_die
    run(sys.argv[2:])


if __name__ == "__main__":
    main()
