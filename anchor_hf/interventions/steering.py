"""`steer`: push the hidden states along a concept's direction (docs/method.md §5, additive steering).

    with steer(model, cfg, "anger", 0.1):                                # every anchored layer, every position
        ...
    with steer(model, cfg, "anger", {3: 0.1}, positions="generated"):    # block 3 only, generated tokens only
        model.generate(**inputs)

What a dose means. In `relative` mode (the default) a block's output `h` becomes
`h + c·‖h‖·v̂`: a dose `c` tilts each state by `atan(c)` toward `v̂` when it starts orthogonal
(0.1 ≈ 5.7°, 1 = 45°). Doses compound: a push written at one block is carried by the residual
stream into every later block, where the next anchored layer adds its own, so steering at
n layers is roughly a push of `n·c` at the last one. And it hits every position, the prompt
included, by default — on a pretrained model the first position is often an attention sink
with a norm a hundred times the others', so `c·‖h‖` there is a very large vector that every
later token attends to. `positions="generated"` (or `positions=k`) and a dose per layer
(`{layer: c}`) are how to steer a pretrained model gently; docs/reports/steering_smollm2/
measures the KL divergence of the next-token distribution against the dose on SmolLM2.
In `absolute` mode the block's output becomes `h + c·v̂` (`c` in the units of the hidden
state), which is what a llama.cpp control vector adds (`anchor_hf.control_vector`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from torch import nn

from ..config import AnchorConfig
from .positions import Positions, check_positions
from .sites import Edit, InterventionHandle, Layers, install, on_device, resolve
from .targets import AnchorInterventionError, check_number, resolve_sites
from .transforms import add_direction

Dose = float | Mapping[int | str, float]
Mode = Literal["relative", "absolute"]


def steer(model: nn.Module, cfg: AnchorConfig | None = None, concept: str | None = None,
          dose: Dose | None = None, *, positions: Positions = "all", mode: Mode = "relative",
          layers: Layers = None, direction: Any | None = None) -> InterventionHandle:
    """Add `c·‖h‖·v̂` (or `c·v̂` in `absolute` mode) to the states at the chosen layers and positions (reversible).

    Scaling by each state's norm makes a dose comparable across layers and positions; a
    negative dose steers away from the concept. Needs one direction: for a subspace concept
    pass `direction=` a vector inside it. See the module docstring for what a dose means.

    Args:
        dose: c, a finite number for every layer (`layers`, default the config's), or a mapping
            from layer (block index or module-name pattern, as in `layers`) to that layer's
            dose, which then says where to steer (do not pass `layers` with it).
        positions: "all" (default), an int k (positions k, k+1, ... of each sequence), or
            "generated" (only tokens produced by `generate()` with a KV cache); see `positions`.
        mode: "relative" adds `c·‖h‖·v̂` per state; "absolute" adds the constant `c·v̂`.
        cfg, concept, layers, direction: as in `suppress`.

    Returns:
        An `InterventionHandle`.
    """
    if dose is None:
        raise AnchorInterventionError("`dose` is required: steer(model, cfg, concept, dose), a finite number or a "
                                      "mapping {layer: dose}")
    if mode not in ("relative", "absolute"):
        raise AnchorInterventionError(f"`mode` must be 'relative' (c·|h|·v) or 'absolute' (c·v), got {mode!r}")
    check_positions(positions)
    doses = _check_doses(dose, layers)
    target, sites = resolve(model, cfg, concept, direction, list(doses) if isinstance(dose, Mapping) else layers)
    if target.rank != 1:
        raise AnchorInterventionError(
            f"steer needs one direction, but {target.label!r} spans {target.rank} axes; pass "
            "`direction=` a vector inside the subspace (with `layers=`) instead")
    v_hat_on = on_device(target.basis[:, 0])
    per_site = _doses_per_site(model, cfg, doses, sites)

    def make(c: float) -> Edit:
        if mode == "absolute":
            return lambda h: (h.float() + c * v_hat_on(h.device)).to(h.dtype)
        return lambda h: add_direction(h, v_hat_on(h.device), c).to(h.dtype)

    return install("steer", target, model, sites, {name: make(c) for name, c in per_site.items()}, positions)


def _check_doses(dose: Dose, layers: Layers) -> dict[int | str | None, float]:
    """`{layer: dose}` from a mapping, or `{None: dose}` for one dose everywhere; raises naming a bad entry."""
    if not isinstance(dose, Mapping):
        return {None: check_number("dose", dose)}
    if layers is not None:
        raise AnchorInterventionError(f"`dose` = {dict(dose)!r} names its layers; leave `layers` unset, got "
                                      f"layers={layers!r}")
    if not dose:
        raise AnchorInterventionError("`dose` is an empty mapping; give at least one {layer: dose}")
    out: dict[int | str | None, float] = {}
    for key, value in dose.items():
        if isinstance(key, bool) or not isinstance(key, (int, str)) or key == "":
            raise AnchorInterventionError(f"`dose` keys must be block indices (int) or module-name patterns (str), "
                                          f"got {key!r}")
        out[key] = check_number(f"dose[{key!r}]", value)
    return out


def _doses_per_site(model: nn.Module, cfg: AnchorConfig | None, doses: dict[int | str | None, float],
                    sites: list[tuple[str, nn.Module]]) -> dict[str, float]:
    """Site name -> dose: one dose everywhere, or each key's dose at the modules that key resolves to.

    Two keys naming one module were already refused when `sites` was resolved from the keys.
    """
    if None in doses:
        return {name: doses[None] for name, _ in sites}
    return {name: c for key, c in doses.items() for name, _ in resolve_sites(model, cfg, [key])}  # type: ignore[list-item]
