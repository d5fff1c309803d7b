"""Write `RadioModel` weights in the official C-RADIO checkpoint layouts.

Used to make tiny test checkpoints and to export models: torch.hub `.pth.tar` (optionally with
spectral reparametrisation, DAMP keys, EMA weights and either LayerScale name), Hugging Face
remote-code folders and transformers-native `RadioModel` folders.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from .checkpoint_config import KNOWN_NUM_HEADS
from .config import RadioConfig
from .model import RadioModel, _mlp_ratio
from .spectral import SPECTRAL_ALPHA

LAYER_SCALE_NAMES = ("gamma", "grandma")
SPECTRAL_EPS = 1e-6


def build_model(model_or_config: RadioModel | RadioConfig, seed: int = 0) -> RadioModel:
    """Return the model itself, or a random one with every teacher head built from `seed`.

    The global RNG state is left unchanged.
    """
    if isinstance(model_or_config, RadioModel):
        return model_or_config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RadioModel(model_or_config, adaptor_names=model_or_config.teacher_names)


def config_to_args(config: RadioConfig, **overrides: Any) -> argparse.Namespace:
    """Return the checkpoint `args` Namespace that describes `config`."""
    model_kwargs: dict[str, Any] = {}
    if config.arch not in KNOWN_NUM_HEADS:
        model_kwargs["num_heads"] = config.num_heads
    teachers = [
        dict(
            name=teacher.name,
            type=teacher.kind,
            use_summary=teacher.use_summary,
            token_slot=teacher.token_slot,
            fd_upsample_factor=teacher.feature_head.upsample_factor,
            mlp_version=teacher.summary_head.version if teacher.summary_head else "v2",
            spatial_mlp_version=teacher.feature_head.version,
        )
        for teacher in config.teachers
    ]
    values = dict(
        model=config.arch,
        model_kwargs=model_kwargs,
        cpe_max_size=config.cpe_max_size,
        teachers=teachers,
        cls_token_per_teacher=config.cls_token_per_teacher,
        register_multiple=None,
        cpe_num_registers=config.num_registers,
        model_norm=config.final_norm,
        mlp_version="v2",
        spatial_mlp_version="v2",
        spectral_reparam=False,
        spectral_heads=False,
        damp=None,
        dtype=getattr(torch, config.backbone_dtype),
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def model_to_hub_state(
    model: RadioModel, layer_scale_name: str = "grandma", teacher_key: str = "index"
) -> dict[str, torch.Tensor]:
    """Return the model's tensors under torch.hub checkpoint keys.

    `teacher_key` chooses `_heads.<list index>` ("index") or `_heads.<name>` ("name").
    """
    if layer_scale_name not in LAYER_SCALE_NAMES:
        raise ValueError(
            f"Invalid layer_scale_name {layer_scale_name!r}: expected {LAYER_SCALE_NAMES}."
        )
    if teacher_key not in ("index", "name"):
        raise ValueError(f"Invalid teacher_key {teacher_key!r}: expected 'index' or 'name'.")
    names = model.config.teacher_names
    renames = {
        "patch_generator.embedder.weight": "base_model.patch_generator.embedder.weight",
        "patch_generator.pos_embed": "base_model.patch_generator.pos_embed",
        "patch_generator.prefix_tokens": "base_model.patch_generator.cls_token.token",
    }
    prefixes = {
        "blocks.": "base_model.blocks.",
        "norm.": "base_model.norm.",
        "feature_normalizer.": "_feature_normalizer.",
        "intermediate_feature_normalizer.": "_intermediate_feature_normalizer.",
    }
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().clone()
        if key in renames:
            state[renames[key]] = value
            continue
        if key.startswith("adaptors."):
            _, name, part, rest = key.split(".", 3)
            label = str(names.index(name)) if teacher_key == "index" else name
            kind = "_heads" if part == "summary_head" else "_feature_projections"
            state[f"{kind}.{label}.{rest}"] = value
            continue
        for old, new in prefixes.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        if key.startswith("base_model.blocks.") and key.endswith((".ls1.gamma", ".ls2.gamma")):
            key = key[: -len("gamma")] + layer_scale_name
        state[key] = value
    return state


def write_torchhub_checkpoint(
    model_or_config: RadioModel | RadioConfig,
    path: str | Path,
    *,
    seed: int = 0,
    half: bool = True,
    spectral: bool = False,
    damp: bool = False,
    ema: bool = False,
    layer_scale_name: str = "grandma",
    teacher_key: str = "index",
) -> Path:
    """Write a torch.hub checkpoint: `{"args": Namespace, "state_dict": ..., "arch", "epoch"}`.

    Args:
        model_or_config: the model to save, or a config for a random model made from `seed`.
        half: store floating-point weights as fp16, as the official `_half` files do. Spectral
            buffers (`scale`, `_u`, `_v`) stay fp32.
        spectral: store backbone Linear weights (all but the patch embedder) with spectral
            reparametrisation keys whose baked value reproduces the model's weight. The fused
            qkv weight gets one entry per q, k and v chunk.
        damp: store every backbone Linear weight, the patch embedder included, as
            `parametrizations.weight.original`, as a checkpoint saved with DAMP does.
        ema: write the weights as `state_dict_ema`, and a perturbed copy as `state_dict`, so a
            loader that ignores the EMA weights gives different outputs.
        layer_scale_name: "gamma" or "grandma" for LayerScale keys (when the config has them).
        teacher_key: "index" or "name" for head keys.

    Returns:
        The written path.
    """
    model = build_model(model_or_config, seed)
    state = model_to_hub_state(model, layer_scale_name, teacher_key)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    if spectral or damp:
        state = _parametrize_backbone(state, model, spectral=spectral)

    args = config_to_args(model.config, spectral_reparam=spectral, damp=1e-3 if damp else None)
    checkpoint: dict[str, Any] = {"args": args, "arch": model.config.arch, "epoch": 0}
    if ema:
        checkpoint["state_dict_ema"] = state
        checkpoint["state_dict"] = {
            k: (v + 1.0 if v.is_floating_point() else v) for k, v in state.items()
        }
    else:
        checkpoint["state_dict"] = state
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def write_hf_checkpoint(
    model_or_config: RadioModel | RadioConfig,
    folder: str | Path,
    *,
    layout: str = "remote",
    seed: int = 0,
) -> Path:
    """Write config.json and model.safetensors in a Hugging Face layout.

    `layout="remote"` writes RADIO's remote-code layout with every teacher head the model has.
    `layout="native"` writes transformers' `RadioModel` layout, which contains only the backbone
    and cannot express a final norm or a feature normalizer.
    """
    model = build_model(model_or_config, seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "remote":
        config_json, state = _remote_layout(model)
    elif layout == "native":
        config_json, state = _native_layout(model)
    else:
        raise ValueError(f"Invalid layout {layout!r}: expected 'remote' or 'native'.")
    (folder / "config.json").write_text(json.dumps(config_json, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def _parametrize_backbone(state: dict, model: RadioModel, spectral: bool) -> dict:
    linear_names = [
        f"base_model.{name}"
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not name.startswith("adaptors.")
    ]
    result = dict(state)
    for name in linear_names:
        weight = result.pop(f"{name}.weight")
        result[f"{name}.parametrizations.weight.original"] = weight
        if spectral and "patch_generator" not in name:
            result.update(_spectral_entries(name, weight))
    return result


def _spectral_entries(name: str, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    prefix = f"{name}.parametrizations.weight.0."
    if not name.endswith("qkv"):
        return {prefix + k: v for k, v in _spectral_buffers(weight).items()}
    entries = {}
    for index, chunk in enumerate(weight.chunk(3, dim=0)):
        for key, value in _spectral_buffers(chunk).items():
            entries[f"{prefix}parts.{index}.{key}"] = value
    return entries


def _spectral_buffers(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    # Pick u, v from a fixed generator and the scale s with softplus(s) + alpha equal to sigma
    # after one power-iteration step, so the baked weight W * (softplus(s) + alpha) / sigma is W.
    generator = torch.Generator().manual_seed(weight.shape[0] * 7919 + weight.shape[1])
    matrix = weight.float()
    u = F.normalize(torch.randn(matrix.shape[0], generator=generator), dim=0)
    v = F.normalize(torch.randn(matrix.shape[1], generator=generator), dim=0)
    u_step = F.normalize(matrix @ v, dim=0, eps=SPECTRAL_EPS)
    v_step = F.normalize(matrix.T @ u_step, dim=0, eps=SPECTRAL_EPS)
    sigma = float(torch.dot(u_step, matrix @ v_step)) + SPECTRAL_EPS
    if sigma <= SPECTRAL_ALPHA:
        raise ValueError(
            f"Spectral norm {sigma} is too small to encode with alpha {SPECTRAL_ALPHA}."
        )
    scale = math.log(math.expm1(sigma - SPECTRAL_ALPHA))
    return {
        "scale": torch.tensor([[scale]], dtype=torch.float32),
        "_u": u,
        "_v": v,
        "_sn_version": torch.tensor(2),
    }


def _remote_layout(model: RadioModel) -> tuple[dict, dict]:
    config = model.config
    hub_state = model_to_hub_state(model, "grandma", teacher_key="name")
    state = {}
    for key, value in hub_state.items():
        if key.startswith("base_model."):
            key = "radio_model.model." + key[len("base_model.") :]
        elif key.startswith("input_conditioner."):
            key = "radio_model." + key
        elif key.startswith("_feature_normalizer."):
            key = "radio_model.feature_normalizer." + key[len("_feature_normalizer.") :]
        elif key.startswith("_intermediate_feature_normalizer."):
            key = "radio_model.inter_feature_normalizer." + key.split(".", 1)[1]
        elif key.startswith(("_heads.", "_feature_projections.")):
            kind, name, rest = key.split(".", 2)
            head = "head_mlp" if kind == "_heads" else "feat_mlp"
            key = f"radio_model.adaptors.{name}.{head}.{rest}"
        state[key] = value
    state["radio_model.summary_idxs"] = torch.tensor(config.summary_idxs, dtype=torch.int64)

    args = vars(config_to_args(config))
    args["dtype"] = config.backbone_dtype
    adaptor_configs = {
        name: {"head_idx": config.teacher(name).token_slot} for name in model.adaptor_names
    }
    config_json = {
        "architectures": ["RADIOModel"],
        "args": args,
        "version": config.arch,
        "patch_size": config.patch_size,
        "max_resolution": config.max_resolution,
        "preferred_resolution": [config.preferred_resolution] * 2,
        "adaptor_names": None,
        "adaptor_configs": adaptor_configs,
        "vitdet_window_size": None,
        "feature_normalizer_config": {"embed_dim": config.embed_dim}
        if config.feature_normalizer
        else None,
        "inter_feature_normalizer_config": None,
    }
    return config_json, state


def _native_layout(model: RadioModel) -> tuple[dict, dict]:
    # transformers 5.x saves RadioModel under RADIO's `radio_model.*` backbone keys (it renames
    # them on load), with LayerScale as `layer_scale{1,2}.lambda1`.
    config = model.config
    if config.final_norm or config.feature_normalizer or config.num_intermediates:
        raise ValueError(
            "transformers' RadioModel layout cannot store a final norm or feature normalizers."
        )
    _, remote_state = _remote_layout(model)
    state = {}
    for key, value in remote_state.items():
        if key.startswith("radio_model.adaptors."):
            continue
        for index in ("1", "2"):
            key = key.replace(f".ls{index}.grandma", f".layer_scale{index}.lambda1")
        state[key] = value
    config_json = {
        "architectures": ["RadioModel"],
        "model_type": "radio",
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.num_heads,
        "mlp_ratio": _mlp_ratio(config.embed_dim, config.mlp_hidden_dim),
        "qkv_bias": config.qkv_bias,
        "layer_norm_eps": 1e-6,
        "patch_size": config.patch_size,
        "max_img_size": config.cpe_max_size,
        "num_cls_tokens": config.num_cls_tokens,
        "num_registers": config.num_registers,
        "summary_idxs": list(config.summary_idxs),
        "norm_mean": list(config.norm_mean),
        "norm_std": list(config.norm_std),
    }
    return config_json, state
