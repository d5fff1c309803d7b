"""Fixed affine maps around the encoder: input conditioner and feature normalizers.

All values are buffers read from the checkpoint, and nothing here is trained.
"""

from __future__ import annotations

import torch
from torch import nn


class InputConditioner(nn.Module):
    """Normalise RGB images in [0, 1] with the checkpoint's per-channel mean and std.

    Buffers `norm_mean` and `norm_std` have shape `[3, 1, 1]`.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("norm_mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("norm_std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map `[B, 3, H, W]` images to `(x - mean) / std`, computed and returned in fp32."""
        return (images.float() - self.norm_mean.float()) / self.norm_std.float()


class FeatureNormalizer(nn.Module):
    """Affine map `(x - mean) @ tx.T` applied to backbone patch features before the heads.

    Buffers: `mean` `[D]` and `tx` `[D, D]`.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("tx", torch.eye(dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Normalise `[B, N, D]` features."""
        return (features - self.mean.to(features.dtype)) @ self.tx.to(features.dtype).T


class IntermediateFeatureNormalizer(nn.Module):
    """Per-layer normaliser for intermediate block outputs.

    Buffers: `alphas` `[L]`, `means` `[L, D]` and `rotation`, either `[D, D]` shared by all
    layers or `[L, D, D]` with one rotation per layer.
    """

    def __init__(self, num_intermediates: int, dim: int, rotation_per_layer: bool) -> None:
        super().__init__()
        rotation = torch.eye(dim)
        if rotation_per_layer:
            rotation = rotation.unsqueeze(0).repeat(num_intermediates, 1, 1)
        self.register_buffer("alphas", torch.ones(num_intermediates))
        self.register_buffer("means", torch.zeros(num_intermediates, dim))
        self.register_buffer("rotation", rotation.contiguous())

    def forward(self, features: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalise `[B, N, D]` patch features of intermediate `index`.

        Returns:
            The normalised features `(x - means[index]) @ rotation.T` and the scalar weight
            `alphas[index]` that NVlabs/RADIO uses when it aggregates layers.
        """
        rotation = self.rotation if self.rotation.ndim == 2 else self.rotation[index]
        dtype = features.dtype
        normalised = (features - self.means[index].to(dtype)) @ rotation.to(dtype).T
        return normalised, self.alphas[index]
