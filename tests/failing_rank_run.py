"""Helper of tests/test_multiprocess.py: `anchor-hf train` in which one rank fails mid-run.

    accelerate launch ... tests/failing_rank_run.py RANK STEP [--key value ...]

Trains as `anchor_hf.commands.train.run(argv)` would, but process RANK raises at the start
of step STEP, as a rank whose GPU failed or whose data broke would. The other rank is then
blocked in the next collective; the launcher must bring the whole run down, not hang.
"""

import sys

from transformers import TrainerCallback

import anchor_hf.experiments  # noqa: F401  registers the synthetic dataset of the recipe
from anchor_hf.commands import train


class FailAt(TrainerCallback):
    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = rank, step

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003 (Trainer's signature)
        if args.process_index == self.rank and state.global_step + 1 == self.step:
            raise RuntimeError(f"injected fault on rank {self.rank} at step {self.step}")


def main() -> None:
    rank, step = int(sys.argv[1]), int(sys.argv[2])
    original = train.run
    train.run = lambda argv, callbacks=None: original(argv, callbacks=[FailAt(rank, step)])
    train.launch(sys.argv[3:])


if __name__ == "__main__":
    main()
