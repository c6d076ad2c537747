"""End a multi-process run so that the process exits cleanly: `release_process_group`.

Why it is needed (gloo, CPU; docs/multiprocess.md has the measurements). A gloo
ProcessGroup runs collectives on worker threads and ends by joining them. A worker that
finishes a collective frees its tensors itself, and when Python dropped such a tensor
first, freeing it needs the GIL. Two endings then fail:
- the group is freed with the GIL held: the join waits for the worker, the worker for the
  GIL (a hang; seen in gdb as `~ProcessGroupGloo -> thread::join` against
  `~AsyncAllgatherWork -> decref_pyobject -> gil_scoped_acquire`). The C++ holders free it
  that way: DDP's Reducer when the DDP wrapper is collected (measured: a pending collective
  blocks the collecting thread with the GIL held), or torch's registry;
- a worker still frees a collective's tensors while the interpreter shuts down: taking the
  GIL then ends the thread inside C++ and the process aborts ("terminate called without an
  active exception").
`destroy_process_group()` alone prevents neither: it unregisters the group, but the DDP
wrapper still holds it, so it is freed later by the garbage collector or at shutdown.

The release below frees things in an order where neither can happen, while the interpreter
is fully alive. `AnchorTrainerMixin` registers it to run at exit for every process that
trained with it, so a user's own script under `accelerate launch` needs no call; the
training entry point calls it itself when a run ends.
"""

from __future__ import annotations

import atexit
import gc
import time
import weakref
from typing import Any

# Seconds the GIL is released after the last collective (measured worker latency: microseconds;
# the pause only has to outlast a worker descheduled on a loaded machine).
QUIESCE_S = 0.05

_trainers: weakref.WeakSet = weakref.WeakSet()
_registered = False


def release_process_group(*trainers: Any, synchronize: bool = True) -> bool:
    """Tear this process's `torch.distributed` session down in a safe order; returns whether there was one.

    1. `synchronize`: a barrier, so every process has finished its collectives (pass False
       when ending after an error, when the other processes may never arrive);
    2. the trainers' distributed wrappers (DDP holds the group in its C++ Reducer) are dropped
       and collected while the group is still registered, so that is never the last reference;
    3. a pause with the GIL released (`QUIESCE_S`), so a worker still freeing the tensors of the
       last collective finishes now, not during interpreter shutdown;
    4. `destroy_process_group()` with a reference to every group kept, then those references
       dropped: where that is the last one, the group is freed through its Python binding,
       which releases the GIL while it joins the workers.
    Afterwards the trainers' models are the plain (or sharded) modules; a sharded model cannot
    run forward without its group, so save it before releasing.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    if synchronize:
        dist.barrier()
    for trainer in trainers:
        _drop_wrappers(trainer)
    gc.collect()
    time.sleep(QUIESCE_S)
    groups = list(dist.distributed_c10d._world.pg_map)  # the registry of every live group (no public accessor)
    dist.destroy_process_group()
    del groups
    gc.collect()
    return True


def _drop_wrappers(trainer: Any) -> None:
    """Point the trainer at its unwrapped model, so the DDP wrapper (and its Reducer) can be freed."""
    model = getattr(trainer, "model", None)
    if model is not None and getattr(trainer, "model_wrapped", None) is not model:
        trainer.model_wrapped = model
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "_models"):
        accelerator._models = [m for m in accelerator._models if m is model]


def release_at_exit(trainer: Any) -> None:
    """Release the process group when this process exits, if it is still up (registered once)."""
    global _registered
    _trainers.add(trainer)
    if not _registered:
        atexit.register(_release_registered)
        _registered = True


def _release_registered() -> None:
    # No barrier: at exit after an error the other processes may never reach one.
    release_process_group(*list(_trainers), synchronize=False)
