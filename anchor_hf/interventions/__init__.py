"""Use an anchored concept: detect it, suppress, repel, steer or redirect it reversibly, or ablate/redirect it for good.

    from anchor_hf.interventions import detect, suppress, repel, steer, redirect, ablate, redirect_weights
    scores = detect(model, cfg, "red", input_ids, attention_mask=mask)   # [B], no search
    with suppress(model, cfg, "red"):   # hooks removed on exit, also on error
        ...
    with redirect(model, cfg, "red"):   # move the concept to its destination (docs/method.md §10)
        ...
    with steer(model, cfg, "red", {3: 0.1}, positions="generated"):  # one block, generated tokens only
        ...
    ablate(model, cfg, "red")           # in place; returns what it changed
    with ablated(model, cfg, "red"):    # ablated for the block, the weights restored exactly on exit
        ...

`transforms` holds the pure tensor edits, `sites` the hook machinery, `hooks`, `steering` and
`redirect` the reversible interventions, `erase` a fitted post-hoc eraser (LEACE) applied the
same way, `positions` which positions they edit, `ablation` the weight edits and `ablated` the
same edits undone after a block, `detector` and `monitor` read the place without changing
anything, `targets` the argument checks shared by all of them.
"""

from .ablated import ablated, ablated_axes, restored
from .ablation import LAYOUTS, ablate, ablate_axes, redirect_weights, residual_writes
from .detector import detect
from .erase import erase
from .hooks import repel, suppress
from .monitor import ConceptMonitor
from .positions import Positions, PositionTracker, check_positions
from .redirect import redirect
from .sites import InterventionHandle, active_sites
from .steering import steer
from .targets import AnchorInterventionError, AnchorInterventionTypeError, Destination, resolve_destination
from .transforms import (add_direction, falloff, orthogonal_fallback, project_out, redirect_states,
                         rotate_to_alignment)

__all__ = ["detect", "ConceptMonitor", "suppress", "repel", "steer", "redirect", "erase", "ablate", "ablate_axes",
           "ablated", "ablated_axes", "restored", "redirect_weights", "residual_writes", "InterventionHandle",
           "active_sites", "AnchorInterventionError", "AnchorInterventionTypeError", "LAYOUTS", "Positions",
           "PositionTracker", "check_positions", "Destination", "resolve_destination", "project_out", "falloff",
           "rotate_to_alignment", "add_direction", "orthogonal_fallback", "redirect_states"]
