"""The colour autoencoder of the Sparse Concept Anchoring paper as a Hugging Face model.

RGB `[B, 3]` → GELU MLP → `E`-dim bottleneck → L2 normalization → mirror MLP → RGB.
With `E = 4` ("anchored") red is pinned to one axis and vibrant hues to a plane, so the
hue wheel lies in two known dims; with `E = 5` and a second nonlinearity ("isolated")
the spare dimension lets the model keep every colour but red off the red axis, so the
axis can be ablated (docs/method.md §5, §7).

The anchored site is `bottleneck_norm`, a module of its own, so `AnchorConfig(layers=
["bottleneck_norm"])` resolves it by name like any other layer. It returns `[B, 1, E]`:
one "token" per colour, the `[B, T, D]` shape the regularizer and the interventions use.
Interventions hooked on it see the normalized state, and the decoder sees whatever they
return (after a projection the state is no longer unit norm; that is the intervention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from anchor_hf.errors import AnchorConfigError


class ColourAutoencoderConfig(PretrainedConfig):
    """Shape of a colour autoencoder.

    Args:
        hidden_size (`int`): width `E` of the normalized bottleneck, the anchored state
            (named `hidden_size` so the anchor machinery reads it as the model width).
        intermediate_size (`int`): width of the hidden layers on each side.
        num_nonlinear (`int`): GELU layers on each side (1 for "anchored", 2 for "isolated").
    """

    model_type = "colour_autoencoder"

    def __init__(self, hidden_size: int = 4, intermediate_size: int = 16, num_nonlinear: int = 1,
                 **kwargs) -> None:
        for name, value, low in (("hidden_size", hidden_size, 2), ("intermediate_size", intermediate_size, 1),
                                 ("num_nonlinear", num_nonlinear, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise AnchorConfigError(f"`{name}` must be an int >= {low}, got {value!r}")
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_nonlinear = num_nonlinear
        super().__init__(**kwargs)


@dataclass
class ColourAutoencoderOutput(ModelOutput):
    """`loss` (MSE, when `labels` are given), `reconstruction` `[B, 3]`, `latents` `[B, E]`."""

    loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    latents: torch.Tensor | None = None


class BottleneckNorm(nn.Module):
    """`z / ‖z‖` over the last dim: puts every colour on the unit sphere (no parameters)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z / torch.linalg.vector_norm(z, dim=-1, keepdim=True).clamp_min(1e-12)


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers between `sizes`, GELU between each pair (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class ColourAutoencoder(PreTrainedModel):
    """RGB → bottleneck on the unit sphere → RGB (see the module docstring)."""

    config_class = ColourAutoencoderConfig
    base_model_prefix = "colour_autoencoder"
    main_input_name = "rgb"

    def __init__(self, config: ColourAutoencoderConfig) -> None:
        super().__init__(config)
        hidden = [config.intermediate_size] * config.num_nonlinear
        self.encoder = _mlp([3, *hidden, config.hidden_size])
        self.bottleneck_norm = BottleneckNorm()
        self.decoder = _mlp([config.hidden_size, *hidden, 3])
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Keep PyTorch's default Linear init (as the paper's models did); nothing to add.
        return None

    @property
    def bottleneck_producer(self) -> nn.Linear:
        """The layer that writes the bottleneck (its rows are the latent dims)."""
        return self.encoder[-1]

    @property
    def bottleneck_consumer(self) -> nn.Linear:
        """The layer that reads the bottleneck (its columns are the latent dims)."""
        return self.decoder[0]

    def forward(self, rgb: torch.Tensor, labels: torch.Tensor | None = None,
                return_dict: bool | None = None) -> ColourAutoencoderOutput | tuple:
        """Reconstruct `rgb` `[B, 3]`; with `labels` `[B, 3]` (the target colours) also the MSE."""
        z = self.encoder(rgb.to(self.dtype)).unsqueeze(1)  # [B, 1, E]
        h = self.bottleneck_norm(z)  # [B, 1, E], the anchored site
        reconstruction = self.decoder(h).squeeze(1)  # [B, 3]
        loss = F.mse_loss(reconstruction.float(), labels.float()) if labels is not None else None
        out = ColourAutoencoderOutput(loss=loss, reconstruction=reconstruction, latents=h.squeeze(1))
        if return_dict is False:
            return out.to_tuple()
        return out
