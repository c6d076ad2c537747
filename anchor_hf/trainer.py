"""`AnchorTrainerMixin` and `AnchorTrainer`: a Trainer that adds the anchoring term and nothing else.

The mixin overrides only what it must, each for one reason:
- `compute_loss`: add `Σ_k λ_k(t)·Ω_k` after the task loss, from states captured by hooks
  (and, for concepts with `route=True`, route labelled gradients through the anchor);
- `get_batch_samples`: total the label weights over the optimizer step, the way
  `num_items_in_batch` totals tokens, so gradient accumulation and data parallelism do
  not change the anchor gradient;
- `log`: average the anchor metrics collected since the last log (TRL's pattern), and stop
  the run if the anchor term became non-finite (a flag kept on the device, read only here);
- `save_model`: write `anchor_config.json` (and, when the user saves, the model card) beside the weights.
Where batches come from (the collator, dataset checks, TRL's preparation, expected labels in
evaluation) lives in `AnchorDataMixin` (`trainer_data.py`); checkpointing, resume, full-weight
saving under sharded training and sharing in `AnchorCheckpointMixin` (`checkpointing.py`). This
mixin inherits both. A multi-process trainer registers `teardown.release_process_group` to run
at exit, so a user's own script under `accelerate launch` ends cleanly (docs/multiprocess.md).
Put it before any Trainer class: `class MyTrainer(AnchorTrainerMixin, SFTTrainer)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer

from .binding import bind
from .capture import HiddenStateCapture
from .checkpointing import DRAW_STATE, AnchorCheckpointMixin
from .collator import ANCHOR_KEYS, SEGMENT_IDS, WINDOW, masks_from_batch
from .config import AnchorConfig
from .cpu_fsdp import warn_if_fsdp_dropped
from .errors import AnchorCheckpointError, AnchorConfigError, AnchorDataError
from .faults import NonFiniteWatch, check_gradient, nonfinite_error
from .places import place_statistics, warn_outlier_places
from .regularizer import AnchorRegularizer, AnchorWeights
from .routing import GradientRouter
from .schedules import DoseMeter, schedule_factor
from .teardown import release_at_exit
from .trainer_data import AnchorDataMixin, check_packing_collator


class AnchorTrainerMixin(AnchorDataMixin, AnchorCheckpointMixin):
    """Adds Sparse Concept Anchoring to any `transformers.Trainer` subclass.

    Args:
        anchor_config (`AnchorConfig`): what to anchor and where. It is bound to the model
            (`binding.bind`: layers resolved through PEFT/DDP/compile wrappers, width and axes
            checked) before training starts; `trainer.anchor_config` is the bound copy, with
            the resolved module names and hidden size, and is what `save_model` writes. The
            object passed in is not changed, so it can be reused on another model.
        *args, **kwargs: passed to the Trainer class it is mixed into. `data_collator` is an
            `AnchorDataCollator` built with the same config; with TRL's `SFTTrainer` it may be
            left unset (and must be, for packing and padding-free training): the labels then
            travel through TRL's own preparation and collation (`sft_data`, `sft_collator`).
    """

    def __init__(self, *args: Any, anchor_config: AnchorConfig | None = None, **kwargs: Any) -> None:
        if not isinstance(anchor_config, AnchorConfig):
            raise AnchorConfigError(
                f"`anchor_config` must be an AnchorConfig, got {type(anchor_config).__name__}; "
                "pass anchor_config=AnchorConfig(layers=[...], concepts=[...])")
        check_packing_collator(kwargs.get("args"), kwargs.get("data_collator"))
        self.anchor_config = anchor_config  # SFTTrainer prepares its datasets inside __init__ and reads it
        super().__init__(*args, **kwargs)
        self.anchor_config = anchor_config
        self._check_collator()
        self._bind_anchor_config()
        self._check_datasets()
        self._anchor_metrics: dict[str, dict[str, list[torch.Tensor]]] = {"train": defaultdict(list),
                                                                          "eval": defaultdict(list)}
        self._anchor_weight_log: dict[str, dict[str, list[float]]] = {"train": defaultdict(list),
                                                                      "eval": defaultdict(list)}
        self._anchor_dose = DoseMeter()
        self._anchor_window_processes = 1
        self._anchor_window_batches = 1
        self._anchor_draw_state: torch.Tensor | None = None
        self._anchor_watch = NonFiniteWatch()  # first non-finite anchor term, kept on the device
        self._anchor_staging = False
        self._anchor_pending_push = False
        self._seed_collator_per_process()
        if self.args.world_size > 1:
            release_at_exit(self)
            warn_if_fsdp_dropped(self)

    # ------------------------------------------------------------------ setup
    def _bind_anchor_config(self) -> None:
        """Fit the config to the model (`binding.bind`): sites, width and bases, checked before training.

        The user's config object is left as it was; the trainer keeps the bound copy (with
        `resolved_layers` and `hidden_size` filled in) and saves that one beside the weights.
        """
        binding = bind(self.anchor_config, self.model)
        self.anchor_config = binding.config
        self._anchor_names = list(binding.names)
        self._anchor_modules = list(binding.modules)
        cfg = binding.config
        self._anchor_regularizer = AnchorRegularizer(cfg.concepts, binding.hidden_size, cfg.separation_power,
                                                     cfg.separation_samples)

    # ------------------------------------------------------------------ weights
    def _progress(self) -> tuple[float, float]:
        """(training progress in [0, 1], LR-warmup fraction) for the schedules."""
        max_steps = getattr(self.state, "max_steps", 0) or 0
        if max_steps <= 0:
            return 1.0, 0.0
        warmup = self.args.get_warmup_steps(max_steps) / max_steps
        return min(1.0, self.state.global_step / max_steps), warmup

    def anchor_weights(self) -> AnchorWeights:
        """λ of every term at the current step (peak weights times their schedules)."""
        t, warmup = self._progress()
        attract, repel, exclusive = [], [], []
        for c in self.anchor_config.concepts:
            attract.append(c.attract * schedule_factor(c.attract_schedule, t, warmup))
            exclusive.append(c.exclusive * schedule_factor(c.attract_schedule, t, warmup))
            base = c.repel * (c.attract if c.repel_relative else 1.0)
            repel.append(base * schedule_factor(c.repel_schedule, t, warmup))
        cfg = self.anchor_config
        separation = cfg.separation * schedule_factor(cfg.separation_schedule, t, warmup)
        return AnchorWeights(attract=attract, repel=repel, separation=separation, exclusive=exclusive)

    # ------------------------------------------------------------------ loss
    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> tuple[list, Any]:
        # Total the anchor denominators over the optimizer step (all micro-batches, all processes).
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        for b in batch_samples:  # the draw state of the last batch consumed is what a checkpoint must keep
            if isinstance(b, dict) and DRAW_STATE in b:
                self._anchor_draw_state = b.pop(DRAW_STATE)
        batches = [b for b in batch_samples if isinstance(b, dict) and SEGMENT_IDS in b]
        if batches:
            window = sum(masks_from_batch(b).denominators() for b in batches).to(device)
            processes = self.accelerator.num_processes
            if processes > 1:
                window = self.accelerator.gather(window).reshape(processes, -1).sum(0)
            self._anchor_window_processes = processes
            self._anchor_window_batches = len(batches)
            for b in batches:
                b[WINDOW] = window
        return batch_samples, num_items_in_batch

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        anchor = {k: inputs.pop(k) for k in ANCHOR_KEYS if k in inputs}
        inputs.pop(DRAW_STATE, None)  # only present when a batch bypassed get_batch_samples
        if SEGMENT_IDS not in anchor:
            raise AnchorDataError("the batch has no anchor masks (`anchor_segment_ids` missing); batches must come "
                                  "from AnchorDataCollator")
        with self._gradient_router(anchor, model), \
                HiddenStateCapture(self._anchor_modules, self._anchor_names) as capture:
            # ask for outputs only when our caller does: TRL recomputes logits with a second forward for them
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
        loss, outputs = result if return_outputs else (result, None)
        self._check_state_width(capture.states)
        self._check_place_scales(model, capture.states, anchor)
        loss = self.add_anchor_term(model, loss, capture.states, anchor, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def add_anchor_term(self, model: torch.nn.Module, loss: torch.Tensor, states: list[torch.Tensor],
                        anchor: dict[str, Any], num_items_in_batch: torch.Tensor | int | None) -> torch.Tensor:
        """`loss` plus the anchor term of `states` (one `[B, T, D]` per anchored layer); records metrics.

        Separate from `compute_loss` so that another way of obtaining the states (the benchmark's
        `output_hidden_states` capture) goes through the very same weighting and scaling.
        """
        weights = self.anchor_weights()
        training = model.training and torch.is_grad_enabled()
        window = anchor.get(WINDOW) if training else None
        # Micro-batches × processes the window spans: the windowed terms of each are partial sums
        # of the step's mean, while separation and exclusivity are means within each, so they are weighted 1/share.
        share = self._anchor_window_batches * self._anchor_window_processes if window is not None else 1
        term_weights = dataclasses.replace(weights, separation=weights.separation / share,
                                           exclusive=[w / share for w in weights.exclusive])
        # evaluation samples the separation states with a fixed seed: two evaluations give the same numbers
        generator = None if training else torch.Generator().manual_seed(0)
        anchor_loss, stats = self._anchor_regularizer(states, masks_from_batch(anchor), term_weights,
                                                      denominators=window, generator=generator)
        stats["task_loss"] = loss.detach().float() * (self._task_loss_share(num_items_in_batch) if training else 1.0)
        self._record(stats, anchor_loss, weights, "train" if model.training else "eval", share)
        step = self.state.global_step + 1 if training else self.state.global_step
        self._anchor_watch.update(self._anchor_regularizer.last_terms, step, evaluating=not training)
        if training:
            check_gradient(self._anchor_names, states, weights)
            anchor_loss = anchor_loss * self._anchor_loss_scale(num_items_in_batch, window is not None)
            self._anchor_dose.update(self.state.global_step, self._named_weights(weights), self._lr())
        return loss + anchor_loss.to(loss.dtype)

    def _gradient_router(self, anchor: dict[str, Any], model: torch.nn.Module) -> Any:
        """Routing hooks for concepts with `route=True` on training batches (`anchor_hf.routing`)."""
        routed = [i for i, c in enumerate(self.anchor_config.concepts) if c.route]
        if not routed or not (model.training and torch.is_grad_enabled()):
            return contextlib.nullcontext()
        masks = masks_from_batch(anchor)
        labelled = [masks.labelled(i) for i in routed]
        bases = [self._anchor_regularizer.bases[i] for i in routed]
        return GradientRouter(self._anchor_modules, bases, labelled)

    def _loss_is_scaled(self, num_items_in_batch: Any) -> bool:
        """Whether the task loss is already a partial sum of the step's mean (Trainer then skips `/ GA`)."""
        scaled = getattr(self, "loss_is_scaled_for_ga", None)
        if scaled is None:
            scaled = (self.model_accepts_loss_kwargs and num_items_in_batch is not None) \
                or self.compute_loss_func is not None
        return bool(scaled)

    def _anchor_loss_scale(self, num_items_in_batch: Any, windowed: bool) -> float:
        """Factor that makes the windowed anchor term come out right after Trainer's own scaling.

        With step-wide denominators the term is already a mean over the whole optimizer step.
        Trainer divides the loss by the accumulation steps unless the task loss was scaled
        already (the `num_items_in_batch` path), so undo that division; and DDP averages
        gradients over processes while the denominators summed over them, so undo that too.
        """
        if not windowed:
            return 1.0
        scale = 1.0 if self._loss_is_scaled(num_items_in_batch) else float(self.current_gradient_accumulation_steps)
        return scale * self._anchor_window_processes

    def _task_loss_share(self, num_items_in_batch: Any) -> float:
        """Factor that makes the logged `anchor/task_loss` the task part of Trainer's logged `loss`.

        Trainer logs `loss` as the sum over a step's micro-batches of what `training_step`
        returns (the task loss divided by the accumulation steps unless already scaled), and
        `log` averages the records of all micro-batches: so each record is its micro-batch's
        part times the number of micro-batches, as for the windowed anchor terms.
        """
        batches = self._anchor_window_batches
        if self._loss_is_scaled(num_items_in_batch):
            return float(batches)
        steps = getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
        return batches / float(steps)  # outside `train()` Trainer has not set the current steps yet

    def _check_state_width(self, states: list[torch.Tensor]) -> None:
        """Once: the captured states must have the width the directions were built for."""
        if getattr(self, "_anchor_width_checked", False):
            return
        width = self.anchor_config.hidden_size
        for name, state in zip(self._anchor_names, states):
            if state.shape[-1] != width:
                raise AnchorCheckpointError(
                    f"anchored module {name!r} outputs states of width {state.shape[-1]}, but the anchor config "
                    f"is for hidden size {width}; set `AnchorConfig.hidden_size` to the width of that site")
        self._anchor_width_checked = True

    def _check_place_scales(self, model: torch.nn.Module, states: list[torch.Tensor], anchor: dict[str, Any]) -> None:
        """Once, on the first training step: measure each concept's place scale on the model's states, on the
        device; `log` reads it and warns (`places.warn_outlier_places`: on a pretrained model, `dims=[i]` may
        be a massive-activation axis)."""
        if getattr(self, "_anchor_scales_checked", False) or not model.training or self.state.global_step > 0:
            return
        self._anchor_scales_checked = True
        bases = dict(zip([c.name for c in self.anchor_config.concepts], self._anchor_regularizer.bases))
        self._anchor_place_stats = place_statistics(dict(zip(self._anchor_names, states)), bases,
                                                    masks_from_batch(anchor).live)

    def _raise_if_nonfinite(self) -> None:
        """Stop with the concept, layer and step of the first non-finite anchor term (`faults.NonFiniteWatch`)."""
        first = self._anchor_watch.first(self.accelerator)
        if first is not None:
            raise nonfinite_error(*first, self.anchor_config, self._anchor_names)

    def _named_weights(self, weights: AnchorWeights) -> dict[str, float]:
        named = {}
        for c, a, r in zip(self.anchor_config.concepts, weights.attract, weights.repel):
            named[f"{c.name}/weight_attract"] = a
            named[f"{c.name}/weight_repel"] = r
        named["weight_separation"] = weights.separation
        return named

    def _lr(self) -> float:
        try:
            return float(self._get_learning_rate())
        except Exception:  # no scheduler yet (evaluation before training)
            return 0.0

    # ------------------------------------------------------------------ logging
    def _record(self, stats: dict[str, torch.Tensor], anchor_loss: torch.Tensor, weights: AnchorWeights,
                mode: str, share: int = 1) -> None:
        """Collect one micro-batch's metrics; `log` averages them over micro-batches and processes.

        A windowed micro-batch holds a partial sum of the step's term (and its own label count),
        so it is recorded times `share`: the average over the step's `share` records is then the
        step's value, the same however the global batch was split.
        """
        metrics = self._anchor_metrics[mode]
        metrics["loss"].append(anchor_loss.detach().float() * share)
        for key, value in stats.items():
            partial = key.endswith(("/attract", "/repel", "/labels"))
            metrics[key].append(value.detach().float() * (share if partial else 1))
        # schedule weights are Python floats, equal on every process: kept off the device
        for key, value in self._named_weights(weights).items():
            self._anchor_weight_log[mode][key].append(value)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Average what compute_loss collected since the last log, across steps and processes.
        self._raise_if_nonfinite()  # the flag is read here, where logging syncs anyway
        if getattr(self, "_anchor_place_stats", None) is not None:  # measured on the first step, read once here
            warn_outlier_places(self._anchor_place_stats)
            self._anchor_place_stats = None
        mode = "train" if self.model.training else "eval"
        metrics = self._anchor_metrics[mode]
        weight_log = self._anchor_weight_log[mode]
        logs.update({f"{'eval_' if mode == 'eval' else ''}anchor/{k}": round(sum(v) / len(v), 6)
                     for k, v in sorted(weight_log.items())})
        weight_log.clear()
        if metrics:
            keys = sorted(metrics)
            local = torch.stack([torch.stack(metrics[k]).nanmean() for k in keys])
            processes = self.accelerator.num_processes
            if processes > 1:
                local = self.accelerator.gather(local).reshape(processes, -1).nanmean(0)
            prefix = "eval_" if mode == "eval" else ""
            # update in place: `evaluate()` returns this same dict, so eval metrics reach its caller too
            logs.update({f"{prefix}anchor/{k}": round(float(v), 6) for k, v in zip(keys, local.tolist())
                         if not math.isnan(v)})
            if mode == "train":
                logs.update({f"anchor/{_dose_key(k)}": round(v, 8) for k, v in self._anchor_dose.dose.items()})
            metrics.clear()
        super().log(logs, start_time)

    # ------------------------------------------------------------------ saving
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        self._raise_if_nonfinite()  # never save a model the anchor term has made non-finite
        super().save_model(output_dir, _internal_call)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save:
            self.anchor_config.save_pretrained(output_dir)
            if not _internal_call:  # a folder the user saves is one they share: it gets the card
                self.write_anchor_card(os.fspath(output_dir))


def _dose_key(weight_key: str) -> str:
    """`red/weight_attract` -> `red/dose_attract`: only the leaf is renamed, never the concept's name."""
    head, sep, leaf = weight_key.rpartition("/")
    return f"{head}{sep}dose{leaf.removeprefix('weight')}"


class AnchorTrainer(AnchorTrainerMixin, Trainer):
    """`transformers.Trainer` with Sparse Concept Anchoring (see `AnchorTrainerMixin`)."""
