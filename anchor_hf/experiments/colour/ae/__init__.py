"""Reproduce the Sparse Concept Anchoring paper's colour-autoencoder results through anchor_hf.

`recipe` reads a variant's YAML, `train` trains one seed with `AnchorTrainer`, `evaluate`
scores it (per-colour error under suppression and ablation, selectivity R², geometry),
`figures` draws the paper's three-panel figure, `runner` runs every seed and writes the
results, and `report` renders them beside the paper's numbers. Entry point:
`anchor-hf repro-paper --seeds N --out DIR`.
"""

from .recipe import ColourRecipe, load_recipe
from .runner import SUMMARY_KEYS, run_paper, summarize
from .train import TrainedRun, train_run

__all__ = ["ColourRecipe", "load_recipe", "run_paper", "summarize", "SUMMARY_KEYS", "TrainedRun", "train_run"]
