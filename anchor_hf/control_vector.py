"""An anchored concept as a llama.cpp control vector: steering outside Python.

An anchored direction is known by construction, so it can be handed to llama.cpp as is:

    anchor-hf export-control-vector MODEL anger anger.gguf            # dose 1 in typical-norm units
    llama-cli -m model.gguf --control-vector-scaled anger.gguf 0.1    # steer with dose 0.1

The file format is the one llama.cpp reads (`common_control_vector_load_one` in llama.cpp's
common/common.cpp; repeng's `ControlVector.export_gguf` writes the same): a GGUF file with
`general.architecture = "controlvector"`, metadata `controlvector.model_hint` (the model
type) and `controlvector.layer_count`, and one float32 tensor `direction.{N}` of n_embd
entries per steered block. llama.cpp adds `direction.N` to the output of block N (0-based:
the `build_cvec(cur, il)` call after block il's feed-forward residual add), the very state
anchor_hf's hooks on `model.layers[N]` edit; block 0 has no slot (the loader refuses
`direction.0`). It reads only the tensors; the metadata is for people and tools.

What differs from `steer`: `steer` adds `c·‖h‖·v̂`, scaled by each state's own norm; a
control vector adds one constant vector to every state. The export writes
`direction.N = c·s_N·v̂` with `s_N` the median norm of block N's output over the tokens of
a given text (the median, because an attention-sink position can be a hundred times the
others' norm and would dominate a mean). So at a typical token the two push alike, while
at a state with a larger or smaller norm the constant is relatively smaller or larger; the
exact HF counterpart is `steer(model, cfg, concept, {N: c·s_N}, mode="absolute")`.
The file states `c`, the blocks and every `s_N` in its `anchor_hf.*` metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .binding import bind
from .config import AnchorConfig
from .errors import AnchorError
from .io import atomic_path
from .layers import block_lists, guess_block_prefix, resolve_layers
from .places import live_states

ARCHITECTURE = "controlvector"
# Ordinary text on which the typical norms are measured when the user gives none.
DEFAULT_TEXT = (
    "The weather was mild this morning, so we walked to the market and bought bread, apples and cheese.",
    "Please send me the report by Friday; I will read it over the weekend and reply on Monday.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside green leaves.",
    "She laughed at the joke, finished her coffee and went back to work on the new design.",
)


class AnchorExportError(AnchorError, ValueError):
    """A control vector cannot be exported: a block llama.cpp cannot steer, a site that is not a block, bad dose."""


@dataclass(frozen=True)
class ControlVector:
    """What goes into a control-vector file.

    Attributes:
        concept: the concept's name.
        model_hint: the model's `model_type` (llama.cpp's `controlvector.model_hint`).
        dose: c, in multiples of each block's typical norm.
        norms: block index N -> s_N, the median ‖h‖ of block N's output on the text.
        directions: block index N -> `[D]` float32, the vector `c·s_N·v̂` llama.cpp adds there.
    """

    concept: str
    model_hint: str
    dose: float
    norms: dict[int, float]
    directions: dict[int, torch.Tensor]


def block_indices(model: nn.Module, names: Sequence[str]) -> list[int]:
    """The decoder-block index of each module name; raises for a name that is not a whole block."""
    prefix = guess_block_prefix(block_lists(model))
    out = []
    for name in names:
        head, _, tail = name.rpartition(".")
        if prefix is None or head != prefix or not tail.isdigit():
            raise AnchorExportError(f"{name!r} is not a decoder block of this model; a llama.cpp control vector acts "
                                    "on block outputs only (anchor at block indices to export)")
        out.append(int(tail))
    return out


def control_vector(model: nn.Module, tokenizer: object, cfg: AnchorConfig, concept: str, *, dose: float = 1.0,
                   layers: Sequence[int] | None = None, texts: Sequence[str] = DEFAULT_TEXT) -> ControlVector:
    """The control vector `{N: c·s_N·v̂}` of `concept` at `layers` (default: the config's anchored blocks).

    Args:
        model, tokenizer: the model the config was trained on, and its tokenizer.
        cfg, concept: the anchor config and the concept to export (one direction).
        dose: c, finite; the vector at block N is c times that block's typical norm.
        layers: block indices (negative from the end) to steer; block 0 cannot be steered by llama.cpp.
        texts: ordinary text on which the typical norms s_N are measured.
    """
    binding = bind(cfg, model)
    basis = binding.basis(concept)
    if basis.shape[1] != 1:
        raise AnchorExportError(f"concept {concept!r} spans {basis.shape[1]} axes; a control vector is one direction")
    if isinstance(dose, bool) or not isinstance(dose, (int, float)) or not torch.isfinite(torch.tensor(dose)):
        raise AnchorExportError(f"`dose` must be a finite number, got {dose!r}")
    names = binding.names if layers is None else [name for name, _ in resolve_layers(model, list(layers))]
    blocks = block_indices(model, names)
    if 0 in blocks:
        raise AnchorExportError("block 0 cannot be steered by a llama.cpp control vector (its loader refuses "
                                "`direction.0`); export later blocks, e.g. layers=[1, ...]")
    if not texts:
        raise AnchorExportError("`texts` is empty; the typical norms are measured on some ordinary text")
    batch = tokenizer(list(texts), return_tensors="pt", padding=True)
    states = live_states(model, blocks, batch["input_ids"], batch.get("attention_mask"))  # name -> [N, D]
    norms = {b: float(s.norm(dim=-1).median()) for b, s in zip(blocks, states.values())}
    v_hat = basis[:, 0].float()
    hint = str(getattr(getattr(model, "config", None), "model_type", "unknown"))
    return ControlVector(concept=concept, model_hint=hint, dose=float(dose), norms=norms,
                         directions={b: dose * norms[b] * v_hat for b in blocks})


def write_control_vector(vector: ControlVector, path: str) -> str:
    """Write `vector` as a llama.cpp control-vector GGUF file at `path` (atomically); returns `path`."""
    import gguf

    with atomic_path(path, suffix=".gguf") as tmp:
        writer = gguf.GGUFWriter(tmp, ARCHITECTURE)
        writer.add_string(f"{ARCHITECTURE}.model_hint", vector.model_hint)
        writer.add_uint32(f"{ARCHITECTURE}.layer_count", len(vector.directions))
        writer.add_string("anchor_hf.concept", vector.concept)
        writer.add_float32("anchor_hf.dose", vector.dose)
        writer.add_array("anchor_hf.blocks", sorted(vector.directions))
        writer.add_array("anchor_hf.typical_norms", [vector.norms[b] for b in sorted(vector.directions)])
        writer.add_string("anchor_hf.scale", "direction.N = dose * typical_norm[N] * v_hat; typical_norm = median "
                                             "|h| of block N's output (0-based) over the export text's tokens")
        for block in sorted(vector.directions):
            writer.add_tensor(f"direction.{block}", vector.directions[block].detach().float().cpu().numpy())
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path
