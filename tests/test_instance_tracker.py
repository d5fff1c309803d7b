"""Mask and box prompts for SAM 3's tracker alone, with the tiny-pe preset on real frames.

Each frame costs seconds on a CPU even with the tiny presets, so every
scenario tracks at most three frames of the 48 sample frames.
"""

from collections import Counter

import numpy as np
import pytest
import torch

from sam3_radio.model.device import inference_context
from sam3_radio.model.video_builder import build_sam3_video_model
from sam3_radio.predict import instance_tracker
from sam3_radio.predict.instance_tracker import Sam3InstanceTracker
from sam3_radio.predict.tracker_features import tracker_neck_features
from sam3_radio.predict.video_frames import VideoFrames

WIDTH, HEIGHT = 1280, 720


def rectangle(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


MASKS = {1: rectangle(100, 100, 500, 400), 2: rectangle(700, 300, 1100, 650)}
BOX = [600.0, 50.0, 900.0, 300.0]


@pytest.fixture(scope="module")
def model():
    """A tiny-pe video model whose tracker reports every object as present.

    With random weights (seed 0) the tracker's object-score head returns a
    negative logit on the frames after the prompt, and the tracker then
    blanks the masks of objects it considers absent. A large bias on the
    head's last layer keeps them, so the tests see the masks that memory
    attention produces. The prompt frame does not need it, because a mask
    prompt sets the object score itself.
    """
    model = build_sam3_video_model("tiny-pe", weights="random", device="cpu")
    with torch.no_grad():
        model.tracker.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(10.0)
    return model


@pytest.fixture(scope="module")
def frames_dir(shared_data):
    return shared_data / "video-0001"


@pytest.fixture(scope="module")
def two_state_run(model, frames_dir):
    """Track objects 1 and 2 masked on frame 0 and object 3 boxed on frame 1, one frame each."""
    tracker = Sam3InstanceTracker(model)
    tracker.set_video(frames_dir)
    for obj_id, mask in MASKS.items():
        tracker.add_mask(0, obj_id, mask)
    tracker.add_box(1, 3, BOX)

    created = []

    class RecordingFeatures(instance_tracker.TrackerFeatures):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    original = instance_tracker.TrackerFeatures
    instance_tracker.TrackerFeatures = RecordingFeatures
    try:
        results = dict(tracker.propagate("forward", max_frames=1))
    finally:
        instance_tracker.TrackerFeatures = original
    assert len(created) == 1
    return tracker, results, Counter(created[0].computed_frames)


def test_propagate_yields_frames_in_order(two_state_run):
    _, results, _ = two_state_run
    assert list(results) == [0, 1, 2]


def test_mask_prompt_frame_returns_prompt(two_state_run):
    _, results, _ = two_state_run
    detections = results[0]
    assert detections.tracker_id.tolist() == [1, 2]
    for mask, obj_id in zip(detections.mask, detections.tracker_id):
        assert iou(mask, MASKS[obj_id]) > 0.98, obj_id


def test_mask_prompt_tracks_every_object(two_state_run):
    _, results, _ = two_state_run
    detections = results[1]
    assert detections.tracker_id.tolist() == [1, 2, 3]
    assert detections.mask.shape == (3, HEIGHT, WIDTH)
    assert detections.mask.any(axis=(1, 2)).all()


def test_object_after_its_last_frame_is_absent(two_state_run):
    _, results, _ = two_state_run
    assert results[2].tracker_id.tolist() == [3]


def test_detections_carry_prompt_kind(two_state_run):
    _, results, _ = two_state_run
    assert results[1].data["class_name"].tolist() == ["mask", "mask", "box"]


def test_confidence_is_object_probability(two_state_run):
    _, results, _ = two_state_run
    for detections in results.values():
        assert ((detections.confidence > 0) & (detections.confidence <= 1)).all()


def test_boxes_enclose_masks(two_state_run):
    _, results, _ = two_state_run
    detections = results[0]
    x0, y0, x1, y1 = detections.xyxy[0]
    rows, columns = np.nonzero(detections.mask[0])
    assert (x0, y0) == (columns.min(), rows.min())
    assert (x1, y1) == (columns.max(), rows.max())


def test_each_frame_encoded_once_across_states(two_state_run):
    _, _, encoded = two_state_run
    assert encoded == {0: 1, 1: 1, 2: 1}


def test_object_ids_lists_prompted_objects(two_state_run):
    tracker, _, _ = two_state_run
    assert tracker.object_ids == [1, 2, 3]


def test_propagate_backward_from_last_prompt(model, frames_dir):
    tracker = Sam3InstanceTracker(model)
    tracker.set_video(frames_dir)
    tracker.add_mask(1, 7, MASKS[1])
    results = list(tracker.propagate("backward", max_frames=1))
    assert [index for index, _ in results] == [1, 0]
    assert [detections.tracker_id.tolist() for _, detections in results] == [[7], [7]]
    assert iou(results[0][1].mask[0], MASKS[1]) > 0.98


def test_neck_features_equal_sam3_backbone(model, frames_dir):
    frames = VideoFrames(frames_dir, 1008)
    image = frames[0].unsqueeze(0)
    with inference_context("cpu", torch.float32, keep_float32=True):
        ours = tracker_neck_features(model, image)
        sam3_out = model.detector.backbone.forward_image(image)["sam2_backbone_out"]
    for key in ("backbone_fpn", "vision_pos_enc"):
        assert len(ours[key]) == len(sam3_out[key]) == 3, key
        for level, (mine, theirs) in enumerate(zip(ours[key], sam3_out[key])):
            assert torch.equal(mine, theirs), (key, level)


# -- input checks -------------------------------------------------------------


@pytest.fixture
def tracker(model, frames_dir):
    tracker = Sam3InstanceTracker(model)
    tracker.set_video(frames_dir)
    return tracker


@pytest.mark.parametrize(
    "frame_index, obj_id, mask, message",
    [
        (0, 1, np.ones((90, 160), dtype=bool), r"shape \(90, 160\).*1280x720.*\[720, 1280\]"),
        (0, 1, np.zeros((HEIGHT, WIDTH), dtype=bool), "object 1 on frame 0 is empty"),
        (48, 1, MASKS[1], "frame index 48 is out of range.*48 frames"),
        (-1, 1, MASKS[1], "frame index -1 is out of range"),
        (0.5, 1, MASKS[1], "frame index must be an int"),
        (0, 1, MASKS[1].astype(np.float32), "dtype float32.*threshold"),
        (0, -1, MASKS[1], "obj_id=-1 is invalid"),
        (0, True, MASKS[1], "obj_id=True is invalid"),
    ],
)
def test_add_mask_rejects_bad_input(tracker, frame_index, obj_id, mask, message):
    with pytest.raises(ValueError, match=message):
        tracker.add_mask(frame_index, obj_id, mask)


def test_add_mask_accepts_integer_mask(tracker):
    tracker.add_mask(0, 1, MASKS[1].astype(np.uint8) * 255)
    assert tracker.object_ids == [1]


def test_add_mask_accepts_tensor_with_channel(tracker):
    tracker.add_mask(0, 1, torch.from_numpy(MASKS[1])[None])
    assert tracker.object_ids == [1]


@pytest.mark.parametrize(
    "box, message",
    [
        ([[0, 0, 10, 10], [5, 5, 20, 20]], "one pixel xyxy box"),
        ([2000, 10, 2100, 50], "outside the 1280x720 image"),
        ([50, 50, 10, 10], "x1 < x0"),
    ],
)
def test_add_box_rejects_bad_box(tracker, box, message):
    with pytest.raises(ValueError, match=message):
        tracker.add_box(0, 1, box)


def test_add_mask_needs_video(model):
    with pytest.raises(RuntimeError, match="no video is set"):
        Sam3InstanceTracker(model).add_mask(0, 1, MASKS[1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"direction": "both"}, "direction='both' is invalid"),
        ({"max_frames": -1}, "max_frames=-1"),
    ],
)
def test_propagate_rejects_bad_arguments(tracker, kwargs, message):
    tracker.add_mask(0, 1, MASKS[1])
    with pytest.raises(ValueError, match=message):
        tracker.propagate(**kwargs)


def test_propagate_needs_prompt(tracker):
    with pytest.raises(ValueError, match="no prompt"):
        tracker.propagate()


def test_remove_object_drops_prompts(tracker):
    tracker.add_mask(0, 1, MASKS[1])
    tracker.add_mask(0, 2, MASKS[2])
    tracker.remove_object(1)
    assert tracker.object_ids == [2]
    with pytest.raises(ValueError, match="object 1 has no prompt"):
        tracker.remove_object(1)


def test_set_video_rejects_frames_at_other_resolution(model, frames_dir):
    with pytest.raises(ValueError, match="resized to 1152 px.*takes 1008 px"):
        Sam3InstanceTracker(model).set_video(VideoFrames(frames_dir, 1152))
