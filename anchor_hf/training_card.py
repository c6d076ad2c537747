"""Trainer's training summary for a model card, with what it misstates about many runs made true.

`transformers.modelcard.TrainingSummary.from_trainer` writes the hyperparameters, results
and framework versions a card should keep, but takes the base model from
`config._name_or_path` even when that is empty (a model built from a config: "a fine-tuned
version of [](https://huggingface.co/)") or a folder on this machine (then: "trained from
scratch"), names an in-memory dataset "None", and calls every distributed run "multi-GPU",
CPU runs included. We keep its summary and state those three facts as they are.
"""

from __future__ import annotations

import os
from typing import Any

from transformers.modelcard import TrainingSummary

# What `TrainingSummary` writes when told neither base model nor dataset; we replace it by what is true.
NEUTRAL_SENTENCE = "This model was trained from scratch on an unknown dataset."


def base_model_id(model: Any) -> str | None:
    """The Hub id the model was loaded from, or None (built from a config, or loaded from a local folder)."""
    config = getattr(model, "config", None)
    name = getattr(config, "_name_or_path", "") or ""
    return name if name and not os.path.exists(name) else None


def provenance(model: Any) -> str:
    """`trained from scratch`, `fine-tuned from [id](https://huggingface.co/id)` or `fine-tuned from a local
    checkpoint`."""
    hub_id = base_model_id(model)
    if hub_id is not None:
        return f"fine-tuned from [{hub_id}](https://huggingface.co/{hub_id})"
    local = getattr(getattr(model, "config", None), "_name_or_path", "")
    return "fine-tuned from a local checkpoint" if local else "trained from scratch"


def dataset_phrase(names: list[str], dataset: Any) -> str:
    """`the X dataset` for named datasets, else `a local dataset (N examples)`."""
    if names:
        return f"the {names[0]} dataset" if len(names) == 1 else \
            ", ".join(f"the {n}" for n in names[:-1]) + f" and the {names[-1]} datasets"
    try:
        return f"a local dataset ({len(dataset)} examples)"
    except TypeError:  # an iterable dataset has no length
        return "a local dataset"


def distributed_type(trainer: Any) -> str:
    """The kind of distributed run as accelerate knows it: `multi-CPU`, `multi-GPU`, `deepspeed`, `fsdp`, ..."""
    kind = str(getattr(trainer.accelerator.distributed_type, "value", trainer.accelerator.distributed_type))
    return f"multi-{kind[len('MULTI_'):]}" if kind.startswith("MULTI_") else kind.lower()


def training_summary(trainer: Any, **kwargs: Any) -> str:
    """Trainer's model card text (keyword arguments as `Trainer.create_model_card`), its provenance made true.

    The opening sentence says what the model was trained from (`provenance`) and on what
    (`dataset_phrase`); a distributed run's `distributed_type` is accelerate's own.
    """
    summary = TrainingSummary.from_trainer(trainer, **kwargs)
    names = [str(d) for d in (summary.dataset if isinstance(summary.dataset, (list, tuple)) else [summary.dataset])
             if d]
    summary.finetuned_from, summary.dataset = None, None
    if "distributed_type" in summary.hyperparameters:
        summary.hyperparameters["distributed_type"] = distributed_type(trainer)
    sentence = f"This model was {provenance(trainer.model)} on {dataset_phrase(names, trainer.train_dataset)}."
    return summary.to_model_card().replace(NEUTRAL_SENTENCE, sentence, 1)
