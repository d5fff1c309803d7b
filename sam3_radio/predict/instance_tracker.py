"""Semi-supervised video object segmentation with SAM 3's tracker alone (SAM 2 style).

Each object is given as a mask (or a box) on one or more frames, and the
tracker propagates it through the video. Only the trunk, the tracker neck and
`sam3`'s `Sam3TrackerPredictor` with its memory run, all unchanged. The
detector heads and the text encoder of the video model stay idle.

How this drives `sam3` 0.1.4 without editing it:

- The tracker of a video model has no backbone of its own. It reads each
  frame's features from `inference_state["cached_features"]`, where the video
  model's detector normally puts them. `TrackerFeatures` fills that lookup on
  demand with the trunk, the tracker neck and the tracker's `conv_s0` and
  `conv_s1`: the features that `Sam3TrackerBase.forward_image` computes when a
  backbone is attached, without the detector neck. The shared model is never
  modified.
- A `sam3` tracker state cannot take a new object once it has started
  tracking. On a frame where some objects of a state are prompted, the other
  objects of that state get no output and an empty mask in memory. So the
  prompts are only recorded, and `propagate` builds one tracker state per set
  of objects that share their prompt frames, each starting on its own first
  prompted frame. The states advance together, so each frame's features are
  computed once.
- Every call into the model runs under `inference_context` (CUDA redirect on
  CPU, per-call autocast, fp32 kept in fp32), one frame at a time, and memory
  that the tracker no longer reads is dropped with `MemoryTrimmer`.

Prompts and results use pixel coordinates of the original frames. Results are
`supervision.Detections` with `tracker_id` set to the object id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import supervision as sv
import torch
from PIL import Image

from sam3_radio.model.device import inference_context, resolve_dtype
from sam3_radio.predict.boxes import validate_boxes_xyxy, xy_to_normalized
from sam3_radio.predict.image import PE_INPUT_SIZE
from sam3_radio.predict.tracker_features import TrackerFeatures
from sam3_radio.predict.video_frames import VideoFrames, open_video_frames
from sam3_radio.predict.video_memory import MemoryTrimmer

logger = logging.getLogger(__name__)

DIRECTIONS = ("forward", "backward")

VideoSource = str | Path | Sequence[Image.Image | np.ndarray] | VideoFrames


@dataclass(frozen=True)
class _Prompt:
    """One object's prompt on one frame: a bool [H, W] mask or a normalised xyxy box."""

    kind: str
    value: torch.Tensor


@dataclass
class _StateRun:
    """One `sam3` tracker state, the frames it covers and its step generator.

    `kinds` maps each object id of the state to the kind of its first prompt.
    """

    state: dict
    frames: range
    start: int
    kinds: dict[int, str]
    steps: Iterator | None = None


class Sam3InstanceTracker:
    """Track given objects through a video with the tracker of a SAM 3 video model.

    Args:
        model: a video model from `build_sam3_video_model`, with any backbone.
        dtype: 'fp32' or 'bf16' (autocast on the model's device).
        frame_cache_size: preprocessed frames kept in memory.

    Example:
        >>> tracker = Sam3InstanceTracker(model)
        >>> tracker.set_video("frames/")
        >>> tracker.add_mask(0, obj_id=1, mask=first_mask)
        >>> tracker.add_box(0, obj_id=2, box=[200, 150, 700, 600])
        >>> for frame_index, detections in tracker.propagate():
        ...     print(frame_index, detections.tracker_id)
    """

    def __init__(self, model, dtype: str | torch.dtype = "fp32", frame_cache_size: int = 2):
        self.model = model
        self.tracker = model.tracker
        self.dtype = resolve_dtype(dtype)
        self.frame_cache_size = frame_cache_size
        self.device = next(model.parameters()).device
        trunk = model.detector.backbone.vision_backbone.trunk
        self.resolution = getattr(trunk, "input_size", PE_INPUT_SIZE)
        self.frames: VideoFrames | None = None
        # object id -> frame index -> prompt
        self._prompts: dict[int, dict[int, _Prompt]] = {}

    # -- video -----------------------------------------------------------------

    def set_video(self, video: VideoSource) -> None:
        """Open `video` (mp4 path, frame folder, list of frames or `VideoFrames`).

        Any earlier video and its prompts are dropped.
        """
        self.close()
        self.frames = open_video_frames(video, self.resolution, self.frame_cache_size)
        logger.info(
            "opened video %s: %d frames of %dx%d",
            self.frames.name,
            len(self.frames),
            self.frames.width,
            self.frames.height,
        )

    @property
    def num_frames(self) -> int:
        return len(self._require_frames())

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the video frames in pixels."""
        frames = self._require_frames()
        return frames.width, frames.height

    @property
    def object_ids(self) -> list[int]:
        """Ids of the prompted objects, in ascending order."""
        return sorted(self._prompts)

    def reset(self) -> None:
        """Remove every prompt, keeping the video open."""
        self._prompts = {}

    def close(self) -> None:
        """Release the video and its prompts."""
        if self.frames is not None:
            self.frames.close()
        self.frames = None
        self._prompts = {}

    # -- prompts ---------------------------------------------------------------

    def add_mask(self, frame_index: int, obj_id: int, mask: np.ndarray | torch.Tensor) -> None:
        """Prompt object `obj_id` with its mask on `frame_index`.

        The mask conditions the tracker directly: on this frame the output is
        the mask itself, resampled through the tracker's 288x288 mask grid,
        and tracking starts from its memory. Where the masks of objects that
        are tracked together overlap on a prompt frame, the object with the
        higher id keeps the overlap, as in `sam3`'s `add_new_mask`. A later
        prompt for the same object and frame replaces this one.

        Args:
            frame_index: frame of the prompt, 0 to num_frames - 1.
            obj_id: the object's id, an int of 0 or more.
            mask: bool [H, W] at the original frame size. Integer masks count
                every non-zero pixel as the object, as in PNG annotations.
        """
        frame_index = self._check_frame(frame_index)
        obj_id = _check_obj_id(obj_id)
        mask = self._check_mask(mask, frame_index, obj_id)
        self._prompts.setdefault(obj_id, {})[frame_index] = _Prompt("mask", mask)
        logger.debug("object %d: mask prompt on frame %d", obj_id, frame_index)

    def add_box(
        self, frame_index: int, obj_id: int, box: Sequence[float] | np.ndarray
    ) -> None:
        """Prompt object `obj_id` with its box on `frame_index`.

        The tracker's SAM mask decoder turns the box into the first mask. A
        later prompt for the same object and frame replaces this one.

        Args:
            frame_index: frame of the prompt, 0 to num_frames - 1.
            obj_id: the object's id, an int of 0 or more.
            box: pixel xyxy [4] on the original frame; a box partly outside
                the frame is clipped to it.
        """
        frame_index = self._check_frame(frame_index)
        obj_id = _check_obj_id(obj_id)
        width, height = self.frame_size
        boxes = validate_boxes_xyxy(box, width, height)
        if len(boxes) != 1:
            raise ValueError(f"box must be one pixel xyxy box [4], got {len(boxes)} boxes")
        corners = xy_to_normalized(boxes.reshape(2, 2), width, height)
        value = torch.from_numpy(corners.reshape(4))
        self._prompts.setdefault(obj_id, {})[frame_index] = _Prompt("box", value)
        logger.debug("object %d: box prompt on frame %d", obj_id, frame_index)

    def remove_object(self, obj_id: int) -> None:
        """Drop every prompt of `obj_id`."""
        if obj_id not in self._prompts:
            raise ValueError(
                f"object {obj_id} has no prompt: prompted objects are {self.object_ids}"
            )
        del self._prompts[obj_id]

    # -- propagation -----------------------------------------------------------

    def propagate(
        self, direction: str = "forward", max_frames: int | None = None
    ) -> Iterator[tuple[int, sv.Detections]]:
        """Track the prompted objects through the video, yielding each frame's masks.

        Every call starts again from the prompts, so two calls give the same
        results. An object's tracking starts on its first prompted frame
        (forward) or its last prompted frame (backward). Frames before that
        start have no result for that object.

        Args:
            direction: 'forward' (towards the last frame) or 'backward'
                (towards frame 0).
            max_frames: frames to track past each object's start frame; None
                means up to the end of the video.

        Yields:
            (frame_index, detections) in tracking order, for every frame that
            at least one object has reached. `detections` contains the objects
            whose mask is not empty on that frame. Its `tracker_id` is the
            object id, `mask` is bool [N, H, W] at the original size,
            `confidence` is the tracker's object score (sigmoid of its logit),
            and `data["class_name"]` is the kind of the object's prompts
            ('mask' or 'box').
        """
        frames = self._require_frames()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r} is invalid: use one of {DIRECTIONS}")
        if not self._prompts:
            raise ValueError("no prompt: call add_mask or add_box before propagate")
        if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 0):
            raise ValueError(f"max_frames={max_frames!r} must be 0 or more, or None for all")
        return self._propagate(frames, direction == "backward", max_frames)

    def _propagate(self, frames: VideoFrames, reverse: bool, max_frames: int | None):
        features = TrackerFeatures(self.model, frames, self.device)
        with self._context():
            runs = [
                self._start_run(features, object_ids, reverse, max_frames)
                for object_ids in self._group_objects()
            ]
        order = sorted({frame for run in runs for frame in run.frames}, reverse=reverse)
        trimmer = MemoryTrimmer(self.tracker)
        trimmer.start_pass([run.state for run in runs])
        logger.info(
            "tracking %d objects in %d tracker states over %d frames (%s)",
            len(self._prompts),
            len(runs),
            len(order),
            "backward" if reverse else "forward",
        )
        try:
            for frame_index in order:
                active = [run for run in runs if frame_index in run.frames]
                parts = [self._step(run, frame_index, reverse, max_frames) for run in active]
                trimmer.trim([run.state for run in active])
                yield frame_index, self._to_detections(parts)
        finally:
            with self._context():
                for run in runs:
                    if run.steps is not None:
                        run.steps.close()

    def _group_objects(self) -> list[list[int]]:
        """Group the objects that share their set of prompt frames, in order of object id."""
        groups: dict[frozenset[int], list[int]] = {}
        for obj_id in self.object_ids:
            groups.setdefault(frozenset(self._prompts[obj_id]), []).append(obj_id)
        return list(groups.values())

    def _start_run(self, features, object_ids, reverse, max_frames) -> _StateRun:
        """Create a tracker state for `object_ids` and add their prompts to it."""
        frames = self._require_frames()
        state = self.tracker.init_state(
            video_height=frames.height,
            video_width=frames.width,
            num_frames=len(frames),
            cached_features=features,
        )
        # `init_state` keeps results on CUDA unless `offload_state_to_cpu` is
        # set, but they belong on the model's device.
        state["storage_device"] = self.device

        prompt_frames = sorted(self._prompts[object_ids[0]])
        kinds = {}
        for frame_index in prompt_frames:
            for obj_id in object_ids:
                prompt = self._prompts[obj_id][frame_index]
                kinds.setdefault(obj_id, prompt.kind)
                if prompt.kind == "mask":
                    self.tracker.add_new_mask(state, frame_index, obj_id, prompt.value)
                else:
                    self.tracker.add_new_points_or_box(
                        state, frame_index, obj_id, box=prompt.value, rel_coordinates=True
                    )

        start = prompt_frames[-1] if reverse else prompt_frames[0]
        covered = _tracked_frames(start, len(frames), reverse, max_frames)
        return _StateRun(state, covered, start, kinds)

    def _step(self, run: _StateRun, frame_index: int, reverse: bool, max_frames):
        with self._context():
            if run.steps is None:
                run.steps = self.tracker.propagate_in_video(
                    run.state,
                    start_frame_idx=run.start,
                    max_frame_num_to_track=max_frames,
                    reverse=reverse,
                    tqdm_disable=True,
                    propagate_preflight=True,
                )
            tracked_frame, obj_ids, _, video_res_masks, object_scores = next(run.steps)
            if tracked_frame != frame_index:
                raise RuntimeError(
                    f"the sam3 tracker returned frame {tracked_frame} where frame "
                    f"{frame_index} was due: its processing order changed"
                )
            masks = (video_res_masks[:, 0] > 0).cpu().numpy()
            scores = torch.sigmoid(object_scores.float().reshape(-1)).cpu().numpy()
        kinds = [run.kinds[int(obj_id)] for obj_id in obj_ids]
        return [int(obj_id) for obj_id in obj_ids], masks, scores, kinds

    # -- helpers ---------------------------------------------------------------

    def _context(self):
        return inference_context(self.device, self.dtype, keep_float32=True)

    def _require_frames(self) -> VideoFrames:
        if self.frames is None:
            raise RuntimeError("no video is set: call set_video(video) first")
        return self.frames

    def _check_frame(self, frame_index) -> int:
        try:
            return self._require_frames().check_index(frame_index)
        except (IndexError, TypeError) as error:
            raise ValueError(f"invalid prompt frame: {error}") from error

    def _check_mask(self, mask, frame_index: int, obj_id: int) -> torch.Tensor:
        width, height = self.frame_size
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        array = np.asarray(mask)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.shape != (height, width):
            raise ValueError(
                f"mask of object {obj_id} has shape {tuple(array.shape)} but the video "
                f"frames are {width}x{height}: pass a bool [H, W] = [{height}, {width}] "
                "mask at the original frame size"
            )
        if array.dtype != bool:
            if not np.issubdtype(array.dtype, np.integer):
                raise ValueError(
                    f"mask of object {obj_id} has dtype {array.dtype}: pass a bool mask "
                    "(threshold probabilities or logits first) or an integer mask where "
                    "non-zero pixels are the object"
                )
            array = array != 0
        if not array.any():
            raise ValueError(
                f"mask of object {obj_id} on frame {frame_index} is empty: a mask prompt "
                "needs at least one object pixel. Prompt the object on a frame where it "
                "is visible"
            )
        return torch.from_numpy(np.ascontiguousarray(array))

    def _to_detections(self, parts) -> sv.Detections:
        width, height = self.frame_size
        ids, masks, scores, kinds = [], [], [], []
        for part_ids, part_masks, part_scores, part_kinds in parts:
            for obj_id, mask, score, kind in zip(part_ids, part_masks, part_scores, part_kinds):
                if mask.any():
                    ids.append(obj_id)
                    masks.append(mask)
                    scores.append(score)
                    kinds.append(kind)
        if not ids:
            return sv.Detections(
                xyxy=np.zeros((0, 4), dtype=np.float32),
                mask=np.zeros((0, height, width), dtype=bool),
                confidence=np.zeros(0, dtype=np.float32),
                class_id=np.zeros(0, dtype=int),
                tracker_id=np.zeros(0, dtype=int),
                data={"class_name": np.array([], dtype=str)},
            )
        order = np.argsort(ids, kind="stable")
        mask_array = np.stack(masks)[order]
        return sv.Detections(
            xyxy=sv.mask_to_xyxy(mask_array).astype(np.float32),
            mask=mask_array,
            confidence=np.asarray(scores, dtype=np.float32)[order],
            class_id=np.zeros(len(ids), dtype=int),
            tracker_id=np.asarray(ids, dtype=int)[order],
            data={"class_name": np.array(kinds)[order]},
        )


def _tracked_frames(start: int, num_frames: int, reverse: bool, max_frames: int | None) -> range:
    """Return the frames that `Sam3TrackerPredictor.propagate_in_video` visits, in its order."""
    span = num_frames if max_frames is None else max_frames
    if reverse:
        return range(start, max(start - span, 0) - 1, -1)
    return range(start, min(start + span, num_frames - 1) + 1)


def _check_obj_id(obj_id) -> int:
    if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)) or obj_id < 0:
        raise ValueError(f"obj_id={obj_id!r} is invalid: object ids are ints of 0 or more")
    return int(obj_id)
