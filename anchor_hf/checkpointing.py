"""`AnchorCheckpointMixin`: checkpoints that are never half-written, and resume that replays labels.

Overrides, each for one reason:
- `get_train_dataloader`: tag each batch with the label-draw RNG state right after its draws
  (the dataloader prefetches, so the collator's own state runs a batch ahead);
- `_get_output_dir`, `_save_checkpoint`: write each checkpoint into a staging folder and rename
  it into place once every process has written its part, with the anchor state (dose and
  label-draw RNG as of the last batch trained on);
- `_load_optimizer_and_scheduler`: restore that state on resume (it runs under every backend;
  DeepSpeed skips `_load_from_checkpoint`);
- `save_model`: full weights in the folder a user saves, also when FSDP writes its checkpoints
  sharded (Trainer writes no weights at all then);
- `create_model_card`, `_push_from_checkpoint`: share `anchor_config.json` and a card listing
  the anchored concepts (`anchor_hf.hub`), under Trainer's summary made true (`training_card`).
It expects the attributes `AnchorTrainerMixin` sets (`anchor_config`, `_anchor_dose`,
`_anchor_draw_state`, `_anchor_staging`, `_anchor_pending_push`) and its `_raise_if_nonfinite`.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import warnings
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from .config import CONFIG_NAME, AnchorConfig
from .errors import AnchorCheckpointError
from .io import write_text

STATE_NAME = "anchor_state.json"
STAGING_DIR = "_anchor_staging"  # checkpoints are written here, then renamed; `_*` is never pushed
DRAW_STATE = "anchor_draw_state"  # label-draw RNG state after a batch's draws, added by `_DrawStateTagger`


class AnchorCheckpointMixin:
    """Staged checkpoints, anchor state on resume, and anchor-aware Hub sharing for a Trainer."""

    # A batch is drawn before the step that trains on it (the dataloader prefetches), so the
    # collator's own RNG state runs ahead; each batch carries the state right after its draws.
    def get_train_dataloader(self) -> Any:
        collator = self.data_collator
        draws = isinstance(getattr(collator, "generator", None), torch.Generator)
        iterable = isinstance(self.train_dataset, torch.utils.data.IterableDataset)
        if draws and not iterable and self.args.dataloader_num_workers == 0:  # workers draw from copies
            self.data_collator = _DrawStateTagger(collator)
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = collator

    # Checkpoints go to `<output_dir>/_anchor_staging/checkpoint-N` and are renamed into place once
    # every process has written its part, so a killed run never leaves a half-written checkpoint-N.
    def _get_output_dir(self, trial: Any) -> str:
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING_DIR) if self._anchor_staging else run_dir

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        self._raise_if_nonfinite()  # a checkpoint of a NaN model would only be resumed into the same failure
        run_dir = self._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staged, final = os.path.join(run_dir, STAGING_DIR, name), os.path.join(run_dir, name)
        self._anchor_staging = True
        try:
            super()._save_checkpoint(model, trial)
            self._save_anchor_state(staged)
        finally:
            self._anchor_staging = False
        best = self.state.best_model_checkpoint
        if best is not None and os.path.dirname(best) == os.path.dirname(staged):
            self.state.best_model_checkpoint = os.path.join(run_dir, os.path.basename(best))
            if self.args.should_save:
                self.state.save_to_json(os.path.join(staged, "trainer_state.json"))
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            if os.path.isdir(final):  # the same step saved again (e.g. right after resuming from it)
                shutil.rmtree(final)
            os.replace(staged, final)
            shutil.rmtree(os.path.join(run_dir, STAGING_DIR), ignore_errors=True)
            rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=False)
        self.accelerator.wait_for_everyone()
        if self._anchor_pending_push:
            self._anchor_pending_push = False
            self._push_from_checkpoint(final)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        plugin = getattr(self.accelerator.state, "fsdp_plugin", None) if getattr(self, "is_fsdp_enabled", False) \
            else None
        kind = plugin.state_dict_type if plugin is not None else None
        sharded = kind is not None and not _internal_call and "SHARDED" in str(kind)
        if sharded:
            plugin.set_state_dict_type("FULL_STATE_DICT")  # gathered to process 0, as accelerate's docs advise
        try:
            super().save_model(output_dir, _internal_call)
        finally:
            if sharded:
                plugin.state_dict_type = kind

    def _save_anchor_state(self, output_dir: str) -> None:
        """Write this process's dose and label-draw RNG state (one file per process when several)."""
        draw = self.data_collator.state_dict()
        if self._anchor_draw_state is not None:
            draw = {**draw, "generator": self._anchor_draw_state.tolist()}
        state = {"dose": self._anchor_dose.state_dict(), "collator": draw}
        os.makedirs(output_dir, exist_ok=True)
        write_text(os.path.join(output_dir, self._anchor_state_name()), json.dumps(state))

    def _anchor_state_name(self) -> str:
        return STATE_NAME if self.args.world_size <= 1 else f"anchor_state_{self.args.process_index}.json"

    # Restored here because this runs on resume under every backend (DeepSpeed skips _load_from_checkpoint).
    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is not None:
            self._check_resume(checkpoint)
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        state, path = self._read_anchor_state(checkpoint)
        if state is None:
            warnings.warn(f"{checkpoint} has no {STATE_NAME}: the label draws restart from the seed and the dose "
                          "from 0, so the resumed run will not match an uninterrupted one", stacklevel=2)
            return
        try:
            self._anchor_dose.load_state_dict(state["dose"])
            self.data_collator.load_state_dict(state["collator"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise AnchorCheckpointError(f"{path}: the dose or label-draw state cannot be restored "
                                        f"({type(err).__name__}: {err})") from err

    def _check_resume(self, checkpoint: str) -> None:
        """Refuse a resume that would not continue this run; warn where it cannot be exact."""
        if 0 < self.state.max_steps <= self.state.global_step:  # upstream would train one more step mid-epoch
            raise AnchorCheckpointError(
                f"{checkpoint} is at step {self.state.global_step}, and this run stops at `max_steps` = "
                f"{self.state.max_steps}: it is finished. Its model is the result; raise `max_steps` to train further")
        saved = os.path.join(checkpoint, CONFIG_NAME)
        if os.path.isfile(saved):
            differences = config_differences(AnchorConfig.from_pretrained(saved), self.anchor_config)
            if differences:
                raise AnchorCheckpointError(
                    f"{checkpoint} was trained with another anchor config: {'; '.join(differences)}. Resume with the "
                    f"config saved there (AnchorConfig.from_pretrained({checkpoint!r})), or start a new run")
        if self.args.dataloader_num_workers > 0 and getattr(self.data_collator, "draw", None) == "bernoulli":
            warnings.warn(f"`dataloader_num_workers` = {self.args.dataloader_num_workers}: each worker draws labels "
                          "from its own copy of the collator, so the resumed run does not replay the label draws of "
                          "an uninterrupted one; use 0 workers for an exact resume", stacklevel=3)

    def _read_anchor_state(self, checkpoint: str) -> tuple[dict[str, Any] | None, str]:
        """This process's anchor state in `checkpoint` (None when there is none), checked for its keys."""
        path = os.path.join(checkpoint, self._anchor_state_name())
        if not os.path.isfile(path):
            path = os.path.join(checkpoint, STATE_NAME)
        if not os.path.isfile(path):
            return None, path
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise AnchorCheckpointError(f"{path} is not valid JSON ({err}); it was cut short or overwritten") from err
        if not isinstance(state, dict):
            raise AnchorCheckpointError(f"{path} must hold a JSON object with `dose` and `collator`, "
                                        f"got {type(state).__name__}")
        missing = [f"`{key}`" for key in ("dose", "collator") if not isinstance(state.get(key), dict)]
        if missing:
            raise AnchorCheckpointError(f"{path} has no {', '.join(missing)}; without them the resumed run would "
                                        "restart the label draws and the dose")
        if "generator" not in state["collator"]:
            raise AnchorCheckpointError(f"{path}: `collator` has no `generator` (the label-draw RNG state)")
        return state, path

    # ------------------------------------------------------------------ sharing
    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        # Trainer's card with its provenance made true (`training_card`), then the anchor section on top.
        parent = super().create_model_card
        if getattr(parent, "__func__", None) is not Trainer.create_model_card:
            parent(*args, **kwargs)  # another trainer's own card (TRL's), kept as it writes it
        if not self.is_world_process_zero():
            return
        if getattr(parent, "__func__", None) is Trainer.create_model_card:
            from .training_card import training_summary

            bound = inspect.signature(Trainer.create_model_card).bind(self, *args, **kwargs).arguments
            bound.pop("self")
            write_text(os.path.join(self.args.output_dir, "README.md"), training_summary(self, **bound))
            model = self.accelerator.unwrap_model(self.model)
            if hasattr(model, "create_or_update_model_card"):  # a PEFT model adds its adapter facts, as in Trainer
                model.create_or_update_model_card(self.args.output_dir)
        repo_id = getattr(self, "hub_model_id", None) or self.args.hub_model_id
        self.write_anchor_card(self.args.output_dir, model_name=kwargs.get("model_name"), repo_id=repo_id,
                               tags=kwargs.get("tags"))

    def write_anchor_card(self, output_dir: str, model_name: str | None = None, repo_id: str | None = None,
                          tags: Any = None) -> None:
        """Write the anchor card (`hub.write_model_card`) into `output_dir`, over any card already there."""
        from .hub import measure_label_rates, write_model_card
        from .training_card import base_model_id

        name = model_name or os.path.basename(os.path.normpath(repo_id or output_dir))
        tags = [tags] if isinstance(tags, str) else tags
        base = base_model_id(self.accelerator.unwrap_model(self.model))
        write_model_card(output_dir, self.anchor_config, model_name=name, repo_id=repo_id,
                         label_rates=measure_label_rates(self.train_dataset, self.anchor_config), tags=tags,
                         **({"base_model": base} if base else {}))  # else keep what a card already there says

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if self._anchor_staging:  # called inside _save_checkpoint: push once the folder has its final name
            self._anchor_pending_push = True
            return
        source = os.path.join(checkpoint_folder, CONFIG_NAME)
        if self.is_world_process_zero() and os.path.isfile(source):  # Trainer copies only model files up
            shutil.copy(source, os.path.join(self.args.output_dir, CONFIG_NAME))
        super()._push_from_checkpoint(checkpoint_folder)


def config_differences(saved: AnchorConfig, current: AnchorConfig) -> list[str]:
    """"`field`: value in the checkpoint, value now" for each field that differs.

    The fields filled in by binding (`resolved_layers`, `hidden_size`) are left to the binding
    step, which checks them against the model.
    """
    skip = {"format_version", "anchor_hf_version", "resolved_layers", "hidden_size"}
    differences: list[str] = []

    def walk(old: Any, new: Any, path: str) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for key in dict.fromkeys([*old, *new]):
                if key not in skip or path:
                    walk(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new) \
                and any(isinstance(x, dict) for x in old):
            for i, (a, b) in enumerate(zip(old, new)):
                walk(a, b, f"{path}[{i}]")
        elif old != new:
            differences.append(f"`{path}`: {_short(old)} in the checkpoint, {_short(new)} now")

    walk(saved.to_dict(), current.to_dict(), "")
    return differences


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."




class _DrawStateTagger:
    """Collate function that adds the collator's RNG state after the draws to each batch."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __getattr__(self, name: str) -> Any:  # everything else is the collator's (columns, tokenizer, ...)
        if name == "collator":  # not set yet while unpickling
            raise AttributeError(name)
        return getattr(self.collator, name)

    def __call__(self, features: Any) -> dict[str, Any]:
        batch = self.collator(features)
        batch[DRAW_STATE] = self.collator.generator.get_state()
        return batch
