"""Record the outputs of the anchored modules during one forward pass.

Forward hooks, never module wrappers: the model is untouched, and every handle is owned
and removed in `finally`, so no hook outlives the `with` block even when the forward
raises. Recording stops as soon as the block exits; the recomputation that activation
checkpointing runs during backward happens after that, so it is never recorded twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def first_tensor(output: Any) -> torch.Tensor | None:
    """The hidden state inside a block output: the tensor itself, or the first of a tuple/list/ModelOutput."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict):  # ModelOutput
        for value in output.values():
            if isinstance(value, torch.Tensor):
                return value
    return None


class HiddenStateCapture:
    """Context manager recording the first output of each module during one forward.

    Usage::

        with HiddenStateCapture(modules) as capture:
            outputs = model(**inputs)
        states = capture.states  # one [B, T, D] tensor per module, graph attached

    Only the first call of each module inside the block is kept (a later call, e.g. a
    shared block applied twice, is ignored), so `states` lines up with `modules`; `clear()`
    starts over, for a capture that spans several forwards (generation steps).
    """

    def __init__(self, modules: Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
        self.modules = list(modules)
        self.names = list(names) if names is not None else [str(i) for i in range(len(self.modules))]
        self._states: list[torch.Tensor | None] = [None] * len(self.modules)
        self._handles: list[RemovableHandle] = []
        self.is_recording = False

    def _make_hook(self, index: int):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not self.is_recording or self._states[index] is not None:
                return None
            self._states[index] = first_tensor(output)
            return None  # never change the output

        return hook

    def __enter__(self) -> HiddenStateCapture:
        self._states = [None] * len(self.modules)
        try:
            for i, module in enumerate(self.modules):
                self._handles.append(module.register_forward_hook(self._make_hook(i)))
        except BaseException:
            self.remove()
            raise
        self.is_recording = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def clear(self) -> None:
        """Forget the recorded states, so the next forward is recorded (one capture over many forwards)."""
        self._states = [None] * len(self.modules)

    def remove(self) -> None:
        """Stop recording and remove every hook this capture registered."""
        self.is_recording = False
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def states(self) -> list[torch.Tensor]:
        """The recorded states, one per module; raises if a module never ran."""
        missing = [n for n, s in zip(self.names, self._states) if s is None]
        if missing:
            raise RuntimeError(
                f"anchored modules {missing} produced no tensor output during the forward pass; "
                "are they used by this model's forward, and do they return a tensor?")
        return list(self._states)  # type: ignore[arg-type]
