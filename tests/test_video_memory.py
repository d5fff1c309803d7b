import torch

from sam3_radio.predict.video_memory import MemoryTrimmer, RleFrameOutputs, RleMasks


class _Tracker:
    num_maskmem = 7
    use_memory_selection = True
    mf_threshold = 0.01


def _state():
    return {
        "frames_already_tracked": {},
        "output_dict": {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
        "output_dict_per_obj": {0: {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}},
    }


def _track(state, frame, score=1.0):
    features = torch.ones(1, 64, 4, 4)
    out = {
        "maskmem_features": features,
        "maskmem_pos_enc": [features],
        "pred_masks": torch.ones(1, 1, 8, 8),
        "obj_ptr": torch.ones(1, 256),
        "object_score_logits": torch.ones(1, 1),
        "eff_iou_score": torch.tensor(score),
    }
    state["output_dict"]["non_cond_frame_outputs"][frame] = out
    state["output_dict_per_obj"][0]["non_cond_frame_outputs"][frame] = dict(out)
    state["frames_already_tracked"][frame] = {"reverse": False}


def _kept(state):
    outputs = state["output_dict"]["non_cond_frame_outputs"]
    return sorted(f for f, out in outputs.items() if out["maskmem_features"] is not None)


def test_rle_masks_round_trip():
    mask = torch.zeros(1, 6, 5, dtype=torch.bool)
    mask[0, 2:4, 1:3] = True
    masks = RleMasks({7: mask})
    assert torch.equal(masks[7], mask)
    assert list(masks) == [7]


def test_rle_masks_copy_decodes():
    mask = torch.ones(1, 3, 3, dtype=torch.bool)
    copied = RleMasks({1: mask}).copy()
    assert type(copied) is dict
    assert torch.equal(copied[1], mask)


def test_rle_frame_outputs_allow_deletion():
    outputs = RleFrameOutputs()
    outputs[4] = {2: torch.ones(1, 3, 3, dtype=torch.bool)}
    assert isinstance(outputs[4], RleMasks)
    del outputs[4][2]
    assert len(outputs[4]) == 0


def test_trimmer_keeps_first_and_last_frames_of_pass():
    state = _state()
    trimmer = MemoryTrimmer(_Tracker())
    trimmer.start_pass([state])
    for frame in range(40):
        _track(state, frame)
        trimmer.trim([state])
    assert _kept(state) == list(range(7)) + list(range(33, 40))


def test_trimmer_keeps_pointers_and_scores():
    state = _state()
    trimmer = MemoryTrimmer(_Tracker())
    trimmer.start_pass([state])
    for frame in range(30):
        _track(state, frame)
        trimmer.trim([state])
    trimmed = state["output_dict"]["non_cond_frame_outputs"][10]
    assert trimmed["maskmem_features"] is None
    assert trimmed["pred_masks"] is None
    assert trimmed["obj_ptr"] is not None
    assert trimmed["eff_iou_score"] is not None
    assert state["output_dict_per_obj"][0]["non_cond_frame_outputs"][10]["maskmem_features"] is None


def test_trimmer_keeps_last_selectable_frames():
    state = _state()
    trimmer = MemoryTrimmer(_Tracker())
    trimmer.start_pass([state])
    # Frames 20 to 39 have no object, so memory selection skips them and reads
    # the last 7 frames with a score above the threshold: 13 to 19.
    for frame in range(40):
        _track(state, frame, score=1.0 if frame < 20 else 0.0)
        trimmer.trim([state])
    assert _kept(state) == list(range(7)) + list(range(13, 20)) + list(range(33, 40))


def test_trimmer_leaves_earlier_passes_alone():
    state = _state()
    for frame in range(100, 130):
        _track(state, frame)
    trimmer = MemoryTrimmer(_Tracker())
    trimmer.start_pass([state])
    for frame in range(30):
        _track(state, frame)
        trimmer.trim([state])
    assert set(range(100, 130)) <= set(_kept(state))
