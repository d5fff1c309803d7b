"""Teacher heads: MLP versions v1, v2 and attn, the pixel shuffle, and the per-teacher adaptor.

Each teacher has a summary head over one prefix token and a feature head applied token-wise to
the patch tokens. Submodule names follow the C-RADIO checkpoint layout, so checkpoint tensors
load without renaming inside a head: `fc1`, `norm`, `inner`, `fc2` for v1, then `fc1`,
`blocks.k.{0,2}`, `final.{0,2}` for v2, and `blocks`, `mlp` for attn.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from timm.models.vision_transformer import Block
from torch import nn

from .config import HeadConfig, TeacherConfig

# Random-init LayerScale value of the attn head's blocks. A checkpoint overwrites it.
ATTN_HEAD_LAYER_SCALE_INIT = 1e-5


class RadioOutput(NamedTuple):
    """Summary `[B, C_s]` and dense features (`[B, N, C]` NLC or `[B, C, h, w]` NCHW)."""

    summary: torch.Tensor | None
    features: torch.Tensor


def pixel_shuffle_tokens(
    tokens: torch.Tensor, rows: int, cols: int, upsample_factor: int
) -> torch.Tensor:
    """Spread each token's channels over a u x u block of output tokens.

    Args:
        tokens: `[B, rows*cols, u*u*C]` with channel index (u1*u + u2)*C + c.

    Returns:
        `[B, (rows*u)*(cols*u), C]` in raster order over the upsampled grid. Output token
        (y*u + u1, x*u + u2) takes channels [(u1*u + u2)*C, (u1*u + u2 + 1)*C) of input (y, x).
    """
    u = upsample_factor
    if u == 1:
        return tokens
    batch, _, width = tokens.shape
    channels = width // (u * u)
    grid = tokens.reshape(batch, rows, cols, u, u, channels)
    grid = grid.permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(batch, rows * u * cols * u, channels)


class MlpV1(nn.Module):
    """Linear, LayerNorm, ReLU, then `num_inner` x (Linear, LayerNorm, ReLU), then Linear."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        hidden = config.hidden_dim
        self.fc1 = nn.Linear(config.input_dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        inner: list[nn.Module] = []
        for _ in range(config.num_inner):
            inner += [nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU()]
        self.inner = nn.Sequential(*inner)
        self.fc2 = nn.Linear(hidden, config.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.fc1(x)))
        x = self.inner(x)
        return self.fc2(x)


class MlpV2(nn.Module):
    """Linear, then `num_inner` residual blocks x + Linear(GELU(LN(x))), then LN, GELU, Linear.

    There is no activation between `fc1` and the first block. LayerNorms use torch's default
    eps 1e-5 and GELU is exact (erf).
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        hidden = config.hidden_dim
        self.fc1 = nn.Linear(config.input_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, hidden))
            for _ in range(config.num_inner)
        )
        self.final = nn.Sequential(
            nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, config.output_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        for block in self.blocks:
            x = x + block(x)
        return self.final(x)


class AttnHead(nn.Module):
    """Two timm ViT blocks (no qkv bias, LayerScale) over all patch tokens, then an MlpV2.

    The blocks use timm 1.0.31's LayerNorm (eps 1e-6) and attend over every patch token, also when
    the backbone ran with ViTDet windows. Prefix tokens are not included.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(
                Block(
                    config.input_dim,
                    num_heads=config.num_heads,
                    init_values=ATTN_HEAD_LAYER_SCALE_INIT,
                )
                for _ in range(2)
            )
        )
        self.mlp = MlpV2(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.blocks(x))


def build_head(config: HeadConfig) -> nn.Module:
    """Create the head module for `config.version`."""
    if config.version == "v1":
        return MlpV1(config)
    if config.version == "v2":
        return MlpV2(config)
    return AttnHead(config)


class TeacherAdaptor(nn.Module):
    """Summary and feature heads of one teacher.

    Heads keep fp32 parameters when the backbone is cast. Inputs are cast to the head's
    parameter dtype and outputs are returned in fp32, also under autocast.
    """

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__()
        self.config = config
        self.summary_head = build_head(config.summary_head) if config.summary_head else None
        self.feature_head = build_head(config.feature_head)

    @property
    def upsample_factor(self) -> int:
        return self.config.feature_head.upsample_factor

    def forward(
        self,
        summary_token: torch.Tensor,
        patch_tokens: torch.Tensor,
        grid: tuple[int, int],
        feature_fmt: str,
    ) -> RadioOutput:
        """Apply both heads.

        Args:
            summary_token: `[B, D]`, the prefix token at this teacher's `token_slot`.
            patch_tokens: `[B, rows*cols, D]` in raster order.
            grid: (rows, cols) of the patch token grid.
            feature_fmt: "NLC" for `[B, rows*cols*u*u, C]` or "NCHW" for
                `[B, C, rows*u, cols*u]`.

        Returns:
            RadioOutput in fp32. The summary is None when the teacher has no summary head.
        """
        dtype = self.feature_head_dtype()
        summary = None
        if self.summary_head is not None:
            summary = self.summary_head(summary_token.to(dtype)).float()

        rows, cols = grid
        u = self.upsample_factor
        features = self.feature_head(patch_tokens.to(dtype))
        features = pixel_shuffle_tokens(features, rows, cols, u).float()
        if feature_fmt == "NCHW":
            batch, _, channels = features.shape
            features = features.reshape(batch, rows * u, cols * u, channels).permute(0, 3, 1, 2)
        return RadioOutput(summary, features)

    def feature_head_dtype(self) -> torch.dtype:
        return next(self.feature_head.parameters()).dtype
