"""Build SAM 3 video models (detector plus tracker) with a chosen trunk.

The video model is `sam3`'s `Sam3VideoInferenceWithInstanceInteractivity`: a
`Sam3ImageOnVideoMultiGPU` detector and a `Sam3TrackerPredictor` tracker with
its memory. One trunk call per frame feeds both necks of
`Sam3DualViTDetNeck(add_sam2_neck=True)`: the detector neck and the tracker
neck. Every part except the trunk has the classes and settings of
`sam3.model_builder.build_sam3_video_model` (sam3 0.1.4) and is filled from the
SAM 3 checkpoint, whose keys (`detector.*`, `tracker.*`) are the video model's
own keys.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from sam3.model.necks import Sam3DualViTDetNeck
from sam3.model.sam3_image import Sam3ImageOnVideoMultiGPU
from sam3.model.sam3_video_inference import Sam3VideoInferenceWithInstanceInteractivity
from sam3.model.vl_combiner import SAM3VLBackbone
from torch import nn

from sam3_radio.model import sam3_parts
from sam3_radio.model.builder import (
    BuildInfo,
    _build_radio_trunk,
    _check_finite,
    _SeededEmpty,
    check_window_size,
    get_backbone_preset,
)
from sam3_radio.model.device import redirect_cuda, resolve_device
from sam3_radio.model.sam3_parts import Sam3Spec
from sam3_radio.model.weights import (
    WeightsUnavailableError,
    bpe_vocabulary_path,
    read_sam3_checkpoint,
    resolve_sam3_checkpoint,
)

logger = logging.getLogger(__name__)

# Every video-model key that the trunk owns starts with this prefix.
VIDEO_TRUNK_PREFIX = "detector.backbone.vision_backbone.trunk."

# Detection, association and hotstart settings of `build_sam3_video_model`
# (sam3 0.1.4). Temporal disambiguation adds the hotstart delay (outputs lag
# by that many frames), the removal of unmatched or duplicate masklets within
# it, and periodic reconditioning of masklets on high-confidence detections.
_COMMON_VIDEO_SETTINGS = {
    "score_threshold_detection": 0.5,
    "assoc_iou_thresh": 0.1,
    "det_nms_thresh": 0.1,
    "new_det_thresh": 0.7,
    "suppress_unmatched_only_within_hotstart": True,
    "min_trk_keep_alive": -1,
    "max_trk_keep_alive": 30,
    "init_trk_keep_alive": 30,
    "suppress_overlapping_based_on_recent_occlusion_threshold": 0.7,
    "suppress_det_close_to_boundary": False,
    "fill_hole_area": 16,
    "masklet_confirmation_enable": False,
    "decrease_trk_keep_alive_for_empty_masklets": False,
    "image_size": sam3_parts.IMAGE_SIZE,
    "image_mean": (0.5, 0.5, 0.5),
    "image_std": (0.5, 0.5, 0.5),
}
TEMPORAL_DISAMBIGUATION_SETTINGS = {
    True: {
        "hotstart_delay": 15,
        "hotstart_unmatch_thresh": 8,
        "hotstart_dup_thresh": 8,
        "recondition_every_nth_frame": 16,
    },
    False: {
        "hotstart_delay": 0,
        "hotstart_unmatch_thresh": 0,
        "hotstart_dup_thresh": 0,
        "recondition_every_nth_frame": 0,
    },
}


def video_inference_settings(apply_temporal_disambiguation: bool) -> dict:
    """Return the keyword arguments of the video model besides its detector and tracker."""
    return {
        **_COMMON_VIDEO_SETTINGS,
        **TEMPORAL_DISAMBIGUATION_SETTINGS[apply_temporal_disambiguation],
    }


def _build_video_model(
    spec: Sam3Spec,
    trunk: nn.Module,
    apply_temporal_disambiguation: bool,
    compile_mode: str | None,
) -> Sam3VideoInferenceWithInstanceInteractivity:
    expected = spec.trunk.embed_dim
    if trunk.channel_list[-1] != expected:
        raise ValueError(
            f"the trunk outputs {trunk.channel_list[-1]} channels but the SAM 3 neck "
            f"needs {expected}: the RADIO checkpoint's sam3 head does not match"
        )
    tracker = sam3_parts.build_tracker(spec, apply_temporal_disambiguation)
    neck = Sam3DualViTDetNeck(
        trunk=trunk,
        position_encoding=sam3_parts._sine_position_encoding(
            precompute_resolution=sam3_parts.IMAGE_SIZE
        ),
        d_model=sam3_parts.D_MODEL,
        scale_factors=[4.0, 2.0, 1.0, 0.5],
        add_sam2_neck=True,
    )
    text_encoder = sam3_parts.build_text_encoder(spec, str(bpe_vocabulary_path()))
    detector = Sam3ImageOnVideoMultiGPU(
        num_feature_levels=1,
        backbone=SAM3VLBackbone(visual=neck, text=text_encoder, scalp=1),
        transformer=sam3_parts.build_transformer(spec),
        segmentation_head=sam3_parts.build_segmentation_head(compile_mode),
        semantic_segmentation_head=None,
        input_geometry_encoder=sam3_parts.build_geometry_encoder(spec),
        use_early_fusion=True,
        use_dot_prod_scoring=True,
        dot_prod_scoring=sam3_parts.build_dot_product_scoring(spec),
        supervise_joint_box_scores=True,
    )
    return Sam3VideoInferenceWithInstanceInteractivity(
        detector=detector,
        tracker=tracker,
        compile_model=compile_mode is not None,
        **video_inference_settings(apply_temporal_disambiguation),
    )


def load_sam3_video_weights(
    model: Sam3VideoInferenceWithInstanceInteractivity, checkpoint_path: Path, skip_trunk: bool
) -> None:
    """Fill `model` from a SAM 3 checkpoint, raising on any missing or unexpected key.

    With `skip_trunk`, the checkpoint's Perception Encoder keys are ignored and
    the trunk keeps the weights it has.
    """
    state = read_sam3_checkpoint(checkpoint_path)
    if skip_trunk:
        state = {k: v for k, v in state.items() if not k.startswith(VIDEO_TRUNK_PREFIX)}
    if not any(key.startswith("tracker.") for key in state):
        raise WeightsUnavailableError(
            f"{checkpoint_path} has no 'tracker.*' keys: the video model needs the full "
            "SAM 3 checkpoint (detector and tracker), such as sam3.pt from facebook/sam3"
        )
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise WeightsUnavailableError(
            f"{checkpoint_path} does not match the SAM 3 video architecture: {error}"
        ) from error
    if skip_trunk:
        missing = [key for key in missing if not key.startswith(VIDEO_TRUNK_PREFIX)]
    if missing:
        raise WeightsUnavailableError(
            f"{checkpoint_path} lacks {len(missing)} SAM 3 video parameters, e.g. "
            f"{missing[:5]}: pass a complete sam3.pt"
        )
    if unexpected:
        raise WeightsUnavailableError(
            f"{checkpoint_path} has {len(unexpected)} keys that the SAM 3 video model "
            f"does not have, e.g. {unexpected[:5]}: it is not a SAM 3 checkpoint of this size"
        )


def build_sam3_video_model(
    backbone: str = "pe",
    *,
    weights: str | Path = "hf",
    radio_weights: str | Path = "hf",
    window_size: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    apply_temporal_disambiguation: bool = True,
    compile: bool = False,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | None = None,
) -> Sam3VideoInferenceWithInstanceInteractivity:
    """Build a SAM 3 video model with the chosen trunk, in eval mode on `device`.

    Args:
        backbone: `pe`, `radio-h`, `radio-so400m`, or the test presets
            `tiny-pe` and `tiny-radio`.
        weights: a local sam3.pt path, 'hf' to download the gated
            `facebook/sam3`, or 'random' for seeded random weights (outputs are
            meaningless).
        radio_weights: C-RADIOv4 weights for RADIO backbones: a local file or
            folder, or 'hf'. Ignored when `weights` is 'random'.
        window_size: ViTDet window size in tokens for RADIO trunks; it must
            divide the 72x72 grid. None means global attention in every block.
        device: 'cpu', 'cuda', 'cuda:N' or None for CUDA when available.
        seed: seed of random weights. The non-trunk parts draw from `seed` and
            the trunk from `seed + 1`, as in `build_sam3_image_model`.
        apply_temporal_disambiguation: SAM 3's hotstart and reconditioning
            heuristics (see `TEMPORAL_DISAMBIGUATION_SETTINGS`) and the
            tracker's memory frame selection.
        compile: compile the trunk and heads with `torch.compile` (CUDA only).

    The model runs in one process: its rank is 0 and its world size 1 regardless
    of the RANK and WORLD_SIZE environment variables. It carries a
    `BuildInfo` as `model.build_info`.
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
        model = _build_video_model(
            preset.sam3_spec, trunk, apply_temporal_disambiguation, compile_mode
        )

    if checkpoint_path is not None:
        load_sam3_video_weights(model, checkpoint_path, skip_trunk=preset.is_radio)
    else:
        _check_finite(model)
        logger.warning(
            "built %s video model with RANDOM weights (seed %d): its outputs are meaningless",
            backbone,
            seed,
        )
    model.rank = model.detector.rank = 0
    model.world_size = model.detector.world_size = 1
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


def sam3_checkpoint_from_video_model(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a video model's weights in the layout of the official sam3.pt.

    The video model's own keys (`detector.*`, `tracker.*`) are the checkpoint keys.
    """
    return dict(model.state_dict())
