"""Keep the `sam3` video inference state bounded on long videos.

Two parts of the state grow with every frame:

- `cached_frame_outputs` keeps every object's mask at the video resolution on
  every frame (0.9 MB per object per 1280x720 frame), so that a later
  propagation can replay results. `RleFrameOutputs` stores them as COCO RLE
  and decodes a mask when the `sam3` code reads it (lossless).
- Each tracker state keeps, for every tracked frame, the memory features
  ([N, 64, 72, 72]), their position encoding and the low-resolution mask
  logits ([N, 1, 288, 288]). `MemoryTrimmer` drops them from frames that the
  tracker can no longer read, keeping the small per-frame values (object
  pointer, object score, IoU scores) that memory selection and the object
  pointers read.

Which frames the tracker reads (sam3 0.1.4, `Sam3TrackerBase`): when it
tracks frame f, spatial memory comes from the conditioning frames (never
trimmed here) and from the last `num_maskmem - 1` = 6 frames before f in the
tracking direction. With memory selection (`use_memory_selection`, on with
temporal disambiguation) these are the 6 most recent frames whose
`eff_iou_score` exceeds `mf_threshold`, plus frame f - 1. Frames are tracked in
order, so within a pass these are always among the last `num_maskmem` frames
and the last `num_maskmem` selectable frames of the pass. A backward pass after
a forward pass from the same start frame reads the first frames of the forward
pass in the same way, so the first `num_maskmem` frames and selectable frames
of each pass are kept too.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field

import numpy as np
import torch
from pycocotools import mask as mask_utils

# Keys of a per-frame tracker output that the trimmer removes.
TRIMMED_KEYS = ("maskmem_features", "maskmem_pos_enc", "pred_masks")


class RleMasks(MutableMapping):
    """`{object id: bool mask [1, H, W]}` stored as COCO RLE and decoded on access."""

    def __init__(self, masks: dict | None = None):
        self._rles: dict = {}
        self._device = torch.device("cpu")
        for obj_id, mask in (masks or {}).items():
            self[obj_id] = mask

    def __setitem__(self, obj_id, mask: torch.Tensor) -> None:
        self._device = mask.device
        array = mask.reshape(mask.shape[-2:]).cpu().numpy().astype(np.uint8)
        self._rles[obj_id] = mask_utils.encode(np.asfortranarray(array))

    def __getitem__(self, obj_id) -> torch.Tensor:
        decoded = mask_utils.decode(self._rles[obj_id]).astype(bool)
        return torch.from_numpy(decoded)[None].to(self._device)

    def __delitem__(self, obj_id) -> None:
        del self._rles[obj_id]

    def __iter__(self) -> Iterator:
        return iter(self._rles)

    def __len__(self) -> int:
        return len(self._rles)

    def copy(self) -> dict:
        """Return the decoded masks as a plain dict, as `dict.copy` would."""
        return {obj_id: self[obj_id] for obj_id in self._rles}


class RleFrameOutputs(dict):
    """`{frame index: {object id: mask}}` whose inner mappings are `RleMasks`.

    It replaces `inference_state["cached_frame_outputs"]` of the `sam3` video
    model, which assigns a plain dict of masks per frame.
    """

    def __setitem__(self, frame_index, masks) -> None:
        if not isinstance(masks, RleMasks):
            masks = RleMasks(masks)
        super().__setitem__(frame_index, masks)


@dataclass
class _PassRecord:
    """Frames one tracker state tracked in the current pass, in tracking order."""

    seen: int
    frames: list[int] = field(default_factory=list)
    first_selectable: list[int] = field(default_factory=list)
    scanned: int = 0
    # Frames before `decided` are either trimmed or listed in `kept`.
    decided: int = 0
    kept: list[int] = field(default_factory=list)


class MemoryTrimmer:
    """Drop memory features and mask logits that the tracker will not read again.

    Call `start_pass` before each propagation pass and `trim` after each step
    of it. `trimmed_frames` lists the frames whose memory is gone; refining an
    object with points after that needs a new propagation from a prompt.
    """

    def __init__(self, tracker):
        self.num_keep = tracker.num_maskmem
        self.use_memory_selection = tracker.use_memory_selection
        self.threshold = tracker.mf_threshold
        self._passes: dict[int, _PassRecord] = {}
        self.trimmed_frames: set[int] = set()

    def start_pass(self, tracker_states: list[dict]) -> None:
        """Record which frames each tracker state had tracked before this pass."""
        self._passes = {
            id(state): _PassRecord(seen=len(state["frames_already_tracked"]))
            for state in tracker_states
        }

    def trim(self, tracker_states: list[dict]) -> None:
        """Trim the frames of `tracker_states` that no later step of this pass or
        of a reverse pass from the same start frame can read."""
        for state in tracker_states:
            record = self._passes.setdefault(id(state), _PassRecord(seen=0))
            tracked = state["frames_already_tracked"]
            if len(tracked) > record.seen:
                new_frames = list(tracked)[record.seen :]
                record.frames.extend(new_frames)
                record.seen = len(tracked)
            self._trim_state(state, record)

    def _selectable(self, state: dict, frame: int) -> bool:
        out = state["output_dict"]["non_cond_frame_outputs"].get(frame)
        if out is None or not self.use_memory_selection:
            return True
        score = out.get("eff_iou_score")
        return score is not None and float(score) > self.threshold

    def _update_first_selectable(self, state: dict, record: _PassRecord) -> None:
        # Only frames before the last `num_keep` are scanned: their scores are final.
        end = len(record.frames) - self.num_keep
        while record.scanned < end and len(record.first_selectable) < self.num_keep:
            frame = record.frames[record.scanned]
            if self._selectable(state, frame):
                record.first_selectable.append(frame)
            record.scanned += 1

    def _trim_state(self, state: dict, record: _PassRecord) -> None:
        frames = record.frames
        end = len(frames) - self.num_keep
        if end <= record.decided:
            return
        self._update_first_selectable(state, record)
        keep = set(frames[: self.num_keep]) | set(record.first_selectable)
        keep.update(self._last_selectable(state, frames))
        candidates = record.kept + frames[record.decided : end]
        record.kept = [frame for frame in candidates if frame in keep]
        record.decided = end
        for frame in candidates:
            if frame not in keep:
                self._trim_frame(state, frame)
                self.trimmed_frames.add(frame)

    def _last_selectable(self, state: dict, frames: list[int]) -> list[int]:
        found = []
        for frame in reversed(frames):
            if self._selectable(state, frame):
                found.append(frame)
                if len(found) == self.num_keep:
                    break
        return found

    @staticmethod
    def _trim_frame(state: dict, frame: int) -> None:
        out = state["output_dict"]["non_cond_frame_outputs"].get(frame)
        if out is None:
            return
        for key in TRIMMED_KEYS:
            out[key] = None
        for per_object in state["output_dict_per_obj"].values():
            obj_out = per_object["non_cond_frame_outputs"].get(frame)
            if obj_out is not None:
                for key in TRIMMED_KEYS:
                    obj_out[key] = None
