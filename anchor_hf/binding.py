"""Fit an `AnchorConfig` to one model: the single rule every user of a config goes through.

The trainer, every intervention and every probe call `bind(cfg, model)` and use what it
returns: which modules carry the anchored states, how wide those states are, and each
concept's orthonormal basis. One rule means one answer: a config that fits a model for
training fits it for `suppress` and for the probes, and a mismatch (width, depth, module
names, `layers` against the saved `resolved_layers`) is refused here, before a hook is
registered or a step is taken — never at the first forward.

The user's config is never mutated: `Binding.config` is a copy with `resolved_layers` and
`hidden_size` filled in, which is what a trainer saves beside the weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import AnchorConfig
from .errors import AnchorCheckpointError, AnchorConfigError
from .geometry import concept_place
from .layers import block_lists, guess_block_prefix, hidden_size_of, named_sites, resolve_layer_names


@dataclass(frozen=True)
class Binding:
    """An `AnchorConfig` fitted to a model.

    Attributes:
        config: a copy of the config with `resolved_layers` and `hidden_size` set (save this one).
        names: canonical module names of the anchored sites, in the config's order.
        modules: the modules themselves (hooks go on these).
        hidden_size: width D of the anchored states.
        bases: concept name -> orthonormal float32 basis `[D, k]` of its place (`geometry.concept_place`).
    """

    config: AnchorConfig
    names: tuple[str, ...]
    modules: tuple[nn.Module, ...]
    hidden_size: int
    bases: dict[str, torch.Tensor]

    @property
    def sites(self) -> list[tuple[str, nn.Module]]:
        """`(name, module)` pairs of the anchored sites."""
        return list(zip(self.names, self.modules))

    def basis(self, concept: str) -> torch.Tensor:
        """The basis `[D, k]` of `concept`; raises naming the known concepts otherwise."""
        if concept not in self.bases:
            raise AnchorConfigError(f"unknown concept {concept!r}; this config anchors {list(self.bases)}")
        return self.bases[concept]


def bind(cfg: AnchorConfig, model: nn.Module) -> Binding:
    """Resolve `cfg` on `model` (wrappers seen through) and check that it fits; returns a `Binding`.

    Rules, in order:
    1. `cfg.layers` (block indices or name patterns) resolve on this model;
    2. a config that names `resolved_layers` (saved by a trainer) must resolve to exactly those
       names here: the same `layers` landing elsewhere means another depth or architecture;
    3. the width is the model's hidden size; a saved `hidden_size` must equal it where the sites
       carry the residual stream (blocks), and every site whose width can be read from its
       parameters (a norm, a linear map, an embedding) must have the config's width;
    4. every concept's axes and vector fit that width.

    Raises:
        AnchorCheckpointError: the config was saved for another model (rules 2-3).
        AnchorLayerError: a layer does not resolve (rule 1).
        AnchorConfigError: the width cannot be told, or a concept does not fit it (rule 4).
    """
    if not isinstance(cfg, AnchorConfig):
        raise AnchorConfigError(f"`cfg` must be an AnchorConfig, got {type(cfg).__name__}")
    if not isinstance(model, nn.Module):
        raise AnchorConfigError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    sites = named_sites(model)
    lists = block_lists(model)
    names = resolve_layer_names(cfg.layers, list(sites), lists)
    if cfg.resolved_layers is not None and list(cfg.resolved_layers) != names:
        raise AnchorCheckpointError(
            f"the anchor config was saved with layers {list(cfg.resolved_layers)}, but on this model `layers` = "
            f"{cfg.layers} resolves to {names}: the config was trained on a model of another depth or architecture")
    width = _width(cfg, model, names, sites, lists)
    cfg.check_hidden_size(width)
    bound = copy.deepcopy(cfg)
    bound.resolved_layers, bound.hidden_size = list(names), width
    bases = {c.name: concept_place(c, width)[0] for c in cfg.concepts}  # a pole -1 place signed
    return Binding(config=bound, names=tuple(names), modules=tuple(sites[n] for n in names), hidden_size=width,
                   bases=bases)


def _width(cfg: AnchorConfig, model: nn.Module, names: list[str], sites: dict[str, nn.Module],
           lists: dict[str, int]) -> int:
    """The width of the anchored states under rule 3 of `bind`."""
    model_width = hidden_size_of(model)
    prefix = guess_block_prefix(lists)
    is_block = [prefix is not None and n.rsplit(".", 1)[0] == prefix for n in names]
    if cfg.hidden_size is not None and model_width is not None and cfg.hidden_size != model_width and any(is_block):
        raise AnchorCheckpointError(
            f"the anchor config was saved for hidden size {cfg.hidden_size}, but this model's is {model_width}")
    width = cfg.hidden_size if cfg.hidden_size is not None else model_width
    for name, block in zip(names, is_block):
        site = None if block else static_width(sites[name])
        if site is None:
            continue
        if width is None:
            width = site
        elif site != width:
            source = "the anchor config's hidden size" if cfg.hidden_size is not None else "the model's hidden size"
            raise AnchorCheckpointError(
                f"anchored module {name!r} outputs states of width {site}, but {source} is {width}; "
                "one config anchors states of one width (set `AnchorConfig.hidden_size` to the site's width)")
    if width is None:
        raise AnchorConfigError("cannot tell the width of the anchored states: the model config has no `hidden_size`, "
                                "`n_embd` or `d_model`; set `AnchorConfig.hidden_size`")
    return width


def static_width(module: nn.Module) -> int | None:
    """The width of what `module` outputs when its parameters say it, else None.

    A linear map's `out_features`, an embedding's `embedding_dim`, a norm's 1-D weight; a
    module without parameters (dropout, identity) or a whole block says nothing.
    """
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Embedding):
        return module.embedding_dim
    weight: Any = getattr(module, "weight", None)
    own = list(module.parameters(recurse=False))
    if isinstance(weight, torch.Tensor) and weight.dim() == 1 and len(own) <= 2 and weight.numel() > 0:
        return int(weight.shape[0])  # LayerNorm / RMSNorm: scale (and bias) per output dim
    return None
