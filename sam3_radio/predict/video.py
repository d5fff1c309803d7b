"""Video tracker: find every instance of a concept on one frame and track it.

`Sam3VideoTracker` drives `sam3`'s own video model (detector, tracker and
memory unchanged) without its request server, whose constructor, frame
loaders and session logs assume CUDA:

- the frames come from a lazy `VideoFrames` source instead of a tensor of the
  whole video;
- every call into the model runs under `inference_context` (CUDA redirect on
  CPU, per-call autocast, fp32 kept in fp32), one propagation step at a time,
  so it works from any thread and leaves no mode active between steps;
- the state's per-frame masks are stored as RLE and old tracker memory is
  trimmed (see `video_memory`).

Prompts and results use pixel coordinates of the original frames. Results are
`supervision.Detections` with `tracker_id` set to the masklet's object id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import supervision as sv
import torch
from PIL import Image
from sam3.model.geometry_encoders import Prompt

from sam3_radio.model.device import inference_context, resolve_dtype
from sam3_radio.predict.boxes import (
    normalized_xywh_to_xyxy,
    validate_boxes_xyxy,
    xy_to_normalized,
    xyxy_to_normalized_cxcywh,
)
from sam3_radio.predict.image import PE_INPUT_SIZE, VISUAL_PROMPT_TEXT, _check_text
from sam3_radio.predict.video_frames import VideoFrames, open_video_frames
from sam3_radio.predict.video_memory import MemoryTrimmer, RleFrameOutputs

logger = logging.getLogger(__name__)

DIRECTIONS = ("forward", "backward", "both")
MEMORY_POLICIES = ("trim", "full")
# Point labels of the `sam3` tracker: 1 positive, 0 negative, 2 and 3 the
# top-left and bottom-right corners of a box.
BOX_CORNER_LABELS = (2, 3)

VideoSource = str | Path | Sequence[Image.Image | np.ndarray] | VideoFrames


class Sam3VideoTracker:
    """Prompt SAM 3 on a video and track the masklets through it.

    Args:
        model: a video model from `build_sam3_video_model`.
        dtype: 'fp32' or 'bf16' (autocast on the model's device).
        memory: 'trim' drops tracker memory that propagation no longer reads,
            so memory stays flat on long videos. Refining a tracked object
            with points after a propagation then raises. 'full' keeps
            everything, as `sam3` does.
        frame_cache_size: preprocessed frames kept in memory.

    Example:
        >>> tracker = Sam3VideoTracker(model, dtype="bf16")
        >>> tracker.set_video("clip.mp4")
        >>> first = tracker.add_prompt(frame_index=0, text="person")
        >>> for frame_index, detections in tracker.propagate("forward"):
        ...     print(frame_index, detections.tracker_id)
    """

    def __init__(
        self,
        model,
        dtype: str | torch.dtype = "fp32",
        memory: str = "trim",
        frame_cache_size: int = 2,
    ):
        if memory not in MEMORY_POLICIES:
            raise ValueError(f"memory={memory!r} is invalid: use one of {MEMORY_POLICIES}")
        self.model = model
        self.dtype = resolve_dtype(dtype)
        self.memory = memory
        self.frame_cache_size = frame_cache_size
        self.device = next(model.parameters()).device
        trunk = model.detector.backbone.vision_backbone.trunk
        self.resolution = getattr(trunk, "input_size", PE_INPUT_SIZE)
        self.frames: VideoFrames | None = None
        self._state: dict | None = None
        self._class_name = VISUAL_PROMPT_TEXT
        self._prompt_frames: set[int] = set()
        self._propagated = False
        self._trimmer = MemoryTrimmer(model.tracker)

    # -- video -----------------------------------------------------------------

    def set_video(self, video: VideoSource) -> None:
        """Open `video` (mp4 path, frame folder, list of frames or `VideoFrames`).

        Frames are read lazily; opening an mp4 decodes it once to count frames.
        """
        self.close()
        frames = open_video_frames(video, self.resolution, self.frame_cache_size)
        state = {
            "image_size": self.model.image_size,
            "num_frames": len(frames),
            "orig_height": frames.height,
            "orig_width": frames.width,
            "constants": {},
        }
        with self._context():
            self.model._construct_initial_input_batch(state, frames)
        state.update(
            tracker_inference_states=[],
            tracker_metadata={},
            feature_cache={},
            cached_frame_outputs=RleFrameOutputs(),
            action_history=[],
            is_image_only=len(frames) == 1,
        )
        self.frames = frames
        self._state = state
        self._reset_bookkeeping()
        logger.info(
            "opened video %s: %d frames of %dx%d",
            frames.name,
            len(frames),
            frames.width,
            frames.height,
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
        """Ids of the masklets currently tracked."""
        metadata = self._require_state()["tracker_metadata"]
        return [int(obj_id) for obj_id in metadata.get("obj_ids_all_gpu", [])]

    @property
    def object_scores(self) -> dict[int, float]:
        """Detection score of each tracked masklet, the score SAM 3's VEval runs report."""
        metadata = self._require_state()["tracker_metadata"]
        scores = metadata.get("obj_id_to_score", {})
        return {int(k): float(v) for k, v in scores.items() if int(k) in self.object_ids}

    @property
    def class_name(self) -> str:
        """The noun phrase of the current concept prompt, or 'visual' for boxes only."""
        return self._class_name

    def reset(self) -> None:
        """Remove every prompt and result, keeping the video open."""
        state = self._require_state()
        with self._context():
            self.model.reset_state(state)
        self._reset_bookkeeping()

    def close(self) -> None:
        """Release the video and the session state."""
        if self.frames is not None:
            self.frames.close()
        self.frames = None
        self._state = None

    # -- prompts ---------------------------------------------------------------

    def add_prompt(
        self,
        frame_index: int = 0,
        text: str | None = None,
        boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        negative_boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
    ) -> sv.Detections:
        """Find every instance of a concept on `frame_index`.

        The concept is a noun phrase and/or example boxes, all on this frame.
        As in SAM 3, a new concept prompt starts the session over: earlier
        prompts, objects and results are dropped. During propagation a text
        prompt finds new instances on every frame; a boxes-only prompt finds
        them on the prompted frame only and tracks them elsewhere.

        Args:
            frame_index: frame of the prompt, 0 to num_frames - 1.
            text: noun phrase, e.g. "person". None means boxes only.
            boxes: positive example boxes, pixel xyxy [N, 4].
            negative_boxes: negative example boxes, pixel xyxy [M, 4].

        Returns:
            The detections on `frame_index`.
        """
        state = self._require_state()
        frame_index = self._check_frame(frame_index)
        text = _check_text(text)
        width, height = self.frame_size
        positives = validate_boxes_xyxy(boxes, width, height)
        negatives = validate_boxes_xyxy(negative_boxes, width, height)
        if text is None and len(positives) == 0:
            raise ValueError("no prompt: pass a text prompt and/or at least one positive box")

        with self._context():
            if len(positives) + len(negatives) == 0:
                _, outputs = self.model.add_prompt(state, frame_index, text_str=text)
            else:
                outputs = self._add_box_prompt(state, frame_index, text, positives, negatives)
        self._reset_bookkeeping()
        self._class_name = text or VISUAL_PROMPT_TEXT
        self._prompt_frames = {frame_index}
        detections = self._to_detections(outputs)
        logger.info(
            "prompt %r on frame %d: %d detections", self._class_name, frame_index, len(detections)
        )
        return detections

    def _add_box_prompt(self, state, frame_index, text, positives, negatives) -> dict:
        """Set a concept prompt with example boxes and run it on `frame_index`.

        `sam3`'s own `add_prompt` takes one box for a new visual prompt and
        drops the others. Here every box goes into the geometry prompt, as in
        the image model, with the positive boxes first.
        """
        model = self.model
        model.reset_state(state)
        batch = state["input_batch"]
        if text is not None:
            state["text_prompt"] = text
            batch.find_text_batch[0] = text
            text_id = model.TEXT_ID_FOR_TEXT
        else:
            state["text_prompt"] = None
            text_id = model.TEXT_ID_FOR_VISUAL
        for stage in batch.find_inputs:
            stage.text_ids[...] = text_id

        width, height = self.frame_size
        all_boxes = np.concatenate([positives, negatives])
        boxes_cxcywh = torch.from_numpy(xyxy_to_normalized_cxcywh(all_boxes, width, height))
        labels = torch.tensor([1] * len(positives) + [0] * len(negatives), dtype=torch.long)
        prompt = Prompt(
            box_embeddings=boxes_cxcywh[:, None].to(self.device),
            box_mask=None,
            box_labels=labels[:, None].to(self.device),
            point_embeddings=None,
            point_mask=None,
            point_labels=None,
        )
        state["per_frame_raw_box_input"][frame_index] = (boxes_cxcywh, labels)
        state["per_frame_visual_prompt"][frame_index] = prompt
        state["per_frame_geometric_prompt"][frame_index] = prompt
        outputs = model._run_single_frame_inference(state, frame_index, reverse=False)
        return model._postprocess_output(state, outputs)

    def add_object(
        self,
        frame_index: int,
        box: Sequence[float] | np.ndarray | None = None,
        points: Sequence[Sequence[float]] | np.ndarray | None = None,
        labels: Sequence[int] | None = None,
        obj_id: int | None = None,
    ) -> sv.Detections:
        """Add one object to track, or refine a tracked one, with a box and/or points.

        This is the tracker's instance prompt (SAM 2 style), separate from the
        concept prompt: it segments one object on `frame_index`.

        Args:
            frame_index: frame of the prompt.
            box: the object's box, pixel xyxy [4].
            points: pixel xy [K, 2] clicks.
            labels: [K] 1 for a positive click, 0 for a negative one.
            obj_id: id of a tracked object to refine; None adds a new object.

        Returns:
            The detections on `frame_index`, including the other objects.
        """
        state = self._require_state()
        frame_index = self._check_frame(frame_index)
        coordinates, point_labels = self._instance_points(box, points, labels)
        known = obj_id is not None and int(obj_id) in self.object_ids
        if known and self._trimmer.trimmed_frames:
            raise ValueError(
                f"cannot refine object {obj_id}: its tracker memory was trimmed during "
                "propagation. Create the tracker with memory='full' to refine objects "
                "after propagating"
            )
        if obj_id is None:
            metadata = state["tracker_metadata"]
            obj_id = int(metadata.get("max_obj_id", -1)) + 1
        # The `sam3` model reads the cached results of every frame that it
        # propagates an added object through; frames without results have none.
        for index in range(self.num_frames):
            state["cached_frame_outputs"].setdefault(index, {})

        with self._context():
            _, outputs = self.model.add_prompt(
                state,
                frame_index,
                points=torch.from_numpy(coordinates),
                point_labels=torch.from_numpy(point_labels),
                obj_id=int(obj_id),
                rel_coordinates=True,
            )
        self._prompt_frames.add(frame_index)
        logger.info("object %d prompted on frame %d", obj_id, frame_index)
        return self._to_detections(outputs)

    def _instance_points(self, box, points, labels) -> tuple[np.ndarray, np.ndarray]:
        width, height = self.frame_size
        coordinates, point_labels = [], []
        if box is not None:
            box = validate_boxes_xyxy(box, width, height)
            if len(box) != 1:
                raise ValueError(f"box must be one pixel xyxy box [4], got {len(box)} boxes")
            coordinates.append(xy_to_normalized(box.reshape(2, 2), width, height))
            point_labels.extend(BOX_CORNER_LABELS)
        if points is not None:
            array = np.asarray(points, dtype=np.float32).reshape(-1, 2)
            if labels is None or len(labels) != len(array):
                raise ValueError(
                    f"got {len(array)} points and {0 if labels is None else len(labels)} "
                    "labels: pass one label (1 positive, 0 negative) per point"
                )
            if not set(int(label) for label in labels) <= {0, 1}:
                raise ValueError(f"point labels {list(labels)} are invalid: use 1 or 0")
            outside = (array < 0).any(axis=1) | (array[:, 0] >= width) | (array[:, 1] >= height)
            if outside.any():
                raise ValueError(
                    f"point {array[outside][0].tolist()} lies outside the {width}x{height} "
                    "frame: points are pixel x,y of the original frame"
                )
            coordinates.append(xy_to_normalized(array, width, height))
            point_labels.extend(int(label) for label in labels)
        if not coordinates:
            raise ValueError("no object prompt: pass a box and/or points")
        return np.concatenate(coordinates), np.asarray(point_labels, dtype=np.int32)

    def remove_object(self, obj_id: int) -> None:
        """Stop tracking `obj_id` and drop it from the results of every frame."""
        state = self._require_state()
        if int(obj_id) not in self.object_ids:
            raise ValueError(
                f"object {obj_id} is not tracked: tracked objects are {self.object_ids}"
            )
        with self._context():
            self.model.remove_object(state, int(obj_id), is_user_action=True)
        if not self._propagated:
            # `sam3` replays cached results after a removal instead of
            # propagating; before the first propagation there is nothing to
            # replay, so the next propagation must run in full.
            state["action_history"].pop()
        logger.info("removed object %d", obj_id)

    # -- propagation -----------------------------------------------------------

    def propagate(
        self,
        direction: str = "forward",
        start_frame: int | None = None,
        max_frames: int | None = None,
    ) -> Iterator[tuple[int, sv.Detections]]:
        """Track the prompted objects through the video, yielding each frame's results.

        Args:
            direction: 'forward', 'backward' (towards frame 0) or 'both'
                (forward, then backward from the same start frame).
            start_frame: first frame; defaults to the earliest prompted frame.
                The backward pass starts at the frame before it.
            max_frames: frames to track in each direction; None means all.

        Yields:
            (frame_index, detections). With SAM 3's hotstart (temporal
            disambiguation), results arrive 15 frames behind the frame being
            tracked, in frame order.
        """
        state = self._require_state()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r} is invalid: use one of {DIRECTIONS}")
        if not self._prompt_frames:
            raise ValueError("no prompt: call add_prompt or add_object before propagate")
        start = min(self._prompt_frames) if start_frame is None else start_frame
        start = self._check_frame(start)
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames={max_frames} must be 0 or more, or None for all")
        passes = {"forward": [False], "backward": [True], "both": [False, True]}[direction]
        for reverse in passes:
            yield from self._propagate_pass(state, start, max_frames, reverse)

    def _propagate_pass(self, state, start, max_frames, reverse):
        with self._context():
            steps = self.model.propagate_in_video(
                state,
                start_frame_idx=start,
                max_frame_num_to_track=max_frames,
                reverse=reverse,
            )
        self._trimmer.start_pass(state["tracker_inference_states"])
        self._propagated = True
        try:
            while True:
                with self._context():
                    step = next(steps, None)
                if step is None:
                    return
                if self.memory == "trim":
                    self._trimmer.trim(state["tracker_inference_states"])
                frame_index, outputs = step
                yield frame_index, self._to_detections(outputs)
        finally:
            with self._context():
                steps.close()

    # -- helpers ---------------------------------------------------------------

    def _context(self):
        return inference_context(self.device, self.dtype, keep_float32=True)

    def _reset_bookkeeping(self) -> None:
        self._class_name = VISUAL_PROMPT_TEXT
        self._prompt_frames = set()
        self._propagated = False
        self._trimmer = MemoryTrimmer(self.model.tracker)

    def _require_frames(self) -> VideoFrames:
        if self.frames is None:
            raise RuntimeError("no video is set: call set_video(video) first")
        return self.frames

    def _require_state(self) -> dict:
        self._require_frames()
        return self._state

    def _check_frame(self, frame_index) -> int:
        try:
            return self._require_frames().check_index(frame_index)
        except (IndexError, TypeError) as error:
            raise ValueError(f"invalid prompt frame: {error}") from error

    def _to_detections(self, outputs: dict) -> sv.Detections:
        width, height = self.frame_size
        obj_ids = np.asarray(outputs["out_obj_ids"], dtype=int)
        masks = np.asarray(outputs["out_binary_masks"], dtype=bool).reshape(-1, height, width)
        xyxy = normalized_xywh_to_xyxy(outputs["out_boxes_xywh"], width, height)
        return sv.Detections(
            xyxy=xyxy,
            mask=masks,
            confidence=np.asarray(outputs["out_probs"], dtype=np.float32).reshape(-1),
            class_id=np.zeros(len(obj_ids), dtype=int),
            tracker_id=obj_ids,
            data={"class_name": np.array([self._class_name] * len(obj_ids))},
        )
