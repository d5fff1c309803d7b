"""The two ways the video benchmarks drive a tracker, as plain callables.

- A concept tracker takes the frames and a noun phrase, prompts frame 0 and
  propagates forward, as SAM 3's VEval runs do. It returns masks per object
  and frame, and one score per object.
- An object tracker takes the frames and one prompt per object (a mask and
  its box on the object's first annotated frame), as semi-supervised VOS
  does, and returns masks per object and frame.

`Sam3ConceptTracker` implements the first with `Sam3VideoTracker` (detector
and tracker), `Sam3ObjectTracker` the second with `Sam3InstanceTracker`
(tracker only, SAM 2 style). Tests and other trackers can pass any callable
of the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

# object id -> frame index -> bool [H, W] mask
Masklets = dict[int, dict[int, np.ndarray]]


@dataclass(frozen=True)
class ObjectPrompt:
    """The prompt of one object: its mask and pixel xyxy box on one frame."""

    object_id: int
    frame_index: int
    mask: np.ndarray
    box: tuple[float, float, float, float]


ConceptTrackFn = Callable[[Sequence[np.ndarray], str], tuple[Masklets, dict[int, float]]]
ObjectTrackFn = Callable[[Sequence[np.ndarray], Sequence[ObjectPrompt]], Masklets]


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Return the pixel xyxy box around a bool [H, W] mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1)


def _collect(steps, masklets: Masklets, keep: set[int] | None = None) -> dict[int, list[float]]:
    confidences: dict[int, list[float]] = {}
    for frame_index, detections in steps:
        for index, obj_id in enumerate(detections.tracker_id):
            obj_id = int(obj_id)
            if keep is not None and obj_id not in keep:
                continue
            mask = detections.mask[index]
            if mask.any():
                masklets.setdefault(obj_id, {})[int(frame_index)] = mask
            confidences.setdefault(obj_id, []).append(float(detections.confidence[index]))
    return confidences


class Sam3ConceptTracker:
    """Concept tracking with `Sam3VideoTracker`: text on frame 0, then forward propagation.

    The score of a masklet is the tracker's object score, the score SAM 3's
    VEval runs write. A masklet without one falls back to its mean per-frame
    confidence.
    """

    def __init__(self, tracker):
        self.tracker = tracker

    def __call__(self, frames: Sequence[np.ndarray], text: str) -> tuple[Masklets, dict[int, float]]:
        self.tracker.set_video(list(frames))
        try:
            first = self.tracker.add_prompt(frame_index=0, text=text)
            masklets: Masklets = {}
            confidences = _collect([(0, first)], masklets)
            for obj_id, values in _collect(self.tracker.propagate("forward"), masklets).items():
                confidences.setdefault(obj_id, []).extend(values)
            object_scores = self.tracker.object_scores
        finally:
            self.tracker.close()
        scores = {
            obj_id: object_scores.get(obj_id, float(np.mean(confidences.get(obj_id, [0.0]))))
            for obj_id in masklets
        }
        return masklets, scores


OBJECT_PROMPTS = ("mask", "box")


class Sam3ObjectTracker:
    """Semi-supervised tracking with `Sam3InstanceTracker`: one prompt per object.

    Args:
        tracker: a `Sam3InstanceTracker`.
        prompt: 'mask' prompts each object with its mask, 'box' with the box
            around that mask.

    Each object is tracked forward from the frame of its prompt.
    """

    def __init__(self, tracker, prompt: str = "mask"):
        if prompt not in OBJECT_PROMPTS:
            raise ValueError(f"prompt={prompt!r} is invalid: use one of {OBJECT_PROMPTS}")
        self.tracker = tracker
        self.prompt = prompt

    def __call__(self, frames: Sequence[np.ndarray], prompts: Sequence[ObjectPrompt]) -> Masklets:
        self.tracker.set_video(list(frames))
        try:
            for prompt in prompts:
                if self.prompt == "mask":
                    self.tracker.add_mask(prompt.frame_index, prompt.object_id, prompt.mask)
                else:
                    self.tracker.add_box(prompt.frame_index, prompt.object_id, prompt.box)
            masklets: Masklets = {}
            _collect(self.tracker.propagate("forward"), masklets, {p.object_id for p in prompts})
        finally:
            self.tracker.close()
        return masklets
