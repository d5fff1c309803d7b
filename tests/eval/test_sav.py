"""SA-V semi-supervised VOS: the real tracker with mask and box prompts, and stub trackers.

The dataset is three 160x90 frames of video-0001 with two annotated objects
(see conftest). The real runs use the tiny presets with random weights, so
their J&F is no quality measure. The tests check instead that the score is
computed from the masks that the tracker returned.
"""

import numpy as np
import pytest

from sam3_radio.evaluate.store import PredictionStore
from sam3_radio.evaluate.video_tracking import ObjectPrompt, Sam3ObjectTracker
from sam3_radio.metrics.jf import boundary_f_measure, region_similarity
from sam3_radio.predict.export import decode_rle

from .conftest import FRAME_SIZE, sav_masks
from .test_harness import MODELS, check_report, run_task

NUM_FRAMES = 3
OBJECT_IDS = ("000", "001")


@pytest.fixture(scope="module")
def sav_mask_runs(tmp_path_factory, sav_root):
    """Mask-prompt runs of both tiny presets, scoring every annotated frame."""
    out_dir = tmp_path_factory.mktemp("sav_mask")
    overrides = [f"data.root={sav_root}", "skip_first_and_last=false"]
    runs = {model: run_task("sav", overrides, out_dir, model) for model in MODELS}
    return out_dir, runs


def stored_masks(out_dir, model) -> dict[str, dict[int, np.ndarray]]:
    """Return the predicted masks that a run stored: object id -> frame -> bool [H, W]."""
    unit = PredictionStore(out_dir / model / "predictions").read_all()["vid0"]
    return {
        object_id: {int(frame): decode_rle(rle).astype(bool) for frame, rle in frames.items()}
        for object_id, frames in unit.payload["masks"].items()
    }


def test_sav_both_backbones(sav_mask_runs):
    out_dir, runs = sav_mask_runs
    check_report(out_dir, MODELS)
    for model, run in runs.items():
        assert run["metrics"]["num_objects"] == 2, model
        assert 0 <= run["headline"]["J&F"] <= 100, model
        assert run["notes"][0].startswith("mask prompt"), model


@pytest.mark.parametrize("model", MODELS)
def test_sav_mask_prompt_frame_is_ground_truth(sav_mask_runs, model):
    out_dir, _ = sav_mask_runs
    masks = stored_masks(out_dir, model)
    truth = sav_masks(NUM_FRAMES, *FRAME_SIZE)
    for object_id in OBJECT_IDS:
        predicted, expected = masks[object_id][0], truth[object_id][0]
        iou = (predicted & expected).sum() / (predicted | expected).sum()
        assert iou > 0.9, object_id


@pytest.mark.parametrize("model", MODELS)
def test_sav_jf_scores_tracked_masks(sav_mask_runs, model):
    """J&F equals a computation by hand over the masks the tracker returned.

    Frames without a stored mask count as empty predictions. The prompt frame
    scores close to 100 and an ignored tracker output scores 0, so the check
    also fails when the task drops the tracker's masks.
    """
    out_dir, runs = sav_mask_runs
    masks = stored_masks(out_dir, model)
    truth = sav_masks(NUM_FRAMES, *FRAME_SIZE)
    empty = np.zeros(FRAME_SIZE[::-1], dtype=bool)
    object_jf = {}
    for object_id in OBJECT_IDS:
        pairs = [(masks[object_id].get(i, empty), truth[object_id][i]) for i in range(NUM_FRAMES)]
        j = 100 * np.mean([region_similarity(p, g) for p, g in pairs])
        f = 100 * np.mean([boundary_f_measure(p, g) for p, g in pairs])
        object_jf[object_id] = (j + f) / 2

    reported = {item["object_id"]: item["J&F"] for item in runs[model]["metrics"]["objects"]}
    for object_id in OBJECT_IDS:
        assert reported[object_id] == pytest.approx(object_jf[object_id]), object_id
    assert runs[model]["headline"]["J&F"] == pytest.approx(np.mean(list(object_jf.values())))
    assert runs[model]["headline"]["J&F"] > 25


def test_sav_box_prompt_runs_real_tracker(tmp_path, sav_root):
    overrides = [f"data.root={sav_root}", "prompt=box"]
    run = run_task("sav", overrides, tmp_path, "tiny_pe")
    assert run["metrics"]["num_objects"] == 2
    assert 0 <= run["headline"]["J&F"] <= 100
    assert run["notes"][0].startswith("box prompt")


def test_sav_rejects_unknown_prompt(tmp_path, sav_root):
    with pytest.raises(ValueError, match="prompt='points' is invalid: use 'mask' or 'box'"):
        run_task("sav", [f"data.root={sav_root}", "prompt=points"], tmp_path, "tiny_pe")


@pytest.mark.parametrize("tracked, expected", [("truth", 100.0), ("nothing", 0.0)])
def test_sav_stub_tracker(tmp_path, sav_root, tracked, expected):
    truth = sav_masks(3, 160, 90)

    def tracker(frames, prompts):
        if tracked == "nothing":
            return {}
        ids = {"000": 1, "001": 2}
        return {ids[name]: masks for name, masks in truth.items()}

    run = run_task("sav", [f"data.root={sav_root}"], tmp_path, "tiny_pe", object_tracker=tracker)
    assert run["headline"]["J&F"] == expected
    assert run["metrics"]["objects"][0]["num_frames"] == 1


class RecordingInstanceTracker:
    """Stand-in for `Sam3InstanceTracker` that records the calls it receives."""

    def __init__(self):
        self.calls = []

    def set_video(self, frames):
        self.calls.append(("set_video", len(frames)))

    def add_mask(self, frame_index, obj_id, mask):
        self.calls.append(("add_mask", frame_index, obj_id, int(mask.sum())))

    def add_box(self, frame_index, obj_id, box):
        self.calls.append(("add_box", frame_index, obj_id, tuple(box)))

    def propagate(self, direction):
        self.calls.append(("propagate", direction))
        return iter([])

    def close(self):
        self.calls.append(("close",))


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("mask", [("add_mask", 0, 1, 6), ("add_mask", 2, 2, 4)]),
        ("box", [("add_box", 0, 1, (1.0, 1.0, 4.0, 3.0)), ("add_box", 2, 2, (0.0, 0.0, 2.0, 2.0))]),
    ],
)
def test_object_tracker_prompts_each_object(prompt, expected):
    first = np.zeros((4, 5), dtype=bool)
    first[1:3, 1:4] = True
    second = np.zeros((4, 5), dtype=bool)
    second[0:2, 0:2] = True
    prompts = [
        ObjectPrompt(1, 0, first, (1.0, 1.0, 4.0, 3.0)),
        ObjectPrompt(2, 2, second, (0.0, 0.0, 2.0, 2.0)),
    ]
    recorder = RecordingInstanceTracker()
    Sam3ObjectTracker(recorder, prompt=prompt)([np.zeros((4, 5, 3), np.uint8)] * 3, prompts)
    assert recorder.calls == [("set_video", 3), *expected, ("propagate", "forward"), ("close",)]
