"""Video tracking with the tiny presets on the 48 sample frames.

Each SAM 3 frame costs seconds on a CPU even with the tiny presets (the
necks and mask head run 256-channel convolutions at 288x288), so every
scenario tracks one or two frames past the prompt.
"""

import json
import threading

import cv2
import numpy as np
import pytest
import supervision as sv
import torch

from sam3_radio.cli import main
from sam3_radio.model.video_builder import build_sam3_video_model
from sam3_radio.predict.video import Sam3VideoTracker

TINY = ["--backbone", "tiny-pe", "--weights", "random", "--device", "cpu"]
BOX = [200.0, 150.0, 700.0, 600.0]


def _make_random_model_detect(model):
    """Let a random-weight model produce masklets to test.

    Random weights give detection scores below SAM 3's thresholds and negative
    tracker object scores (object absent), so nothing would be tracked.
    """
    model.score_threshold_detection = 0.0
    model.new_det_thresh = 0.0
    with torch.no_grad():
        model.tracker.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(10.0)
    return model


def _summary(results):
    return [
        (index, detections.tracker_id.tolist(), detections.mask.copy())
        for index, detections in results
    ]


@pytest.fixture(scope="module")
def pe_model():
    return _make_random_model_detect(build_sam3_video_model("tiny-pe", weights="random", device="cpu"))


@pytest.fixture(scope="module")
def frames_dir(shared_data):
    return shared_data / "video-0001"


def _text_scenario(model, frames_dir, dtype="fp32"):
    tracker = Sam3VideoTracker(model, dtype=dtype)
    tracker.set_video(frames_dir)
    prompt = tracker.add_prompt(1, text="person")
    results = list(tracker.propagate("both", max_frames=1))
    return tracker, prompt, results


@pytest.fixture(scope="module")
def text_run(pe_model, frames_dir):
    return _text_scenario(pe_model, frames_dir)


def test_text_prompt_detections_have_tracker_ids(text_run):
    _, prompt, _ = text_run
    assert isinstance(prompt, sv.Detections)
    assert len(prompt) >= 1
    assert prompt.tracker_id is not None
    assert prompt.tracker_id.dtype.kind == "i"
    assert prompt.mask.shape == (len(prompt), 720, 1280)


def test_text_prompt_class_name(text_run):
    _, prompt, _ = text_run
    assert set(prompt.data["class_name"]) == {"person"}


def test_propagate_both_runs_forward_then_backward(text_run):
    _, _, results = text_run
    assert [index for index, _ in results] == [1, 2, 0]


def test_propagated_masklets_keep_their_ids(text_run):
    _, prompt, results = text_run
    prompt_ids = set(prompt.tracker_id.tolist())
    for index, detections in results:
        assert set(detections.tracker_id.tolist()) <= prompt_ids, index
        assert len(detections) >= 1, index


def test_propagated_boxes_inside_frame(text_run):
    _, _, results = text_run
    for _, detections in results:
        assert (detections.xyxy[:, [0, 2]] <= 1280).all()
        assert (detections.xyxy[:, [1, 3]] <= 720).all()
        assert (detections.xyxy >= 0).all()


def test_object_scores_cover_tracked_ids(text_run):
    tracker, prompt, _ = text_run
    assert set(tracker.object_scores) == set(tracker.object_ids)
    assert set(prompt.tracker_id.tolist()) <= set(tracker.object_ids)


def test_worker_thread_matches_main_thread(pe_model, frames_dir, text_run):
    outcome = {}

    def work():
        try:
            outcome["run"] = _text_scenario(pe_model, frames_dir)
        except Exception as error:  # reported in the main thread below
            outcome["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    main_results, thread_results = _summary(text_run[2]), _summary(outcome["run"][2])
    assert [r[:2] for r in thread_results] == [r[:2] for r in main_results]
    for (index, _, main_masks), (_, _, thread_masks) in zip(main_results, thread_results):
        np.testing.assert_array_equal(thread_masks, main_masks, err_msg=str(index))


def test_propagate_backward_only(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    tracker.add_prompt(2, text="person")
    assert [index for index, _ in tracker.propagate("backward", max_frames=1)] == [1]


def test_box_prompt_on_mp4(pe_model, sample_video_mp4):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(sample_video_mp4)
    prompt = tracker.add_prompt(0, boxes=[BOX], negative_boxes=[[900, 100, 1200, 400]])
    assert set(prompt.data["class_name"]) <= {"visual"}
    results = list(tracker.propagate("forward", max_frames=1))
    assert [index for index, _ in results] == [0, 1]
    assert all(detections.tracker_id is not None for _, detections in results)


def test_remove_object_drops_it_from_results(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    prompt = tracker.add_prompt(0, text="person")
    removed = int(prompt.tracker_id[0])
    tracker.remove_object(removed)
    assert removed not in tracker.object_ids
    for index, detections in tracker.propagate("forward", max_frames=1):
        assert removed not in detections.tracker_id.tolist(), index


def test_object_box_prompt_tracks_one_object(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    prompt = tracker.add_object(0, box=BOX)
    assert prompt.tracker_id.tolist() == [0]
    results = list(tracker.propagate("forward", max_frames=1))
    assert [index for index, _ in results] == [0, 1]
    assert all(detections.tracker_id.tolist() == [0] for _, detections in results)


def test_object_point_prompt_on_later_frame(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    prompt = tracker.add_object(3, points=[[450, 380], [1000, 200]], labels=[1, 0])
    assert prompt.tracker_id.tolist() == [0]
    assert prompt.mask.shape == (1, 720, 1280)
    results = list(tracker.propagate("forward", max_frames=1))
    assert [index for index, _ in results] == [3, 4]
    assert all(detections.tracker_id.tolist() == [0] for _, detections in results)


def test_points_without_matching_labels_raise(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    with pytest.raises(ValueError, match="got 2 points and 1 labels"):
        tracker.add_object(0, points=[[450, 380], [1000, 200]], labels=[1])


def test_bf16_autocast_on_cpu(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model, dtype="bf16")
    tracker.set_video(frames_dir)
    tracker.add_prompt(0, text="person")
    results = list(tracker.propagate("forward", max_frames=1))
    assert [index for index, _ in results] == [0, 1]
    for _, detections in results:
        assert np.isfinite(detections.confidence).all()
        assert detections.mask.dtype == bool


def test_radio_backbone_tracks(frames_dir):
    model = build_sam3_video_model("tiny-radio", weights="random", device="cpu")
    tracker = Sam3VideoTracker(_make_random_model_detect(model))
    assert tracker.resolution == 1152
    tracker.set_video(frames_dir)
    prompt = tracker.add_prompt(0, text="person")
    results = list(tracker.propagate("forward", max_frames=1))
    assert [index for index, _ in results] == [0, 1]
    assert prompt.tracker_id is not None


def test_empty_text_prompt_raises(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    with pytest.raises(ValueError, match="text prompt '  ' is empty"):
        tracker.add_prompt(0, text="  ")


def test_prompt_frame_out_of_range_raises(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    with pytest.raises(ValueError, match="frame index 48 is out of range: the video has 48"):
        tracker.add_prompt(48, text="person")


def test_remove_unknown_object_raises(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    with pytest.raises(ValueError, match="object 5 is not tracked"):
        tracker.remove_object(5)


def test_propagate_without_prompt_raises(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    with pytest.raises(ValueError, match="no prompt"):
        next(tracker.propagate())


def test_invalid_direction_raises(pe_model, frames_dir):
    tracker = Sam3VideoTracker(pe_model)
    tracker.set_video(frames_dir)
    with pytest.raises(ValueError, match="direction='sideways' is invalid"):
        next(tracker.propagate("sideways"))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, sample_video_mp4):
    out = tmp_path_factory.mktemp("track")
    argv = [
        "track", str(sample_video_mp4), "--text", "person", "--direction", "forward",
        "--max-frames", "1", "--mask-pngs", "--out", str(out), *TINY,
    ]
    return main(argv), out


def test_cli_track_writes_outputs(cli_run):
    code, out = cli_run
    assert code == 0
    assert (out / "video-0001.mp4").is_file()
    assert (out / "video-0001_pred.json").is_file()
    assert (out / "video-0001_meta.json").is_file()
    assert sorted(p.name for p in (out / "video-0001_masks").iterdir()) == ["00000.png", "00001.png"]


def test_cli_track_video_has_every_frame(cli_run):
    _, out = cli_run
    capture = cv2.VideoCapture(str(out / "video-0001.mp4"))
    count = 0
    while capture.grab():
        count += 1
    assert count == 48


def test_cli_track_metadata_marks_random_weights(cli_run):
    _, out = cli_run
    metadata = json.loads((out / "video-0001_meta.json").read_text())
    assert metadata["random_weights"] is True
    assert "meaningless" in metadata["warning"]


def test_cli_track_predictions_are_veval_list(cli_run):
    _, out = cli_run
    predictions = json.loads((out / "video-0001_pred.json").read_text())
    assert isinstance(predictions, list)
    for prediction in predictions:
        assert set(prediction) == {"video_id", "category_id", "score", "bboxes", "segmentations", "areas"}
        assert len(prediction["bboxes"]) == 48


def test_cli_track_boxes_on_two_frames_rejected(frames_dir, capsys):
    code = main(["track", str(frames_dir), "--box", "0:1,2,30,40", "--box", "3:1,2,30,40", *TINY])
    assert code == 2
    assert "prompts on frames [0, 3]" in capsys.readouterr().err


def test_cli_track_prompt_frame_out_of_range(frames_dir, capsys):
    code = main(["track", str(frames_dir), "--text", "person", "--frame", "60", *TINY])
    assert code == 2
    assert "prompt frame 60 is out of range" in capsys.readouterr().err


def test_cli_track_empty_text_rejected(frames_dir, capsys):
    code = main(["track", str(frames_dir), "--text", " ", *TINY])
    assert code == 2
    assert "--text is empty" in capsys.readouterr().err


def test_cli_track_unreadable_video(tmp_path, capsys):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 1000)
    code = main(["track", str(path), "--text", "person", *TINY])
    assert code == 2
    assert "broken.mp4" in capsys.readouterr().err
