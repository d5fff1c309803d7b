"""C-RADIO encoder: CPE ViT backbone with optional ViTDet windows and per-teacher heads.

The module implements inference only. It has no dropout, drop path or random position crops,
so `train()` changes nothing in the forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm
from timm.models.vision_transformer import Block
from torch import nn

from .config import RadioConfig
from .heads import RadioOutput, TeacherAdaptor
from .normalizers import FeatureNormalizer, InputConditioner, IntermediateFeatureNormalizer
from .patch_generator import PatchGenerator
from .vitdet import default_global_blocks, run_blocks, valid_window_sizes

FEATURE_FORMATS = ("NLC", "NCHW")
BACKBONE = "backbone"
# Random-init value of backbone LayerScale parameters. A checkpoint overwrites them.
LAYER_SCALE_INIT = 1.0


def nearest_supported_resolution(
    height: int,
    width: int,
    patch_size: int = 16,
    window_size: int | None = None,
    max_resolution: int = 2048,
) -> tuple[int, int]:
    """Return the supported (height, width) in pixels nearest to the given size.

    Each side is rounded to a multiple of step = patch_size * (window_size or 1) with Python's
    `round` (half to even), with a floor of one step, and capped at the largest multiple of the
    step that does not exceed `max_resolution`.
    """
    step = patch_size * (window_size or 1)
    cap = max(step, (max_resolution // step) * step)

    def snap(side: int) -> int:
        return min(cap, max(step, round(side / step) * step))

    return snap(height), snap(width)


def _mlp_ratio(dim: int, hidden: int) -> float:
    """Return an mlp_ratio for which timm's `int(dim * ratio)` equals `hidden` exactly."""
    ratio = hidden / dim
    if int(dim * ratio) != hidden:
        ratio = (hidden + 0.5) / dim
    return ratio


class RadioModel(nn.Module):
    """C-RADIO image encoder with the requested teacher heads.

    Args:
        config: architecture, usually read from a checkpoint by `load_radio`.
        adaptor_names: teachers whose heads are built and run, in output order.
        window_size: ViTDet window side in tokens, or None for global attention everywhere.
        global_blocks: block indices with global attention when windowed. Defaults to RADIO's
            rule: period P = depth // 4, blocks with i % P == P - 1, plus the last block.
    """

    def __init__(
        self,
        config: RadioConfig,
        adaptor_names: Sequence[str] = ("sam3",),
        window_size: int | None = None,
        global_blocks: Iterable[int] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(adaptor_names, str):
            adaptor_names = (adaptor_names,)
        unknown = [name for name in adaptor_names if name not in config.teacher_names]
        if unknown:
            raise ValueError(
                f"Unknown adaptor names {unknown}: this model has teachers "
                f"{list(config.teacher_names)}."
            )
        if window_size is not None and window_size < 1:
            raise ValueError(f"Invalid window size {window_size}: must be a positive integer.")

        self.config = config
        self.window_size = window_size
        if global_blocks is None:
            global_blocks = default_global_blocks(config.depth)
        self.global_blocks = tuple(sorted(global_blocks))
        bad_blocks = [i for i in self.global_blocks if not 0 <= i < config.depth]
        if bad_blocks:
            raise ValueError(
                f"Global block indices {bad_blocks} are outside 0..{config.depth - 1}."
            )

        dim = config.embed_dim
        self.input_conditioner = InputConditioner(config.norm_mean, config.norm_std)
        self.patch_generator = PatchGenerator(
            dim, config.patch_size, config.pos_grid_size, config.num_summary_tokens
        )
        self.blocks = nn.ModuleList(
            Block(
                dim,
                num_heads=config.num_heads,
                mlp_ratio=_mlp_ratio(dim, config.mlp_hidden_dim),
                qkv_bias=config.qkv_bias,
                init_values=LAYER_SCALE_INIT if config.layer_scale else None,
            )
            for _ in range(config.depth)
        )
        self.norm = LayerNorm(dim, eps=1e-6) if config.final_norm else nn.Identity()
        self.feature_normalizer = FeatureNormalizer(dim) if config.feature_normalizer else None
        self.intermediate_feature_normalizer = None
        if config.num_intermediates:
            # NOTE: loaded so that checkpoints round-trip, but no intermediate-layer API uses it.
            self.intermediate_feature_normalizer = IntermediateFeatureNormalizer(
                config.num_intermediates, dim, config.rotation_per_layer
            )
        self.adaptors = nn.ModuleDict(
            {name: TeacherAdaptor(config.teacher(name)) for name in adaptor_names}
        )
        self.eval()

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    @property
    def num_summary_tokens(self) -> int:
        """Number of cls and register tokens in front of the patch tokens."""
        return self.config.num_summary_tokens

    @property
    def min_resolution_step(self) -> int:
        """Pixel step that input height and width must be multiples of."""
        return self.patch_size * (self.window_size or 1)

    @property
    def max_resolution(self) -> int:
        return self.config.max_resolution

    @property
    def adaptor_names(self) -> tuple[str, ...]:
        return tuple(self.adaptors.keys())

    def feature_dim(self, name: str) -> int:
        """Return the channel count of the dense features of `name` ("backbone" or a teacher)."""
        if name == BACKBONE:
            return self.config.embed_dim
        if name not in self.adaptors:
            raise KeyError(f"No adaptor {name!r}: this model has {list(self.adaptor_names)}.")
        return self.config.teacher(name).feature_head.channels

    def nearest_supported_resolution(self, height: int, width: int) -> tuple[int, int]:
        """Return the supported (height, width) nearest to the given size for this model."""
        return nearest_supported_resolution(
            height, width, self.patch_size, self.window_size, self.max_resolution
        )

    def forward(
        self, images: torch.Tensor, feature_fmt: str = "NLC", resize: bool = False
    ) -> dict[str, RadioOutput]:
        """Encode images and apply every adaptor head.

        Args:
            images: `[B, 3, H, W]` RGB in [0, 1]. H and W must be multiples of
                `min_resolution_step` and at most `max_resolution`.
            feature_fmt: "NLC" gives features `[B, h*w, C]`, "NCHW" gives `[B, C, h, w]`, with
                h = H / patch_size and w = W / patch_size (times the head's upsample factor).
            resize: when True, resize other sizes bilinearly to `nearest_supported_resolution`.

        Returns:
            {"backbone": RadioOutput, <adaptor name>: RadioOutput, ...}. The backbone summary is
            `[B, D * len(summary_idxs)]` in the backbone's compute dtype, adaptor outputs are
            fp32.
        """
        if feature_fmt not in FEATURE_FORMATS:
            raise ValueError(
                f"Invalid feature_fmt {feature_fmt!r}: expected one of {FEATURE_FORMATS}."
            )
        images = self._prepare_images(images, resize)
        rows = images.shape[-2] // self.patch_size
        cols = images.shape[-1] // self.patch_size

        embed_dtype = self.patch_generator.embedder.weight.dtype
        tokens = self.patch_generator(self.input_conditioner(images).to(embed_dtype))
        tokens = run_blocks(
            self.blocks,
            tokens,
            self.num_summary_tokens,
            (rows, cols),
            self._effective_window_size(rows, cols),
            self.global_blocks,
        )
        tokens = self.norm(tokens)

        prefix = tokens[:, : self.num_summary_tokens]
        features = tokens[:, self.num_summary_tokens :]
        if self.feature_normalizer is not None:
            features = self.feature_normalizer(features)
        summary = prefix[:, list(self.config.summary_idxs)].flatten(1)

        outputs = {
            BACKBONE: RadioOutput(summary, _format_features(features, rows, cols, feature_fmt))
        }
        for name, adaptor in self.adaptors.items():
            slot = adaptor.config.token_slot
            outputs[name] = adaptor(prefix[:, slot].float(), features, (rows, cols), feature_fmt)
        return outputs

    def _effective_window_size(self, rows: int, cols: int) -> int | None:
        # A single window covering the whole grid runs as global attention. NOTE: NVlabs/RADIO's
        # hook would still hold cls and register tokens out of such a window, so its output
        # differs from this one for window_size == rows == cols.
        if self.window_size is not None and rows == self.window_size and cols == self.window_size:
            return None
        return self.window_size

    def _prepare_images(self, images: torch.Tensor, resize: bool) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"Expected images of shape [B, 3, H, W], got {list(images.shape)}.")
        height, width = images.shape[-2:]
        step = self.min_resolution_step
        if height % step == 0 and width % step == 0:
            self._check_max_resolution(height, width)
            return images

        target = self.nearest_supported_resolution(height, width)
        if resize:
            return F.interpolate(images, size=target, mode="bilinear", align_corners=False)
        message = (
            f"Input size {height} x {width} is not a multiple of {step} px (patch size "
            f"{self.patch_size} x window size {self.window_size or 1}). Resize to the nearest "
            f"supported size {target[0]} x {target[1]} (see nearest_supported_resolution) or "
            f"pass resize=True."
        )
        patch = self.patch_size
        if self.window_size and height % patch == 0 and width % patch == 0:
            valid = valid_window_sizes(height // patch, width // patch)
            message += f" Window sizes that divide this token grid: {valid}."
        raise ValueError(message)

    def _check_max_resolution(self, height: int, width: int) -> None:
        if max(height, width) > self.max_resolution:
            raise ValueError(
                f"Input size {height} x {width} exceeds the maximum resolution "
                f"{self.max_resolution} px of this model. Downscale the images first."
            )


def _format_features(
    features: torch.Tensor, rows: int, cols: int, feature_fmt: str
) -> torch.Tensor:
    if feature_fmt == "NLC":
        return features
    batch, _, dim = features.shape
    return features.reshape(batch, rows, cols, dim).permute(0, 3, 1, 2)
