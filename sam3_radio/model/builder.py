"""Build SAM 3 image models with a chosen trunk: `pe`, `radio-h` or `radio-so400m`.

Everything except the trunk is built from the `sam3` package's classes with
the sizes of `sam3.model_builder` and filled from the SAM 3 checkpoint. With a
RADIO backbone the trunk is a `RadioTrunk` filled from a C-RADIOv4 checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from sam3.model.necks import Sam3DualViTDetNeck
from sam3.model.sam1_task_predictor import SAM3InteractiveImagePredictor
from sam3.model.sam3_image import Sam3Image
from sam3.model.vl_combiner import SAM3VLBackbone
from torch import nn
from torch.overrides import TorchFunctionMode

from sam3_radio.model import sam3_parts
from sam3_radio.model.device import redirect_cuda, resolve_device
from sam3_radio.model.sam3_parts import SAM3_FULL, SAM3_TINY, TOKEN_GRID, Sam3Spec
from sam3_radio.model.trunk import RadioTrunk
from sam3_radio.model.weights import (
    TRUNK_PREFIX,
    WeightsUnavailableError,
    bpe_vocabulary_path,
    image_model_state,
    read_sam3_checkpoint,
    resolve_sam3_checkpoint,
)

logger = logging.getLogger(__name__)

RADIO_INPUT_SIZE = 1152


@dataclass(frozen=True)
class BackbonePreset:
    """One `backbone` choice: the SAM 3 sizes and, for RADIO, the encoder preset."""

    name: str
    sam3_spec: Sam3Spec
    radio_preset: str | None = None
    radio_repo_id: str | None = None

    @property
    def is_radio(self) -> bool:
        return self.radio_preset is not None


BACKBONES = {
    preset.name: preset
    for preset in (
        BackbonePreset("pe", SAM3_FULL),
        BackbonePreset("radio-h", SAM3_FULL, "c-radio_v4-h", "nvidia/C-RADIOv4-H"),
        BackbonePreset(
            "radio-so400m", SAM3_FULL, "c-radio_v4-so400m", "nvidia/C-RADIOv4-SO400M"
        ),
        BackbonePreset("tiny-pe", SAM3_TINY),
        BackbonePreset("tiny-radio", SAM3_TINY, "tiny"),
    )
}


@dataclass(frozen=True)
class BuildInfo:
    """Provenance of a built model, written into every output's metadata."""

    backbone: str
    window_size: int | None
    sam3_weights: str
    radio_weights: str | None
    random_weights: bool


def get_backbone_preset(name: str) -> BackbonePreset:
    """Return the preset called `name`, or raise listing the valid names."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: use one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def valid_window_sizes(grid: int = TOKEN_GRID) -> list[int]:
    """Return the ViTDet window sizes that tile a `grid` x `grid` token grid."""
    return [size for size in range(1, grid + 1) if grid % size == 0]


def check_window_size(preset: BackbonePreset, window_size: int | None) -> None:
    """Raise if `window_size` does not apply to `preset` or does not divide the grid."""
    if window_size is None:
        return
    if not preset.is_radio:
        raise ValueError(
            f"window_size={window_size} applies to RADIO backbones only; "
            f"backbone {preset.name!r} has fixed windows"
        )
    if window_size < 1 or TOKEN_GRID % window_size != 0:
        raise ValueError(
            f"window_size={window_size} does not divide the {TOKEN_GRID}x{TOKEN_GRID} "
            f"token grid: use one of {valid_window_sizes()}"
        )


class _SeededEmpty(TorchFunctionMode):
    """Fill `torch.empty` tensors from the global generator while a model is built.

    `sam3` leaves some parameters as `torch.empty` (the text encoder's
    `positional_embedding` and `text_projection`) because it expects a
    checkpoint to fill them. Built without one they would hold whatever was in
    memory, often NaN.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func is torch.empty and result.is_floating_point():
            with torch.no_grad():
                result.normal_(0.0, 0.02)
        return result


def _build_radio_trunk(
    preset: BackbonePreset,
    window_size: int | None,
    radio_weights: str | Path | None,
    *,
    revision: str | None,
    token: str | None,
    cache_dir: str | None,
) -> RadioTrunk:
    from sam3_radio.radio import (
        RADIO_PRESETS,
        CheckpointKeyError,
        CheckpointNotFoundError,
        RadioModel,
        UntrustedCheckpointError,
        load_radio,
    )

    if radio_weights is None:
        radio = RadioModel(
            RADIO_PRESETS[preset.radio_preset],
            adaptor_names=("sam3",),
            window_size=window_size,
        )
    else:
        source = str(radio_weights)
        if source == "hf":
            if preset.radio_repo_id is None:
                raise WeightsUnavailableError(
                    f"backbone {preset.name!r} has no published weights: "
                    "pass a local RADIO checkpoint path or use weights='random'"
                )
            source = preset.radio_repo_id
        try:
            radio = load_radio(
                source,
                adaptor_names=("sam3",),
                window_size=window_size,
                revision=revision,
                token=token,
                cache_dir=cache_dir,
            )
        except (CheckpointNotFoundError, CheckpointKeyError, UntrustedCheckpointError) as error:
            raise WeightsUnavailableError(f"C-RADIO weights unavailable: {error}") from error
    grid = RADIO_INPUT_SIZE // radio.patch_size
    if grid != TOKEN_GRID:
        raise ValueError(
            f"RADIO patch size {radio.patch_size} gives a {grid}x{grid} grid at "
            f"{RADIO_INPUT_SIZE} px, but SAM 3 needs {TOKEN_GRID}x{TOKEN_GRID}"
        )
    return RadioTrunk(radio, input_size=RADIO_INPUT_SIZE)


def _build_image_model(
    spec: Sam3Spec, trunk: nn.Module, interactive: bool, compile_mode: str | None
) -> Sam3Image:
    expected = spec.trunk.embed_dim
    if trunk.channel_list[-1] != expected:
        raise ValueError(
            f"the trunk outputs {trunk.channel_list[-1]} channels but the SAM 3 neck "
            f"needs {expected}: the RADIO checkpoint's sam3 head does not match"
        )
    neck = Sam3DualViTDetNeck(
        trunk=trunk,
        position_encoding=sam3_parts._sine_position_encoding(
            precompute_resolution=sam3_parts.IMAGE_SIZE
        ),
        d_model=sam3_parts.D_MODEL,
        scale_factors=[4.0, 2.0, 1.0, 0.5],
        add_sam2_neck=interactive,
    )
    text_encoder = sam3_parts.build_text_encoder(spec, str(bpe_vocabulary_path()))
    inst_predictor = None
    if interactive:
        tracker = sam3_parts.build_tracker(spec, apply_temporal_disambiguation=False)
        inst_predictor = SAM3InteractiveImagePredictor(tracker)
    return Sam3Image(
        backbone=SAM3VLBackbone(visual=neck, text=text_encoder, scalp=1),
        transformer=sam3_parts.build_transformer(spec),
        input_geometry_encoder=sam3_parts.build_geometry_encoder(spec),
        segmentation_head=sam3_parts.build_segmentation_head(compile_mode),
        num_feature_levels=1,
        o2m_mask_predict=True,
        dot_prod_scoring=sam3_parts.build_dot_product_scoring(spec),
        use_instance_query=False,
        multimask_output=True,
        inst_interactive_predictor=inst_predictor,
        matcher=None,
    )


def load_sam3_weights(model: Sam3Image, checkpoint_path: Path, skip_trunk: bool) -> None:
    """Fill `model` from a SAM 3 checkpoint, raising on any missing key.

    With `skip_trunk`, the checkpoint's Perception Encoder keys are ignored and
    the trunk keeps the weights it has.
    """
    interactive = model.inst_interactive_predictor is not None
    state = image_model_state(read_sam3_checkpoint(checkpoint_path), interactive)
    if skip_trunk:
        state = {k: v for k, v in state.items() if not k.startswith(TRUNK_PREFIX)}
    if not state:
        raise WeightsUnavailableError(
            f"{checkpoint_path} has no 'detector.*' keys: it is not a SAM 3 checkpoint"
        )
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise WeightsUnavailableError(
            f"{checkpoint_path} does not match the SAM 3 architecture: {error}"
        ) from error
    if skip_trunk:
        missing = [key for key in missing if not key.startswith(TRUNK_PREFIX)]
    if missing:
        raise WeightsUnavailableError(
            f"{checkpoint_path} lacks {len(missing)} SAM 3 parameters, e.g. "
            f"{missing[:5]}: pass a complete sam3.pt"
        )
    if unexpected:
        logger.warning(
            "ignored %d checkpoint keys that the image model does not use, e.g. %s",
            len(unexpected),
            unexpected[:3],
        )


def _check_finite(model: nn.Module) -> None:
    """Raise if a parameter is not finite or a buffer contains NaN.

    Buffers may hold -inf on purpose (the text encoder's causal attention mask).
    """
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise RuntimeError(f"parameter {name} is not finite after random initialisation")
    for name, buffer in model.named_buffers():
        if buffer.is_floating_point() and torch.isnan(buffer).any():
            raise RuntimeError(f"buffer {name} contains NaN after random initialisation")


def build_sam3_image_model(
    backbone: str = "pe",
    *,
    weights: str | Path = "hf",
    radio_weights: str | Path = "hf",
    window_size: int | None = None,
    device: str | torch.device | None = None,
    interactive: bool = True,
    seed: int = 0,
    compile: bool = False,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | None = None,
) -> Sam3Image:
    """Build a SAM 3 image model with the chosen trunk, in eval mode on `device`.

    Args:
        backbone: `pe`, `radio-h`, `radio-so400m`, or the test presets
            `tiny-pe` and `tiny-radio` (every SAM 3 part at small width).
        weights: SAM 3 weights: a local sam3.pt path, 'hf' to download the
            gated `facebook/sam3`, or 'random' for seeded random weights.
            Random weights suit smoke runs only, because their outputs are
            meaningless.
        radio_weights: C-RADIOv4 weights for RADIO backbones: a local `.pth.tar`
            or Hugging Face folder, or 'hf' (download `nvidia/C-RADIOv4-*`).
            Ignored when `weights` is 'random'.
        window_size: ViTDet window size in tokens for RADIO trunks; it must
            divide the 72x72 grid. None means global attention in every block.
        device: 'cpu', 'cuda', 'cuda:N' or None for CUDA when available.
        interactive: also build the SAM 1-style interactive predictor (one mask
            per box prompt) and the tracker neck it reads.
        seed: seed of random weights. The non-trunk parts draw from `seed` and
            the trunk from `seed + 1`, so random builds with different
            backbones share their non-trunk weights.
        compile: compile the trunk (PE or RADIO) and `sam3`'s pixel decoder with
            `torch.compile`. The first call then takes minutes longer.

    The returned model carries a `BuildInfo` as `model.build_info`.
    """
    preset = get_backbone_preset(backbone)
    check_window_size(preset, window_size)
    device = resolve_device(device)
    random_weights = str(weights) == "random"
    compile_mode = "default" if compile else None
    checkpoint_path = None
    if not random_weights:
        checkpoint_path = resolve_sam3_checkpoint(
            weights, revision=revision, token=token, cache_dir=cache_dir
        )
    seeded = _SeededEmpty() if random_weights else contextlib.nullcontext()

    with redirect_cuda(device), seeded, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        if preset.is_radio:
            trunk = _build_radio_trunk(
                preset,
                window_size,
                None if random_weights else radio_weights,
                revision=revision,
                token=token,
                cache_dir=cache_dir,
            )
        else:
            trunk = sam3_parts.build_pe_trunk(preset.sam3_spec, compile_mode)
        torch.manual_seed(seed)
        model = _build_image_model(preset.sam3_spec, trunk, interactive, compile_mode)
    if compile and preset.is_radio:
        # In place, so parameter names stay those of the uncompiled model.
        trunk.radio.compile()

    if checkpoint_path is not None:
        load_sam3_weights(model, checkpoint_path, skip_trunk=preset.is_radio)
    else:
        _check_finite(model)
        logger.warning(
            "built %s with RANDOM weights (seed %d): its outputs are meaningless",
            backbone,
            seed,
        )
    model.build_info = BuildInfo(
        backbone=backbone,
        window_size=window_size,
        sam3_weights="random" if random_weights else str(checkpoint_path),
        radio_weights=(
            None
            if not preset.is_radio
            else "random" if random_weights else str(radio_weights)
        ),
        random_weights=random_weights,
    )
    model.to(device)
    model.eval()
    return model


def count_parameters(module: nn.Module) -> int:
    """Return the number of parameters of `module`."""
    return sum(math.prod(p.shape) for p in module.parameters())
