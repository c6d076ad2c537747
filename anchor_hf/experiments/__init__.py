"""The experiments that validate anchor_hf, kept apart from the library they validate.

Each one is a program built on the core's public API only (a core module never imports
from here): data, small models, evaluation, report and its `anchor-hf` sub-command.

- `colour`: colour names and the colour-mixing language (`colour.lm`, `anchor-hf colour` /
  `demo`), and the paper's colour autoencoder (`colour.ae`, `anchor-hf repro-paper`);
- `goemotions`: an emotion anchored in a causal LM on GoEmotions (`anchor-hf goemotions`);
- `robustness`: does a removal stick — relearning, extraction, fingerprint (`anchor-hf robustness`);
- `bench`: what anchoring costs over a plain `Trainer` (`anchor-hf bench`);
- `synthetic`: token walks with one planted concept, the tiny recipe's data.

Importing this package registers the experiments' dataset builders (`anchor_hf.registry`):
`synthetic`, `colour_names`, `colour_mixing`, `colour_cube` and `goemotions`, and the packaged
model `packaged:smollm2-135m-instruct`. `anchor_hf.cli`, the composition root, imports it and
registers the sub-commands listed here; Python code that trains their recipes with
`anchor_hf.commands.train.run` imports it first.
"""

from importlib import import_module

# modules that register a dataset builder (or a packaged model) when imported; each keeps its heavy imports inside
REGISTERING_MODULES = ("anchor_hf.experiments.synthetic", "anchor_hf.experiments.colour.builders",
                       "anchor_hf.experiments.colour.ae.builder", "anchor_hf.experiments.goemotions.builder")
for _module in REGISTERING_MODULES:
    import_module(_module)

# modules whose `register(subparsers)` adds an `anchor-hf` sub-command, in `--help` order
COMMAND_MODULES = ("anchor_hf.experiments.colour.lm.cli", "anchor_hf.experiments.colour.lm.demo",
                   "anchor_hf.experiments.bench.cli", "anchor_hf.experiments.goemotions.cli",
                   "anchor_hf.experiments.robustness.cli", "anchor_hf.experiments.colour.ae.cli")
