"""Build a `RadioConfig` from a checkpoint's own args, config.json and tensor shapes.

Widths, depth, MLP size, token counts, head versions and head sizes come from tensor shapes.
Only what the weights cannot tell comes from the args: the attention head count, the teacher
names and order, token slots, upsample factors and `use_summary`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import timm
import torch

from .checkpoint_keys import teacher_head_state
from .config import HeadConfig, RadioConfig, TeacherConfig, default_summary_idxs

logger = logging.getLogger(__name__)

# Attention head counts of the timm and RADIO architectures used by C-RADIO checkpoints. The
# weights cannot tell the head count. C-RADIOv4-SO400M uses 16 heads (head dim 72), not SigLIP's 18.
KNOWN_NUM_HEADS = {
    "vit_huge_patch16_224": 16,
    "vit_so400m_patch16_224": 16,
    "vit_so400m_v2_patch16_224": 16,
    "vit_large_patch16_224": 16,
    "vit_base_patch16_224": 12,
    "vit_small_patch16_224": 6,
}
# Head count of the attn feature head's two blocks, fixed in RADIO's AttnFDHead.
ATTN_HEAD_NUM_HEADS = 16


def args_to_dict(args: Any) -> dict[str, Any]:
    """Return checkpoint args (argparse Namespace, namedtuple or dict) as a plain dict."""
    if isinstance(args, Mapping):
        return dict(args)
    if hasattr(args, "_asdict"):
        return dict(args._asdict())
    return dict(vars(args))


def resolve_num_heads(arch: str, model_kwargs: Mapping[str, Any]) -> int:
    """Return the attention head count for a timm architecture name.

    Order: `model_kwargs["num_heads"]`, the table of C-RADIO architectures, then timm's
    registry (the model is built on the meta device, so no weights are allocated).
    """
    if "num_heads" in model_kwargs:
        return int(model_kwargs["num_heads"])
    if arch in KNOWN_NUM_HEADS:
        return KNOWN_NUM_HEADS[arch]
    if timm.is_model(arch):
        with torch.device("meta"):
            model = timm.create_model(arch, pretrained=False)
        return int(model.blocks[0].attn.num_heads)
    raise ValueError(
        f"Cannot determine the attention head count of architecture {arch!r}: it is not a timm "
        f"model, not in {sorted(KNOWN_NUM_HEADS)}, and the checkpoint args have no "
        f"model_kwargs['num_heads']. Add num_heads to args.model_kwargs in the checkpoint."
    )


def head_config_from_state(
    head: Mapping[str, torch.Tensor], upsample_factor: int = 1
) -> HeadConfig:
    """Detect a head's version and sizes from its tensors (keys relative to the head).

    `mlp.fc1.weight` means attn, `final.2.weight` means v2 and `fc2.weight` means v1.
    """
    if "mlp.fc1.weight" in head:
        hidden, width = head["mlp.fc1.weight"].shape
        output = head["mlp.final.2.weight"].shape[0]
        return HeadConfig("attn", width, hidden, output, 0, upsample_factor, ATTN_HEAD_NUM_HEADS)
    if "final.2.weight" in head:
        hidden, width = head["fc1.weight"].shape
        output = head["final.2.weight"].shape[0]
        num_inner = _count_indices(head, r"^blocks\.(\d+)\.0\.weight$")
        return HeadConfig("v2", width, hidden, output, num_inner, upsample_factor)
    if "fc2.weight" in head:
        hidden, width = head["fc1.weight"].shape
        output = head["fc2.weight"].shape[0]
        linear_keys = {k: v for k, v in head.items() if k.startswith("inner.") and v.ndim == 2}
        num_inner = _count_indices(linear_keys, r"^inner\.(\d+)\.weight$", step=3)
        return HeadConfig("v1", width, hidden, output, num_inner, upsample_factor)
    raise ValueError(
        f"Invalid head layout: expected fc2.weight (v1), final.2.weight (v2) or mlp.fc1.weight "
        f"(attn), got keys {sorted(head)}."
    )


def config_from_hub_args(
    args: Any,
    state: Mapping[str, torch.Tensor],
    token_slots: Mapping[str, int] | None = None,
    summary_idxs: tuple[int, ...] | None = None,
) -> RadioConfig:
    """Build the config of a torch.hub or remote-code checkpoint.

    Args:
        args: the checkpoint's `args` (Namespace or dict).
        state: hub-layout tensors with parametrizations baked.
        token_slots: per-teacher summary token, overriding the args (remote-code `head_idx`).
        summary_idxs: stored backbone summary indices, overriding the torch.hub rule.
    """
    values = args_to_dict(args)
    arch = str(values.get("model", "vit_huge_patch16_224"))
    model_kwargs = dict(values.get("model_kwargs") or {})
    embedder = _require(state, "base_model.patch_generator.embedder.weight")
    embed_dim, patch_dim = embedder.shape
    patch_size = math.isqrt(patch_dim // 3)
    if 3 * patch_size * patch_size != patch_dim:
        raise ValueError(f"Patch embedder input width {patch_dim} is not 3 * p * p.")
    pos_entries = _require(state, "base_model.patch_generator.pos_embed").shape[1]
    pos_grid = math.isqrt(pos_entries)
    if pos_grid * pos_grid != pos_entries:
        raise ValueError(f"Position table with {pos_entries} entries is not a square grid.")
    cpe_max_size = pos_grid * patch_size
    if values.get("cpe_max_size") and math.ceil(values["cpe_max_size"] / patch_size) != pos_grid:
        logger.warning(
            "args.cpe_max_size=%s disagrees with the %dx%d position table. Using %d px.",
            values["cpe_max_size"],
            pos_grid,
            pos_grid,
            cpe_max_size,
        )

    depth = _count_indices(state, r"^base_model\.blocks\.(\d+)\.norm1\.weight$")
    mlp_hidden = _require(state, "base_model.blocks.0.mlp.fc1.weight").shape[0]
    num_prefix = _require(state, "base_model.patch_generator.cls_token.token").shape[0]

    teacher_dicts = list(values.get("teachers") or [])
    per_teacher = bool(values.get("cls_token_per_teacher", False))
    num_cls = len({t["name"] for t in teacher_dicts}) if per_teacher and teacher_dicts else 1
    if num_cls > num_prefix:
        raise ValueError(
            f"Checkpoint args imply {num_cls} cls tokens but the checkpoint stores only "
            f"{num_prefix} prefix tokens."
        )
    teachers = _teachers_from_args(values, teacher_dicts, state, per_teacher, token_slots or {})
    if summary_idxs is None:
        entries = [(t["name"], bool(t.get("use_summary", True))) for t in teacher_dicts]
        summary_idxs = default_summary_idxs(entries, per_teacher)

    return RadioConfig(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=resolve_num_heads(arch, model_kwargs),
        mlp_hidden_dim=mlp_hidden,
        teachers=teachers,
        patch_size=patch_size,
        cpe_max_size=cpe_max_size,
        num_cls_tokens=num_cls,
        num_registers=num_prefix - num_cls,
        summary_idxs=tuple(summary_idxs),
        qkv_bias="base_model.blocks.0.attn.qkv.bias" in state,
        layer_scale=any(
            re.search(r"^base_model\.blocks\.0\.ls1\.(gamma|grandma)$", k) for k in state
        ),
        final_norm="base_model.norm.weight" in state,
        feature_normalizer="_feature_normalizer.mean" in state,
        num_intermediates=_intermediate_count(state),
        rotation_per_layer=_rotation_per_layer(state),
        norm_mean=_conditioner_values(state, "norm_mean"),
        norm_std=_conditioner_values(state, "norm_std"),
        max_resolution=cpe_max_size,
        arch=arch,
        cls_token_per_teacher=per_teacher,
        backbone_dtype=_dtype_name(values.get("dtype")),
    )


def config_from_native(
    config_json: Mapping[str, Any], state: Mapping[str, torch.Tensor]
) -> RadioConfig:
    """Build the backbone-only config of a transformers `RadioModel` checkpoint.

    Args:
        config_json: the checkpoint's config.json.
        state: tensors already mapped to `RadioModel` keys.
    """
    if config_json.get("use_swiglu_ffn"):
        raise ValueError("Checkpoints with SwiGLU MLP blocks are not supported.")
    if config_json.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"Unsupported activation {config_json['hidden_act']!r}: expected 'gelu'.")
    eps = config_json.get("layer_norm_eps", 1e-6)
    if eps != 1e-6:
        raise ValueError(f"Unsupported layer_norm_eps {eps}: timm ViT blocks use 1e-6.")
    embed_dim, patch_dim = _require(state, "patch_generator.embedder.weight").shape
    patch_size = int(config_json.get("patch_size", math.isqrt(patch_dim // 3)))
    num_cls = int(config_json.get("num_cls_tokens", 1))
    num_prefix = _require(state, "patch_generator.prefix_tokens").shape[0]
    max_size = int(config_json.get("max_img_size", 2048))
    return RadioConfig(
        embed_dim=embed_dim,
        depth=_count_indices(state, r"^blocks\.(\d+)\.norm1\.weight$"),
        num_heads=int(config_json["num_attention_heads"]),
        mlp_hidden_dim=_require(state, "blocks.0.mlp.fc1.weight").shape[0],
        teachers=(),
        patch_size=patch_size,
        cpe_max_size=max_size,
        num_cls_tokens=num_cls,
        num_registers=num_prefix - num_cls,
        summary_idxs=tuple(config_json.get("summary_idxs") or (0,)),
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        layer_scale="blocks.0.ls1.gamma" in state,
        norm_mean=_conditioner_values(state, "norm_mean", prefix=""),
        norm_std=_conditioner_values(state, "norm_std", prefix=""),
        max_resolution=max_size,
        arch="transformers-radio",
        backbone_dtype=_dtype_name(config_json.get("dtype") or config_json.get("torch_dtype")),
    )


def _teachers_from_args(values, teacher_dicts, state, per_teacher, token_slots):
    global_summary = values.get("mlp_version")
    global_feature = values.get("spatial_mlp_version") or global_summary
    teachers: list[TeacherConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(teacher_dicts):
        name = entry["name"]
        if name in seen:
            continue  # NVlabs/RADIO always uses the first teacher of a name
        seen.add(name)
        feature_state = teacher_head_state(state, "_feature_projections", index, name)
        summary_state = teacher_head_state(state, "_heads", index, name)
        if not feature_state:
            logger.info(
                "Skipping teacher %r because the checkpoint has no feature head for it.", name
            )
            continue
        upsample = int(entry.get("fd_upsample_factor") or 1)
        feature_head = head_config_from_state(feature_state, upsample)
        summary_head = head_config_from_state(summary_state) if summary_state else None
        _warn_on_version_mismatch(
            name, "feature", entry.get("spatial_mlp_version", global_feature), feature_head
        )
        if summary_head:
            _warn_on_version_mismatch(
                name, "summary", entry.get("mlp_version", global_summary), summary_head
            )
        slot = token_slots.get(name, entry.get("token_slot", index) if per_teacher else 0)
        teachers.append(
            TeacherConfig(
                name=name,
                token_slot=int(slot),
                feature_head=feature_head,
                summary_head=summary_head,
                use_summary=bool(entry.get("use_summary", True)),
                kind=str(entry.get("type", "generic")),
            )
        )
    return tuple(teachers)


def _warn_on_version_mismatch(name: str, role: str, declared: str | None, head: HeadConfig) -> None:
    if declared and declared != head.version:
        logger.warning(
            "Teacher %r %s head: args declare version %s but the tensors have the %s layout. Using "
            "%s.",
            name,
            role,
            declared,
            head.version,
            head.version,
        )


def _require(state: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"Checkpoint is missing the required tensor {key!r}.")
    return state[key]


def _count_indices(state: Mapping[str, Any], pattern: str, step: int = 1) -> int:
    regex = re.compile(pattern)
    indices = {int(m.group(1)) for key in state if (m := regex.match(key))}
    count = len(indices)
    if indices != set(range(0, count * step, step)):
        raise ValueError(
            f"Checkpoint has non-contiguous indices {sorted(indices)} for {pattern!r}."
        )
    return count


def _intermediate_count(state: Mapping[str, torch.Tensor]) -> int:
    means = state.get("_intermediate_feature_normalizer.means")
    return 0 if means is None else int(means.shape[0])


def _rotation_per_layer(state: Mapping[str, torch.Tensor]) -> bool:
    rotation = state.get("_intermediate_feature_normalizer.rotation")
    return rotation is not None and rotation.ndim == 3


def _conditioner_values(state, name: str, prefix: str = "") -> tuple[float, float, float]:
    tensor = _require(state, f"{prefix}input_conditioner.{name}")
    return tuple(float(value) for value in tensor.float().reshape(-1))


def _dtype_name(dtype: Any) -> str:
    if dtype is None:
        return "float32"
    return str(dtype).split(".")[-1]
