"""`anchor-hf train` as a script file, for launchers that want a path (`-m anchor_hf.cli train` is the same).

    accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml \
        scripts/train.py --config recipes/tiny_llama_synthetic.yaml
    torchrun --nproc_per_node 2 scripts/train.py --config recipes/tiny_llama_synthetic.yaml
"""

import sys

import anchor_hf.experiments  # noqa: F401  registers the experiments' datasets (synthetic, colour, goemotions)
from anchor_hf.commands.train import launch


def main(argv: list[str] | None = None) -> int:
    return launch(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
