"""Compiled models run eagerly while an intervention is active on them.

`torch.compile` does not guard on forward hooks: code compiled before a hook was added keeps
running without it, so an intervention on a compiled model would silently do nothing
(reproduced on torch 2.13 with `backend="eager"`). Recompiling with the hooks would fix one
forward but not their removal, and costs a compile per intervention. So while at least one
intervention holds a compiled module, that module calls its original, uncompiled forward
(which runs the hooks); when the last one is removed, the compiled forward is put back and
the compiled code, still cached, is used again.

Covered: the model passed to the intervention and every module inside it that was compiled,
either wrapped (`torch.compile(module)`, an `OptimizedModule`) or in place
(`module.compile()`). Not covered, and cannot be detected from here: intervening on a plain
model while calling a compiled wrapper of it that the intervention never saw.
"""

from __future__ import annotations

import weakref
from typing import Any

from torch import nn

# compiled module -> (interventions holding it, what to put back when the last one leaves)
_HELD: weakref.WeakKeyDictionary[nn.Module, tuple[int, str, Any]] = weakref.WeakKeyDictionary()


def compiled_modules(model: nn.Module) -> list[nn.Module]:
    """Modules of `model` (itself included) whose calls run compiled code."""
    return [m for m in model.modules()
            if getattr(m, "_compiled_call_impl", None) is not None or _is_optimized(m) or m in _HELD]


def _is_optimized(module: nn.Module) -> bool:
    """A `torch.compile(module)` wrapper (`OptimizedModule`), told by name to keep `torch._dynamo` unimported."""
    return type(module).__name__ == "OptimizedModule" and isinstance(getattr(module, "_orig_mod", None), nn.Module)


def hold_eager(modules: list[nn.Module]) -> None:
    """Make each compiled module call its uncompiled forward until `release` is called as often."""
    for module in modules:
        if module in _HELD:
            count, attribute, saved = _HELD[module]
            _HELD[module] = (count + 1, attribute, saved)
        elif getattr(module, "_compiled_call_impl", None) is not None:  # module.compile(): nn.Module runs this
            _HELD[module] = (1, "_compiled_call_impl", module._compiled_call_impl)
            module._compiled_call_impl = None
        else:  # torch.compile(module): the wrapper's forward is the compiled call of the original module
            _HELD[module] = (1, "forward", vars(module)["forward"])
            module.forward = module._orig_mod.__call__


def release(modules: list[nn.Module]) -> None:
    """Undo one `hold_eager` of each module; the last one puts its compiled forward back."""
    for module in modules:
        if module not in _HELD:
            continue
        count, attribute, saved = _HELD[module]
        if count > 1:
            _HELD[module] = (count - 1, attribute, saved)
            continue
        del _HELD[module]
        setattr(module, attribute, saved)
