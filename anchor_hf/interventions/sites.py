"""The hook machinery every reversible intervention shares: one owned hook per module, one handle per call.

How the hooks are attached, and why:
- One forward hook per module, owned by anchor_hf (`_Site`), runs every edit attached to
  that module in the order the interventions were created, so two handles compose
  predictably (suppress then steer is not steer then suppress).
- The hook *returns* the edited output rather than editing the tensor in place (which
  would corrupt autograd and any tensor the caller holds). Checked on transformers 5.23
  (GPT-2, Llama, GPT-NeoX blocks, tests/test_interventions.py): the returned output is
  what the next block reads.
- It is registered with `prepend=True`. transformers 5 collects `output_hidden_states`
  with forward hooks it installs on the decoder blocks at the first forward that asks for
  them; a hook appended after those changes what the next block reads but not what
  `hidden_states` reports (also checked on 5.23).
- Blocks return a Tensor in transformers 5, a tuple in older versions and in some
  families; both are handled (the first element is the hidden state).
- Hooks run on every forward, so during `generate()` with a KV cache each new token's
  state is edited too, and the cached keys/values come from edited states.
- Layers are resolved on the unwrapped model (PEFT, DDP, compile). Everything is checked
  before the first hook is registered; if registering fails halfway, the hooks already
  registered are removed before the error propagates.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..config import AnchorConfig
from .compiled import compiled_modules, hold_eager, release
from .positions import Positions, PositionTracker, check_positions
from .targets import AnchorInterventionError, Target, check_number, resolve_sites, resolve_target

Edit = Callable[[torch.Tensor], torch.Tensor]
Layers = Sequence[int | str] | int | str | None

_keys = itertools.count()


class _Site:
    """The single forward hook anchor_hf keeps on one module; runs its attached edits in order."""

    def __init__(self, module: nn.Module, name: str) -> None:
        self.name = name
        self.edits: dict[int, Edit] = {}  # insertion order = creation order of the interventions
        self.handle: RemovableHandle = module.register_forward_hook(self, prepend=True)

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        if not self.edits:
            return None
        if isinstance(output, torch.Tensor):
            state = output
        elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            state = output[0]
        else:
            raise AnchorInterventionError(
                f"cannot intervene at {self.name!r}: its output is a {type(output).__name__}, not a tensor or a "
                "tuple starting with the hidden-state tensor; choose a module whose output is the hidden state")
        for edit in list(self.edits.values()):
            state = edit(state)
        if isinstance(output, torch.Tensor):
            return state
        return type(output)([state, *output[1:]]) if isinstance(output, list) else (state, *output[1:])

    def __reduce__(self) -> tuple[type, tuple]:
        return _Detached, ()  # `copy.deepcopy(model)` and pickling go through here


class _Detached:
    """What a `_Site` becomes in a deep copy or a pickle of its model: a hook that edits nothing.

    The copy is not owned by any handle, so edits carried into it could never be removed.
    """

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        return None


_SITES: weakref.WeakKeyDictionary[nn.Module, _Site] = weakref.WeakKeyDictionary()


def _attach(module: nn.Module, name: str, edit: Edit) -> tuple[nn.Module, int]:
    site = _SITES.get(module)
    if site is None:
        site = _SITES[module] = _Site(module, name)
    key = next(_keys)
    site.edits[key] = edit
    return module, key


def _detach(module: nn.Module, key: int) -> None:
    site = _SITES.get(module)
    if site is None:
        return
    site.edits.pop(key, None)
    if not site.edits:  # last edit gone: take the hook itself off the module
        site.handle.remove()
        del _SITES[module]


def active_sites(model: nn.Module) -> list[str]:
    """Names of the modules of `model` that carry anchor_hf intervention hooks right now."""
    return [site.name for module in model.modules() if (site := _SITES.get(module)) is not None]


class InterventionHandle:
    """Owns the hooks of one intervention. `remove()` takes them off; also a one-shot context manager.

    Attributes:
        kind: "suppress", "repel", "steer" or "redirect".
        label: the concept's name, or "direction".
        names: the module names hooked.
        calls: how many module outputs it has edited so far (e.g. once per block per
            generated token under `generate()` with a cache).
    """

    def __init__(self, kind: str, label: str, names: list[str]) -> None:
        self.kind = kind
        self.label = label
        self.names = names
        self.calls = 0
        self._attached: list[tuple[nn.Module, int]] = []
        self._tracker: PositionTracker | None = None
        self._compiled: list[nn.Module] = []  # compiled modules held eager while active (`compiled.py`)
        self._entered = False

    @property
    def is_active(self) -> bool:
        return bool(self._attached)

    def remove(self) -> None:
        """Remove every hook of this intervention; calling it again does nothing."""
        while self._attached:
            module, key = self._attached.pop()
            _detach(module, key)
        if self._tracker is not None:
            self._tracker.remove()
            self._tracker = None
        release(self._compiled)
        self._compiled = []

    def __enter__(self) -> InterventionHandle:
        # One-shot, like contextlib's managers: a second `with` would silently apply nothing once removed.
        if self._entered or not self.is_active:
            state = "was already entered once" if self._entered else "was removed"
            raise AnchorInterventionError(
                f"{self.kind} {self.label!r} {state}; a handle is one-shot: call {self.kind}() again for a new one")
        self._entered = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.is_active else "removed"
        return f"InterventionHandle({self.kind} {self.label!r} at {self.names}, {state})"


def on_device(tensor: torch.Tensor) -> Callable[[torch.device], torch.Tensor]:
    """`tensor` on a given device, copied once per device (not once per forward, which would sync a GPU)."""
    copies: dict[torch.device, torch.Tensor] = {}

    def get(device: torch.device) -> torch.Tensor:
        if device not in copies:
            copies[device] = tensor.to(device=device, dtype=torch.float32)
        return copies[device]

    return get


def install(kind: str, target: Target, model: nn.Module, sites: list[tuple[str, nn.Module]],
            edit: Edit | dict[str, Edit], positions: Positions = "all") -> InterventionHandle:
    """Attach `edit` (a state `[..., D]` in, the edited state in its dtype out) at every site.

    `edit` may also be a dict from site name to that site's own edit (e.g. a dose per layer).
    With `positions` other than "all" (checked by `positions.check_positions`), a
    `PositionTracker` on `model` says which positions of each forward to edit; the others
    are returned bit for bit. Compiled modules of `model` run their uncompiled forward while
    the handle is active (compiled code would skip the hooks, see `compiled.py`).
    """
    handle = InterventionHandle(kind, target.label, [name for name, _ in sites])

    def make(name: str) -> Edit:
        edit_here = edit[name] if isinstance(edit, dict) else edit

        def run(h: torch.Tensor) -> torch.Tensor:
            if h.shape[-1] != target.width:
                raise AnchorInterventionError(
                    f"{kind} {target.label!r}: the output of {name!r} has width {h.shape[-1]}, but the "
                    f"direction has {target.width} entries")
            handle.calls += 1
            if handle._tracker is None:
                return edit_here(h)
            chosen = handle._tracker.mask(h.shape, name).to(h.device)  # [B, T]
            return torch.where(chosen.unsqueeze(-1), edit_here(h), h)

        return run

    try:
        if check_positions(positions) != "all":
            handle._tracker = PositionTracker(model, positions)
        for name, module in sites:
            handle._attached.append(_attach(module, name, make(name)))
        compiled = compiled_modules(model)
        hold_eager(compiled)
        handle._compiled = compiled
    except BaseException:
        handle.remove()
        raise
    return handle


def resolve(model: nn.Module, cfg: AnchorConfig | None, concept: str | None, direction: Any | None,
            layers: Layers) -> tuple[Target, list[tuple[str, nn.Module]]]:
    # an explicit direction must match the residual width only where the sites are blocks
    blocks_only = layers is None or all(isinstance(x, int) for x in ([layers] if isinstance(layers, (int, str))
                                                                       else layers))
    target = resolve_target(model, cfg, concept, direction, check_width=blocks_only)
    return target, resolve_sites(model, cfg, layers)


def check_falloff(falloff: Any) -> tuple[float, float, float] | None:
    """`falloff` as `(a, b, p)` with a in [0, 1), b in (0, 1], p > 0, or None; raises naming the part that is not."""
    if falloff is None:
        return None
    if not isinstance(falloff, (tuple, list)) or len(falloff) != 3:
        raise AnchorInterventionError(
            f"`falloff` must be None (full projection) or a triple (a, b, p), got {falloff!r}")
    a = check_number("falloff[0] (onset a)", falloff[0], low=0.0, high=1.0, high_open=True)
    b = check_number("falloff[1] (height b)", falloff[1], low=0.0, high=1.0, low_open=True)
    p = check_number("falloff[2] (power p)", falloff[2], low=0.0, low_open=True)
    return a, b, p


