"""Architecture description of a C-RADIO encoder and its teacher heads, plus named presets.

A `RadioConfig` is pure data. The loader builds it from a checkpoint's own `args` and tensor
shapes, and the presets only serve random-weight models (tests, benchmarks) and defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

# timm's OpenAI-CLIP constants, which RADIO uses until the checkpoint's stored values replace them.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

HEAD_VERSIONS = ("v1", "v2", "attn")


@dataclass(frozen=True)
class HeadConfig:
    """Shape of one teacher head (an MLP over summary or patch tokens).

    `version` is "v1" (MLP with ReLU), "v2" (residual MLP with GELU) or "attn" (two
    transformer blocks followed by a v2 MLP with no inner blocks). `output_dim` is the width
    of the last Linear layer, so a feature head with `upsample_factor` u emits
    `output_dim // u**2` channels per upsampled token. `num_heads` only applies to "attn".
    """

    version: str
    input_dim: int
    hidden_dim: int
    output_dim: int
    num_inner: int = 0
    upsample_factor: int = 1
    num_heads: int = 16

    def __post_init__(self) -> None:
        if self.version not in HEAD_VERSIONS:
            raise ValueError(
                f"Invalid head version {self.version!r}: expected one of {HEAD_VERSIONS}."
            )
        if self.upsample_factor < 1:
            raise ValueError(f"Invalid upsample factor {self.upsample_factor}: must be >= 1.")
        if self.output_dim % (self.upsample_factor**2) != 0:
            raise ValueError(
                f"Head output width {self.output_dim} is not divisible by the squared "
                f"upsample factor {self.upsample_factor**2}."
            )
        if self.version == "v1" and self.upsample_factor != 1:
            raise ValueError("A v1 head cannot upsample: set upsample_factor to 1.")
        if self.version == "attn" and self.num_inner != 0:
            raise ValueError("An attn head has no inner MLP blocks: set num_inner to 0.")

    @property
    def channels(self) -> int:
        """Channels per token after the pixel shuffle."""
        return self.output_dim // (self.upsample_factor**2)


@dataclass(frozen=True)
class TeacherConfig:
    """One distillation teacher: its name, summary token slot and heads.

    `token_slot` indexes the prefix token (cls or register) that feeds the summary head.
    `summary_head` is None when the checkpoint stores no summary head for this teacher.
    `use_summary` decides whether the teacher's cls token is part of the backbone summary.
    `kind` is the teacher's `type` entry in the checkpoint args, kept for writing files.
    """

    name: str
    token_slot: int
    feature_head: HeadConfig
    summary_head: HeadConfig | None
    use_summary: bool = True
    kind: str = "generic"


@dataclass(frozen=True)
class RadioConfig:
    """Architecture of a C-RADIO ViT with CPE position embedding and its teacher heads.

    The token sequence is `[num_cls_tokens cls | num_registers registers | patches]`.
    `summary_idxs` selects the cls tokens that form the backbone summary.
    `num_intermediates` > 0 means the checkpoint has an intermediate feature normalizer,
    with one rotation per layer when `rotation_per_layer` is set.
    `arch` is the timm architecture name written to and read from checkpoint args.
    `backbone_dtype` is the torch dtype name (args.dtype) that the loader casts the backbone to.
    Teacher heads always keep fp32 parameters.
    """

    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden_dim: int
    teachers: tuple[TeacherConfig, ...] = ()
    patch_size: int = 16
    cpe_max_size: int = 2048
    num_cls_tokens: int = 1
    num_registers: int = 0
    summary_idxs: tuple[int, ...] = (0,)
    qkv_bias: bool = True
    layer_scale: bool = False
    final_norm: bool = False
    feature_normalizer: bool = False
    num_intermediates: int = 0
    rotation_per_layer: bool = False
    norm_mean: tuple[float, float, float] = CLIP_MEAN
    norm_std: tuple[float, float, float] = CLIP_STD
    max_resolution: int = 2048
    preferred_resolution: int = 512
    arch: str = "vit_huge_patch16_224"
    cls_token_per_teacher: bool = True
    backbone_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads != 0:
            raise ValueError(
                f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}."
            )
        if self.cpe_max_size % self.patch_size != 0:
            raise ValueError(
                f"cpe_max_size {self.cpe_max_size} is not a multiple of patch_size "
                f"{self.patch_size}."
            )
        names = [teacher.name for teacher in self.teachers]
        if len(set(names)) != len(names):
            raise ValueError(f"Teacher names must be unique, got {names}.")
        for teacher in self.teachers:
            if not 0 <= teacher.token_slot < self.num_summary_tokens:
                raise ValueError(
                    f"Teacher {teacher.name!r} has token_slot {teacher.token_slot}, outside the "
                    f"{self.num_summary_tokens} cls and register tokens."
                )
        for index in self.summary_idxs:
            if not 0 <= index < self.num_summary_tokens:
                raise ValueError(
                    f"summary_idxs entry {index} is outside the {self.num_summary_tokens} cls "
                    f"and register tokens."
                )

    @property
    def num_summary_tokens(self) -> int:
        """Number of prefix tokens (cls and registers) in front of the patch tokens."""
        return self.num_cls_tokens + self.num_registers

    @property
    def pos_grid_size(self) -> int:
        """Side G of the stored G x G position-embedding table, in tokens."""
        return self.cpe_max_size // self.patch_size

    @property
    def teacher_names(self) -> tuple[str, ...]:
        return tuple(teacher.name for teacher in self.teachers)

    def teacher(self, name: str) -> TeacherConfig:
        """Return the teacher called `name`, or raise KeyError listing the known names."""
        for teacher in self.teachers:
            if teacher.name == name:
                return teacher
        raise KeyError(f"Unknown teacher {name!r}: this config has {list(self.teacher_names)}.")

    def with_feature_dim(self, name: str, channels: int) -> RadioConfig:
        """Return a copy whose teacher `name` emits `channels` feature channels per token.

        The head's last Linear layer becomes `channels * upsample_factor**2` wide.
        """
        teacher = self.teacher(name)
        head = teacher.feature_head
        new_head = dataclasses.replace(head, output_dim=channels * head.upsample_factor**2)
        new_teacher = dataclasses.replace(teacher, feature_head=new_head)
        teachers = tuple(new_teacher if t.name == name else t for t in self.teachers)
        return dataclasses.replace(self, teachers=teachers)


def default_summary_idxs(
    teachers: Sequence[tuple[str, bool]], cls_token_per_teacher: bool
) -> tuple[int, ...]:
    """Return the cls token indices that form the backbone summary, as the torch.hub loader does.

    Args:
        teachers: (name, use_summary) per teacher, in checkpoint order.

    For each teacher with use_summary, the first list index of its name counts. Without one cls
    token per teacher the summary is cls token 0.
    """
    if not cls_token_per_teacher:
        return (0,)
    first_index: dict[str, int] = {}
    for index, (name, use_summary) in enumerate(teachers):
        if use_summary and name not in first_index:
            first_index[name] = index
    return tuple(sorted(first_index.values()))


def _teacher(name, slot, summary, feature, use_summary=True) -> TeacherConfig:
    return TeacherConfig(
        name=name,
        token_slot=slot,
        summary_head=summary,
        feature_head=feature,
        use_summary=use_summary,
    )


def _full_size_teachers(dim: int) -> tuple[TeacherConfig, ...]:
    # NOTE: the head versions, hidden widths, num_inner, teacher dims, token slots, use_summary
    # flags and the register count below are assumed until a real C-RADIOv4 checkpoint's args are
    # read. The loader always builds from the checkpoint instead. The 3 cls + 7 registers and
    # summary_idxs (0, 1) follow transformers 5.24's RadioConfig defaults for nvidia/C-RADIOv4-H.
    def head(out: int, version: str = "v2") -> HeadConfig:
        return HeadConfig(
            version=version, input_dim=dim, hidden_dim=dim, output_dim=out, num_inner=1
        )

    return (
        _teacher("siglip2-g", 0, head(1536), head(1536)),
        _teacher("dino_v3", 1, head(4096), head(4096)),
        _teacher("sam3", 2, head(1024), head(1024), use_summary=False),
    )


def _tiny_teachers(dim: int) -> tuple[TeacherConfig, ...]:
    def head(out: int, version: str = "v2", num_inner: int = 1, upsample: int = 1) -> HeadConfig:
        return HeadConfig(
            version=version,
            input_dim=dim,
            hidden_dim=48,
            output_dim=out,
            num_inner=num_inner,
            upsample_factor=upsample,
        )

    return (
        _teacher("siglip2-g", 0, head(32), head(32, version="attn", num_inner=0)),
        _teacher("dino_v3", 1, head(40, version="v1"), head(4 * 24, upsample=2)),
        _teacher("sam3", 2, head(64), head(64), use_summary=False),
    )


RADIO_PRESETS: dict[str, RadioConfig] = {
    "c-radio_v4-h": RadioConfig(
        embed_dim=1280,
        depth=32,
        num_heads=16,
        mlp_hidden_dim=5120,
        teachers=_full_size_teachers(1280),
        num_cls_tokens=3,
        num_registers=7,
        summary_idxs=(0, 1),
        arch="vit_huge_patch16_224",
    ),
    "c-radio_v4-so400m": RadioConfig(
        embed_dim=1152,
        depth=27,
        num_heads=16,
        mlp_hidden_dim=4304,
        teachers=_full_size_teachers(1152),
        num_cls_tokens=3,
        num_registers=7,
        summary_idxs=(0, 1),
        arch="vit_so400m_patch16_224",
    ),
    # Random-weight model for tests: every head version and an upsampling head appear once.
    "tiny": RadioConfig(
        embed_dim=64,
        depth=8,
        num_heads=4,
        mlp_hidden_dim=256,
        teachers=_tiny_teachers(64),
        num_cls_tokens=3,
        num_registers=5,
        summary_idxs=(0, 1),
        arch="vit_tiny_radio_patch16",
    ),
}
