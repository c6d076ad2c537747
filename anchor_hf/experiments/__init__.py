"""The experiments that validate anchor_hf, kept apart from the library they validate.

Each one is a program built on the core's public API only (a core module never imports
from here): data, small models, evaluation, report and its `anchor-hf` sub-command.

- `colour`: colour names and the colour-mixing language (`colour.lm`, `anchor-hf colour` /
  `demo`), and the paper's colour autoencoder (`colour.ae`, `anchor-hf repro-paper`);
- `goemotions`: an emotion anchored in a causal LM on GoEmotions (`anchor-hf goemotions`);
- `robustness`: does a removal stick — relearning, extraction, fingerprint (`anchor-hf robustness`);
- `bench`: what anchoring costs over a plain `Trainer` (`anchor-hf bench`);
- `synthetic`: token walks with one planted concept, the tiny recipe's data.

`anchor_hf.cli`, the composition root, registers the sub-commands listed here.
"""

# modules whose `register(subparsers)` adds an `anchor-hf` sub-command, in `--help` order
COMMAND_MODULES = ("anchor_hf.experiments.colour.lm.cli", "anchor_hf.experiments.colour.lm.demo",
                   "anchor_hf.experiments.bench.cli", "anchor_hf.experiments.goemotions.cli",
                   "anchor_hf.experiments.robustness.cli", "anchor_hf.experiments.colour.ae.cli")
