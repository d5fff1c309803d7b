import pytest
import torch
from sam3.model_builder import build_sam3_video_model as upstream_build_video

from sam3_radio.model import sam3_parts
from sam3_radio.model.device import redirect_cuda
from sam3_radio.model.sam3_parts import SAM3_FULL
from sam3_radio.model.video_builder import (
    VIDEO_TRUNK_PREFIX,
    _build_video_model,
    build_sam3_video_model,
    sam3_checkpoint_from_video_model,
    video_inference_settings,
)
from sam3_radio.model.weights import WeightsUnavailableError, bpe_vocabulary_path

SETTINGS = [
    "score_threshold_detection",
    "det_nms_thresh",
    "assoc_iou_thresh",
    "new_det_thresh",
    "hotstart_delay",
    "hotstart_unmatch_thresh",
    "hotstart_dup_thresh",
    "recondition_every_nth_frame",
    "fill_hole_area",
    "max_trk_keep_alive",
    "image_size",
]
TRACKER_SETTINGS = [
    "num_maskmem",
    "max_cond_frames_in_attn",
    "max_obj_ptrs_in_encoder",
    "use_memory_selection",
    "trim_past_non_cond_mem_for_eval",
    "image_size",
    "low_res_mask_size",
]


def _non_trunk_state(model):
    return {k: v for k, v in model.state_dict().items() if not k.startswith(VIDEO_TRUNK_PREFIX)}


@pytest.fixture(scope="module")
def tiny_video_checkpoint(tmp_path_factory):
    model = build_sam3_video_model("tiny-pe", weights="random", device="cpu", seed=4)
    path = tmp_path_factory.mktemp("sam3-video") / "sam3.pt"
    torch.save({"model": sam3_checkpoint_from_video_model(model)}, path)
    return path


def _summary(model):
    return {
        "shapes": {k: tuple(v.shape) for k, v in model.state_dict().items()},
        "types": {name: type(module) for name, module in model.named_modules()},
        "settings": {name: getattr(model, name) for name in SETTINGS},
        "tracker": {name: getattr(model.tracker, name) for name in TRACKER_SETTINGS},
    }


@pytest.fixture(scope="module")
def full_size_summaries():
    """Shapes, classes and settings of our full-size PE video model and of `sam3`'s.

    `sam3`'s ViT calls `.item()` while it is built, so the meta device cannot
    be used: both models are built on the CPU, one after the other (about
    3.5 GB each).
    """
    with redirect_cuda("cpu"), torch.random.fork_rng(devices=[]):
        trunk = sam3_parts.build_pe_trunk(SAM3_FULL)
        ours = _summary(_build_video_model(SAM3_FULL, trunk, True, None))
        del trunk
        upstream = _summary(
            upstream_build_video(bpe_path=str(bpe_vocabulary_path()), load_from_HF=False, device="cpu")
        )
    return ours, upstream


def test_checkpoint_keys_are_detector_and_tracker(tiny_video_checkpoint):
    keys = torch.load(tiny_video_checkpoint, weights_only=True)["model"].keys()
    assert {key.split(".")[0] for key in keys} == {"detector", "tracker"}


def test_video_model_has_tracker_neck():
    model = build_sam3_video_model("tiny-pe", weights="random", device="cpu")
    neck = model.detector.backbone.vision_backbone
    assert neck.sam2_convs is not None
    assert model.tracker.backbone is None


def test_checkpoint_builds_share_non_trunk_parameters(tiny_video_checkpoint, tiny_radio_checkpoint):
    pe = build_sam3_video_model("tiny-pe", weights=tiny_video_checkpoint, device="cpu", seed=9)
    radio = build_sam3_video_model(
        "tiny-radio",
        weights=tiny_video_checkpoint,
        radio_weights=tiny_radio_checkpoint,
        device="cpu",
        seed=10,
    )
    pe_state, radio_state = _non_trunk_state(pe), _non_trunk_state(radio)
    assert sorted(pe_state) == sorted(radio_state)
    differing = [k for k in pe_state if not torch.equal(pe_state[k], radio_state[k])]
    assert differing == []
    assert radio.build_info.random_weights is False


def test_checkpoint_without_tracker_rejected(tiny_video_checkpoint, tmp_path):
    state = torch.load(tiny_video_checkpoint, weights_only=True)["model"]
    detector_only = {k: v for k, v in state.items() if k.startswith("detector.")}
    path = tmp_path / "detector_only.pt"
    torch.save({"model": detector_only}, path)
    with pytest.raises(WeightsUnavailableError, match="no 'tracker.\\*' keys"):
        build_sam3_video_model("tiny-pe", weights=path, device="cpu")


def test_image_model_checkpoint_loads_into_video_model(tiny_sam3_checkpoint):
    # The interactive image model contains the tracker too, so its checkpoint is complete.
    model = build_sam3_video_model("tiny-pe", weights=tiny_sam3_checkpoint, device="cpu")
    assert model.build_info.random_weights is False


@pytest.mark.slow
def test_full_size_state_dict_matches_upstream(full_size_summaries):
    ours, upstream = full_size_summaries
    assert sorted(ours["shapes"]) == sorted(upstream["shapes"])
    assert ours["shapes"] == upstream["shapes"]


@pytest.mark.slow
def test_full_size_classes_match_upstream(full_size_summaries):
    ours, upstream = full_size_summaries
    assert ours["types"] == upstream["types"]


@pytest.mark.slow
def test_full_size_settings_match_upstream(full_size_summaries):
    ours, upstream = full_size_summaries
    for name in SETTINGS:
        assert ours["settings"][name] == upstream["settings"][name], name
    for name in TRACKER_SETTINGS:
        assert ours["tracker"][name] == upstream["tracker"][name], name


def test_settings_without_temporal_disambiguation():
    settings = video_inference_settings(False)
    assert settings["hotstart_delay"] == 0
    assert settings["recondition_every_nth_frame"] == 0
