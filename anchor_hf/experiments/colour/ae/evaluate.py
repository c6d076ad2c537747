"""Measure one trained colour autoencoder: per-colour error under each intervention, selectivity, geometry.

Three conditions (docs/method.md §5, §6):
- `baseline`: the model as trained;
- `suppress`: `anchor_hf.interventions.suppress` on the concept (full projection where α > 0);
- `ablate`: `ablated_axes`, zeroing the concept's axis in the encoder's last layer (rows +
  bias) and the decoder's first layer (columns) for the measurement, restored after.
Each gives the per-colour MSE on the `8³` RGB grid and on the named colours, and the
selectivity R² of grid error against similarity to red raised to a power (2 for
suppression, 3 for ablation): `anchor_hf.probes.r_squared`, the R² of a line fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from anchor_hf.config import AnchorConfig, ConceptAnchor
from anchor_hf.errors import AnchorConfigError
from ..maths import cube_grid, named_colours, red_similarity
from anchor_hf.geometry import alignment, coordinates, direction_basis
from anchor_hf.interventions import ablated_axes, suppress
from anchor_hf.probes import r_squared
from .model import ColourAutoencoder

GRID_STEPS = 8
R2_POWER = {"suppress": 2, "ablate": 3}
HUES = ("red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure", "blue", "purple", "magenta", "pink")

# Geometry criteria, fixed before any run was scored (what "the run induced the target geometry" means):
ANCHOR_MIN_COS = 0.9  # the concept's exact example lies within ~26° of its anchor
RING_MIN_ALIGNMENT = 0.9  # the 12 pure hues keep ≥ 0.9 of their norm in the attracted subspace (mean)
ISOLATION_MAX_LEAK = 0.1  # colours dissimilar to red (sim = 0) have mean |cos| ≤ 0.1 with the red axis

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # rgb [N, 3] -> (recon [N, 3], latents [N, E])


def concept_axis(concept: ConceptAnchor, hidden_size: int) -> list[int] | None:
    """The bottleneck axes a concept occupies: its `dims`, or the axis of a one-hot `vector`; else None."""
    if concept.dims is not None:
        return list(concept.dims)
    nonzero = [i for i, x in enumerate(concept.vector or []) if x != 0]
    if len(nonzero) == 1 and len(concept.vector or []) == hidden_size and concept.vector[nonzero[0]] > 0:
        return nonzero
    return None


def _forward(model: ColourAutoencoder) -> Forward:
    def run(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            out = model(rgb)
        return out.reconstruction.float(), out.latents.float()

    return run


@contextmanager
def condition(model: ColourAutoencoder, cfg: AnchorConfig, concept: str, name: str) -> Iterator[Forward]:
    """Yield the forward of `model` under condition `name` ("baseline", "suppress" or "ablate").

    Suppression hooks are removed on exit; the ablated weights are restored on exit.
    """
    model.eval()
    if name == "baseline":
        yield _forward(model)
    elif name == "suppress":
        with suppress(model, cfg, concept):
            yield _forward(model)
    elif name == "ablate":
        dims = concept_axis(cfg.concept(concept), model.config.hidden_size)
        if dims is None:
            raise AnchorConfigError(f"concept {concept!r} is neither `dims` nor a one-hot `vector`, so it has no "
                                    "bottleneck axis to ablate")
        with ablated_axes(model.bottleneck_producer, model.bottleneck_consumer, dims):
            yield _forward(model)
    else:
        raise AnchorConfigError(f"unknown condition {name!r}; allowed: 'baseline', 'suppress', 'ablate'")


def per_colour_mse(forward: Forward, rgb: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the three channels, per colour: `[N, 3]` → `[N]`."""
    recon, _ = forward(rgb)
    return (recon - rgb).pow(2).mean(-1)


def measure_conditions(model: ColourAutoencoder, cfg: AnchorConfig, concept: str) -> dict[str, dict]:
    """Per condition: grid and named-colour MSE, the worst named colour, and the selectivity R²."""
    grid = cube_grid(GRID_STEPS)
    names, named = named_colours()
    similarity = red_similarity(grid)
    results: dict[str, dict] = {}
    axis = concept_axis(cfg.concept(concept), model.config.hidden_size)
    for name in ("baseline", "suppress", "ablate"):
        if name == "ablate" and axis is None:
            continue
        with condition(model, cfg, concept, name) as forward:
            grid_mse = per_colour_mse(forward, grid)
            named_mse = per_colour_mse(forward, named)
        entry = {"named_mse": dict(zip(names, named_mse.tolist())), "max_named_mse": float(named_mse.max()),
                 "grid_mse": [float(f"{x:.4g}") for x in grid_mse.tolist()],  # 4 digits: a record, not an input
                 "grid_mean_mse": float(grid_mse.mean())}
        if name in R2_POWER:
            entry["r2_power"] = R2_POWER[name]
            entry["r2"] = r_squared(grid_mse, similarity.pow(R2_POWER[name]))
        results[name] = entry
    return results


def measure_geometry(model: ColourAutoencoder, cfg: AnchorConfig, concept: str) -> dict[str, float | bool | str]:
    """Whether the run put the concepts where the recipe asked (see the criteria constants above).

    Always: red's latent within `ANCHOR_MIN_COS` of the anchor. If another concept attracts
    a subspace (the "vibrant" hue plane): the pure hues' mean alignment with it. If the
    concept is repelled from every colour (the "isolated" recipe): the mean |cos| of
    colours with zero similarity to red.
    """
    names, named = named_colours()
    with condition(model, cfg, concept, "baseline") as forward:
        _, latents = forward(named)
        _, grid_latents = forward(cube_grid(GRID_STEPS))
    width = model.config.hidden_size
    target = cfg.concept(concept)
    basis = direction_basis(target.dims, target.vector, width)
    red_cos = float(alignment(coordinates(latents[names.index("red")], basis, target.dims)))
    out: dict[str, float | bool | str] = {"red_cos": red_cos}
    checks = [red_cos >= ANCHOR_MIN_COS]
    rules = [f"red_cos >= {ANCHOR_MIN_COS}"]
    for other in cfg.concepts:
        if other.name != concept and other.attract > 0 and other.rank > 1:
            ring = latents[[names.index(h) for h in HUES]]
            value = float(alignment(coordinates(ring, direction_basis(other.dims, other.vector, width),
                                                other.dims)).mean())
            out[f"{other.name}_ring_alignment"] = value
            checks.append(value >= RING_MIN_ALIGNMENT)
            rules.append(f"{other.name}_ring_alignment >= {RING_MIN_ALIGNMENT}")
    if target.repel > 0:
        dissimilar = red_similarity(cube_grid(GRID_STEPS)) == 0
        leak = float(coordinates(grid_latents[dissimilar], basis, target.dims).abs().mean())
        out["leak"] = leak
        checks.append(leak <= ISOLATION_MAX_LEAK)
        rules.append(f"leak <= {ISOLATION_MAX_LEAK}")
    out["criterion"] = " and ".join(rules)
    out["success"] = all(checks)
    return out
