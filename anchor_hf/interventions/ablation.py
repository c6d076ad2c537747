"""Permanent edits: directional ablation and redirection of the residual stream, axis zeroing of a bottleneck.

`ablate` orthogonalizes every matrix that *writes* the residual stream against the concept
(docs/method.md §5): token and position embeddings, the attention output projection and the
MLP output projection of every block, and their biases. What is then exactly true:

- no residual-stream state of the edited model has a component in the concept's span,
  at any layer, for any input (every term of the sum it is made of has none);
- the edited model computes exactly what the original computes when the output of every
  write is projected (`suppress(..., only_positive=False)` at `residual_writes(model)`),
  since both feed every read the same states.

It is *not* the same as projecting at block outputs only: inside a block the MLP reads the
state after the attention write, which still carries the concept there. Reads are left
alone (a LayerNorm/RMSNorm of a state without the component is well defined), except
where the unembedding is tied to the token embedding: then it is edited with it and reads
no concept component either (the report lists it). The edit is in place, so ties, devices,
dtypes and `save_pretrained`/`from_pretrained` keep working.

`redirect_weights` edits the same writes with `M = I + (d̂ − v̂)v̂ᵀ` instead of the
projection: each write's `v̂` component is put on the destination `d̂` (reflected, for the
opposite pole), and the edited model computes what the original computes with every
write's output mapped by `M` (its docstring says where that equals the `redirect` hook).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import AnchorConfig
from ..layers import named_sites, unwrap_model
from .targets import AnchorInterventionError, AnchorInterventionTypeError, resolve_destination, resolve_target


@dataclass(frozen=True)
class ResidualLayout:
    """Where one architecture family writes its residual stream, relative to its decoder.

    `blocks` is the block list; `embeddings` and `block_writes` (relative to each block)
    are the modules whose outputs are added to the stream. `optional` writes are used when
    present (GPT-2 cross-attention, OPT's `project_in` replacing the token embedding).
    """

    blocks: str
    embeddings: tuple[str, ...]
    block_writes: tuple[str, ...]
    optional_embeddings: tuple[str, ...] = ()
    optional_block_writes: tuple[str, ...] = ()


_LLAMA = ResidualLayout("layers", ("embed_tokens",), ("self_attn.o_proj", "mlp.down_proj"))
LAYOUTS: dict[str, ResidualLayout] = {
    "gpt2": ResidualLayout("h", ("wte", "wpe"), ("attn.c_proj", "mlp.c_proj"),
                           optional_block_writes=("crossattention.c_proj",)),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "gpt_neox": ResidualLayout("layers", ("embed_in",), ("attention.dense", "mlp.dense_4h_to_h")),
    "opt": ResidualLayout("layers", ("embed_positions",), ("self_attn.out_proj", "fc2"),
                          optional_embeddings=("project_in", "embed_tokens")),
}


def _layout_of(model: nn.Module) -> ResidualLayout:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in LAYOUTS:
        raise AnchorInterventionError(
            f"ablate does not know where a {model_type or type(model).__name__!r} model writes its residual "
            f"stream; supported model types: {sorted(LAYOUTS)}. For a bottleneck model use ablate_axes, or "
            "hook the writes with suppress(..., only_positive=False, layers=[...])")
    if model_type == "opt" and not getattr(config, "do_layer_norm_before", True):
        raise AnchorInterventionError(
            "this OPT model normalizes after each residual add (`do_layer_norm_before=False`), so the stream "
            "gets the concept back from every LayerNorm; directional ablation needs a pre-norm model")
    return LAYOUTS[model_type]


def residual_writes(model: nn.Module) -> list[str]:
    """Canonical names of the modules whose outputs are added to the residual stream, in order.

    Embeddings first, then each block's writes. Names are relative to the unwrapped model,
    so they can be passed to `suppress(..., layers=...)` to reproduce `ablate` with hooks.
    """
    base = unwrap_model(model)
    layout = _layout_of(base)
    sites = named_sites(base)
    lists = [n for n, m in sites.items() if isinstance(m, nn.ModuleList)
             and (n == layout.blocks or n.endswith("." + layout.blocks))]
    if not lists:
        raise AnchorInterventionError(f"found no block list {layout.blocks!r} in this "
                                      f"{base.config.model_type} model")
    blocks = min(lists, key=len)  # the decoder's own list, not a nested one
    prefix = blocks[: -len(layout.blocks)]
    names = [prefix + e for e in layout.embeddings]
    if layout.optional_embeddings:  # OPT: project_in (when present) writes instead of embed_tokens
        present = [prefix + e for e in layout.optional_embeddings if prefix + e in sites]
        names[:0] = present[:1]
    for i in range(len(sites[blocks])):
        names += [f"{blocks}.{i}.{w}" for w in layout.block_writes]
        names += [f"{blocks}.{i}.{w}" for w in layout.optional_block_writes if f"{blocks}.{i}.{w}" in sites]
    missing = [n for n in names if n not in sites]
    if missing:
        raise AnchorInterventionError(f"expected residual writes {missing} are missing from this model")
    return names


def _check_plain(name: str, module: nn.Module) -> None:
    if hasattr(module, "base_layer"):  # a PEFT tuner layer: its adapter writes too
        raise AnchorInterventionError(
            f"{name!r} carries a PEFT adapter, which also writes the residual stream; merge it first "
            "(model = model.merge_and_unload()) and then ablate")
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise AnchorInterventionError(f"{name!r} has no floating-point weight to edit (quantized?); "
                                      "ablate a model loaded in a float dtype")


def _check_unsharded(model: nn.Module) -> None:
    """Refuse a model whose parameters are sharded across processes (FSDP2 DTensors, ZeRO-3 partitions).

    Each process holds only a slice of each weight, and the edit mixes rows across slices; an
    in-place edit of the local slices would be wrong, or lost when the group re-shards. Hooks
    (`suppress`, `steer`, `redirect`) do work on such a model: they edit states, which are
    whole on every process.
    """
    for name, p in model.named_parameters():
        kind = "FSDP2 DTensor" if type(p).__name__ == "DTensor" else \
            "DeepSpeed ZeRO-3 partition" if hasattr(p, "ds_id") else None  # gathered or not, it is re-partitioned
        if kind is not None:
            raise AnchorInterventionError(
                f"cannot edit the weights of a model whose parameters are sharded across processes ({name!r} is a "
                f"{kind}); save it with trainer.save_model() (full weights), load that folder in one process and "
                "edit the loaded model. suppress/steer/redirect hooks work on the sharded model")


def _output_axis(name: str, module: nn.Module, width: int) -> int:
    """The axis of `module.weight` that indexes what it writes; raises if it cannot be edited."""
    _check_plain(name, module)
    if isinstance(module, nn.Linear):  # y = W x + b, W [out, in]
        axis = 0
    elif isinstance(module, nn.Embedding):  # rows [V, D] are what is written
        axis = 1
    elif type(module).__name__ == "Conv1D":  # GPT-2: y = x W + b, W [in, out]
        axis = 1
    else:
        raise AnchorInterventionError(f"cannot ablate {name!r}: {type(module).__name__} is not a Linear, "
                                      "Embedding or Conv1D")
    if module.weight.shape[axis] != width:
        raise AnchorInterventionError(
            f"{name!r} writes {module.weight.shape[axis]} dims, but the direction has {width}")
    return axis


def _edit_write(name: str, module: nn.Module, a: torch.Tensor, b: torch.Tensor, out_axis: int) -> dict[str, float]:
    """Map what `module` writes by `M = I + a bᵀ` (weights and bias); returns parameter name -> `‖bᵀW‖`.

    `ablate` uses `a = −U, b = U` (`M = I − UUᵀ`, the projection); `redirect_weights` uses
    `a = d̂ − v̂, b = v̂`. `‖bᵀW‖` is the norm of the component edited.
    """
    weight = module.weight
    removed: dict[str, float] = {}
    with torch.no_grad():
        a = a.to(device=weight.device, dtype=torch.float32)  # [D, k]
        b = b.to(device=weight.device, dtype=torch.float32)  # [D, k]
        w = weight.float()
        coords = b.T @ w if out_axis == 0 else w @ b  # [k, in] or [rows, k]: the component along b
        part = a @ coords if out_axis == 0 else coords @ a.T
        weight.copy_((w + part).to(weight.dtype))  # in place: ties and optimizer references survive
        removed[f"{name}.weight"] = float(coords.norm())
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            coord = b.T @ bias.float()
            bias.copy_((bias.float() + a @ coord).to(bias.dtype))
            removed[f"{name}.bias"] = float(coord.norm())
    return removed


def _edit_writes(model: nn.Module, width: int, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Apply `M = I + a bᵀ` to every residual write of `model`; all are checked before any is edited."""
    base = unwrap_model(model)
    _check_unsharded(base)
    names = residual_writes(base)  # raises for unknown families before anything is edited
    sites = named_sites(base)
    axes = [_output_axis(name, sites[name], width) for name in names]  # check all before editing any
    changed: dict[str, float] = {}
    for name, axis in zip(names, axes):
        changed.update(_edit_write(name, sites[name], a, b, axis))
    return changed


def ablate(model: nn.Module, cfg: AnchorConfig | None = None, concept: str | None = None, *,
           direction: Any | None = None) -> dict[str, float]:
    """Permanently remove the concept from everything that writes the residual stream.

    Orthogonalizes, in place, the token and position embeddings and each block's attention
    and MLP output projections (weights and biases) against the concept's direction, or its
    whole subspace for a k-axis concept (docs/method.md §5). Supported: GPT-2, Llama, Mistral,
    Qwen2/3, GPT-NeoX and pre-norm OPT; other families raise. PEFT-wrapped models are edited
    through the wrapper unless an adapter sits on a write (then merge first). A model still
    sharded by FSDP2 or ZeRO-3 is refused: edit its saved full weights in one process.

    Args:
        model: the model to edit in place.
        cfg, concept: the `AnchorConfig` and the concept's name, or
        direction: a vector `[D]` or basis `[D, k]` instead (with cfg=None).

    Returns:
        Parameter name -> Frobenius norm of the part removed, for every parameter edited;
        a parameter tied to an edited one (e.g. `lm_head.weight` tied to the token
        embedding) is listed under its own name too, since it changed with it.
    """
    target = resolve_target(model, cfg, concept, direction)
    changed = _edit_writes(model, target.width, -target.basis, target.basis)
    base = unwrap_model(model)
    edited = {id(p): changed[n] for n, p in base.named_parameters() if n in changed}
    for n, p in base.named_parameters(remove_duplicate=False):
        if id(p) in edited and n not in changed:
            changed[n] = edited[id(p)]
    return changed


def redirect_weights(model: nn.Module, cfg: AnchorConfig | None = None, concept: str | None = None,
                     to: Any | None = None, *, direction: Any | None = None) -> dict[str, float]:
    """Permanently redirect the concept: every residual write's `v̂` component moves to the destination.

    Each matrix (and bias) that writes the residual stream is mapped, in place, by
    `M = I + (d̂ − v̂)v̂ᵀ`: what a write put on `v̂` it now puts on `d̂`. For the opposite
    pole (`d̂ = −v̂`) `M = I − 2v̂v̂ᵀ` reflects every write; for an orthogonal destination no
    state of the edited stream has a `v̂` component (`v̂ᵀM = 0`). The edited model computes
    exactly what the original computes when the output of every write is mapped by `M`, which is
    `redirect(..., only_positive=False, layers=residual_writes(model))` wherever the hook's
    edit is linear: always for the opposite pole, and for an orthogonal destination where the
    writes carry no `d̂` component. It cannot equal the default hook, which moves only states
    pointing toward the concept (a weight edit cannot select by sign) and, for an orthogonal
    destination, keeps each state's norm (no linear map does for a state with both
    components); nor hooks at block outputs (inside a block the MLP reads the attention
    write already moved, as with `ablate`).
    A token embedding tied to the unembedding is untied first (the unembedding keeps a copy of
    the original weights and `config.tie_word_embeddings` becomes False), so the model still
    reads its output as trained: a reflected unembedding would read the reflected final state
    back as the original.

    Args:
        model: the model to edit in place (families as `ablate`).
        cfg, concept, to: as in `redirect` (`to=None` is the config's destination).
        direction: a vector `[D]` instead of `cfg` + `concept` (then `to` is required).

    Returns:
        Parameter name -> Frobenius norm of the `v̂` component moved, for every parameter edited.
    """
    target = resolve_target(model, cfg, concept, direction)
    destination = resolve_destination(cfg, target, to)
    v_hat = target.basis  # [D, 1]; a subspace concept was refused by resolve_destination
    residual_writes(model)  # raises for unknown families before anything (the tie included) is edited
    _check_unsharded(unwrap_model(model))
    _untie_unembedding(unwrap_model(model))
    return _edit_writes(model, target.width, destination.vector.unsqueeze(1) - v_hat, v_hat)


def _untie_unembedding(base: nn.Module) -> None:
    """Give a tied unembedding its own copy of the weights, and say so in the model config."""
    inputs, outputs = base.get_input_embeddings(), base.get_output_embeddings()
    if outputs is None or outputs.weight is not inputs.weight:
        return
    outputs.weight = nn.Parameter(inputs.weight.detach().clone(), requires_grad=inputs.weight.requires_grad)
    base.config.tie_word_embeddings = False


def ablate_axes(producer: nn.Linear, consumer: nn.Linear, dims: Sequence[int]) -> dict[str, float]:
    """Zero a bottleneck's anchored axes: the rows and bias of `producer`, the columns of `consumer`.

    The autoencoder form of weight ablation (docs/method.md §5): with the encoder's output rows
    and bias for `dims` zeroed, the code has exactly 0 on those axes for every input, and
    with the decoder's input columns zeroed nothing reads them either.

    Args:
        producer: the `nn.Linear` writing the code (e.g. the encoder's last layer).
        consumer: the `nn.Linear` reading it (e.g. the decoder's first layer).
        dims: the axes to remove, each < producer.out_features and < consumer.in_features.

    Returns:
        `{"producer.weight", "producer.bias" (if any), "consumer.weight"}` -> norm removed.
    """
    for label, module in (("producer", producer), ("consumer", consumer)):
        if not isinstance(module, nn.Linear):
            raise AnchorInterventionTypeError(f"`{label}` must be an nn.Linear, got {type(module).__name__}")
        _check_plain(label, module)
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or not dims:
        raise AnchorInterventionError(f"`dims` must be a non-empty list of axes, got {dims!r}")
    limit = min(producer.out_features, consumer.in_features)
    for i, d in enumerate(dims):
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < limit:
            raise AnchorInterventionError(
                f"`dims[{i}]` = {d!r} must be an int in 0..{limit - 1} (producer writes {producer.out_features} "
                f"dims, consumer reads {consumer.in_features})")
    if len(set(dims)) != len(dims):
        raise AnchorInterventionError(f"`dims` repeats an axis: {list(dims)}")
    idx = list(dims)
    changed: dict[str, float] = {}
    with torch.no_grad():
        changed["producer.weight"] = float(producer.weight[idx].float().norm())
        producer.weight[idx] = 0
        if producer.bias is not None:
            changed["producer.bias"] = float(producer.bias[idx].float().norm())
            producer.bias[idx] = 0
        changed["consumer.weight"] = float(consumer.weight[:, idx].float().norm())
        consumer.weight[:, idx] = 0
    return changed
