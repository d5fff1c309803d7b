"""Patch embedding with cropped position embedding (CPE) and prefix tokens, inference branch only.

C-RADIO stores one learned position table for a G x G token grid (G = cpe_max_size / patch).
For an h x w grid the table is resized bilinearly to a square of side max(h, w) and its
top-left h x w corner is kept. Training-time random crops and position dropout are not
implemented: this module always computes the deterministic inference embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping patches flattened in (channel, row, column) order.

    Args:
        images: `[B, C, H, W]` with H and W multiples of `patch_size`.

    Returns:
        `[B, (H/p)*(W/p), C*p*p]`, patches in raster order. A Linear layer over this layout
        equals a Conv2d with kernel and stride p whose weight is reshaped to `[D, C*p*p]`.
    """
    batch, channels, height, width = images.shape
    rows, cols = height // patch_size, width // patch_size
    patches = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    patches = patches.permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(batch, rows * cols, channels * patch_size * patch_size)


def crop_position_embedding(table: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Compute the inference position embedding of a rows x cols token grid.

    Args:
        table: `[1, G*G, D]`, a row-major G x G grid.

    Returns:
        `[1, rows*cols, D]` in the dtype of `table`. The table is resized to S x S with
        S = max(rows, cols) (bilinear, align_corners=False, no antialias, in fp32), then the
        top-left rows x cols window is kept. An unchanged grid skips the resize.
    """
    grid = int(round(table.shape[1] ** 0.5))
    if grid * grid != table.shape[1]:
        raise ValueError(f"Position table with {table.shape[1]} entries is not a square grid.")
    if rows == grid and cols == grid:
        return table

    dim = table.shape[-1]
    side = max(rows, cols)
    square = table.reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    # NVlabs/RADIO computes the resize in fp32, so autocast must not lower it to bf16.
    with torch.autocast(device_type=table.device.type, enabled=False):
        square = F.interpolate(
            square.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=False
        )
    window = square[:, :, :rows, :cols].to(table.dtype)
    return window.flatten(2).transpose(1, 2)


class PatchGenerator(nn.Module):
    """Turn images into the token sequence `[cls | registers | patches + position]`.

    Parameters: `embedder.weight` `[D, 3*p*p]` (no bias), `pos_embed` `[1, G*G, D]` and
    `prefix_tokens` `[num_cls + num_registers, D]`, cls rows first.
    """

    def __init__(
        self,
        embed_dim: int,
        patch_size: int,
        pos_grid_size: int,
        num_prefix_tokens: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embedder = nn.Linear(in_channels * patch_size * patch_size, embed_dim, bias=False)
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_grid_size * pos_grid_size, embed_dim))
        self.prefix_tokens = nn.Parameter(torch.zeros(num_prefix_tokens, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.prefix_tokens, std=0.02)

    @property
    def num_prefix_tokens(self) -> int:
        return self.prefix_tokens.shape[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed normalised images.

        Args:
            images: `[B, 3, H, W]`, H and W multiples of the patch size.

        Returns:
            `[B, num_prefix + (H/p)*(W/p), D]`. Prefix tokens carry no position embedding.
        """
        rows = images.shape[-2] // self.patch_size
        cols = images.shape[-1] // self.patch_size
        patches = self.embedder(patchify(images, self.patch_size))
        # Under autocast the embedder returns bf16 and the fp32 position table promotes the sum
        # to fp32, as in NVlabs/RADIO.
        patches = patches + crop_position_embedding(self.pos_embed, rows, cols)
        prefix = self.prefix_tokens.to(patches.dtype).expand(patches.shape[0], -1, -1)
        return torch.cat([prefix, patches], dim=1)
