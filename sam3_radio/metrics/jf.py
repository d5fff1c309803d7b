"""J&F for semi-supervised video object segmentation (DAVIS, SA-V).

- J (region similarity) is the IoU of the predicted and ground-truth masks of
  one object in one frame, and 1 when both are empty.
- F (boundary accuracy) is the F-measure of the two masks' one-pixel
  boundaries. A boundary pixel counts as matched when the other boundary
  passes within ceil(0.008 x image diagonal) pixels, the DAVIS 2017
  tolerance, measured with a disk-shaped dilation.
- An object's J and F are the means over its annotated frames, without the
  first and the last (the frame given as the prompt and the frame after
  which propagation stops), on a 0-100 scale. A video's J and F are the means
  over its objects, and the dataset's the means over all objects of all
  videos. J&F is (J + F) / 2 at each level.

These follow the DAVIS 2017 semi-supervised protocol as SA-V's evaluator
(`sav_dataset/utils/sav_benchmark.py` in facebookresearch/sam2) applies it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from skimage.morphology import disk

BOUNDARY_TOLERANCE = 0.008


def region_similarity(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    """Return J, the IoU of two bool [H, W] masks, defined as 1 when both are empty."""
    _check_pair(prediction, ground_truth)
    prediction, ground_truth = prediction.astype(bool), ground_truth.astype(bool)
    union = np.logical_or(prediction, ground_truth).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(prediction, ground_truth).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """Return the one-pixel boundary of a bool [H, W] mask.

    A pixel is on the boundary when it differs from its right, lower or
    lower-right neighbour. Pixels of the last row compare only with their
    right neighbour, pixels of the last column only with their lower
    neighbour, and the bottom-right pixel is never a boundary. This is the
    Berkeley `seg2bmap` rule that DAVIS uses, so a mask touching the right
    or bottom edge has no boundary along that edge.
    """
    mask = mask.astype(bool)
    right = np.zeros_like(mask)
    below = np.zeros_like(mask)
    diagonal = np.zeros_like(mask)
    right[:, :-1] = mask[:, 1:]
    below[:-1, :] = mask[1:, :]
    diagonal[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ right) | (mask ^ below) | (mask ^ diagonal)
    boundary[-1, :] = mask[-1, :] ^ right[-1, :]
    boundary[:, -1] = mask[:, -1] ^ below[:, -1]
    boundary[-1, -1] = False
    return boundary


def boundary_radius(height: int, width: int, tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Return the boundary match radius in pixels for an image of this size."""
    return int(math.ceil(tolerance * math.hypot(height, width)))


def boundary_f_measure(
    prediction: np.ndarray, ground_truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE
) -> float:
    """Return F, the boundary F-measure of two bool [H, W] masks.

    Precision is the share of predicted boundary pixels within the radius of
    the ground-truth boundary, recall the converse. With both boundaries
    empty F is 1. With only one empty, precision and recall are (1, 0) or
    (0, 1), so F is 0.
    """
    _check_pair(prediction, ground_truth)
    predicted_boundary = boundary_map(prediction)
    true_boundary = boundary_map(ground_truth)
    num_predicted = int(predicted_boundary.sum())
    num_true = int(true_boundary.sum())
    if num_predicted == 0 and num_true == 0:
        return 1.0
    if num_predicted == 0 or num_true == 0:
        return 0.0

    radius = boundary_radius(*prediction.shape, tolerance)
    kernel = disk(radius).astype(np.uint8)
    predicted_dilated = cv2.dilate(predicted_boundary.astype(np.uint8), kernel) > 0
    true_dilated = cv2.dilate(true_boundary.astype(np.uint8), kernel) > 0
    precision = (predicted_boundary & true_dilated).sum() / num_predicted
    recall = (true_boundary & predicted_dilated).sum() / num_true
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _check_pair(prediction: np.ndarray, ground_truth: np.ndarray) -> None:
    if prediction.shape != ground_truth.shape or prediction.ndim != 2:
        raise ValueError(
            f"masks must be [H, W] of one shape, got prediction {prediction.shape} "
            f"and ground truth {ground_truth.shape}: resize predictions to the frame size"
        )


@dataclass
class ObjectScore:
    """J and F of one object over its scored frames, on a 0-100 scale."""

    video: str
    object_id: str
    j: float
    f: float
    num_frames: int

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


def score_object(
    video: str,
    object_id: str,
    frames: Sequence[tuple[np.ndarray | None, np.ndarray]],
    skip_first_and_last: bool = True,
) -> ObjectScore:
    """Score one object from its (prediction, ground truth) masks per annotated frame.

    Frames come in time order. A missing prediction (None) counts as an empty
    mask. With `skip_first_and_last`, the first and the last annotated frames
    are not scored.
    """
    if skip_first_and_last:
        frames = frames[1:-1]
    if not frames:
        raise ValueError(
            f"object {object_id} of video {video} has no frame to score: it needs at least "
            "3 annotated frames when the first and last are skipped"
        )
    j_values, f_values = [], []
    for prediction, ground_truth in frames:
        if prediction is None:
            prediction = np.zeros_like(ground_truth, dtype=bool)
        j_values.append(region_similarity(prediction, ground_truth))
        f_values.append(boundary_f_measure(prediction, ground_truth))
    return ObjectScore(
        video, object_id, 100 * float(np.mean(j_values)), 100 * float(np.mean(f_values)), len(frames)
    )


@dataclass
class JFSummary:
    """J&F per object, per video and over the dataset (0-100)."""

    objects: list[ObjectScore]
    videos: dict[str, dict[str, float]] = field(default_factory=dict)
    j: float = float("nan")
    f: float = float("nan")

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2

    def as_dict(self) -> dict:
        return {
            "J&F": self.jf,
            "J": self.j,
            "F": self.f,
            "num_objects": len(self.objects),
            "num_videos": len(self.videos),
            "videos": self.videos,
            "objects": [
                {
                    "video": item.video,
                    "object_id": item.object_id,
                    "J&F": item.jf,
                    "J": item.j,
                    "F": item.f,
                    "num_frames": item.num_frames,
                }
                for item in self.objects
            ],
        }


def summarize_jf(objects: Iterable[ObjectScore]) -> JFSummary:
    """Average object scores per video and over all objects of all videos."""
    objects = list(objects)
    if not objects:
        raise ValueError("no object was scored: the ground truth has no object to evaluate")
    by_video: dict[str, list[ObjectScore]] = {}
    for item in objects:
        by_video.setdefault(item.video, []).append(item)
    videos: dict[str, dict[str, float]] = {}
    for video, items in by_video.items():
        j = float(np.mean([item.j for item in items]))
        f = float(np.mean([item.f for item in items]))
        videos[video] = {"J&F": (j + f) / 2, "J": j, "F": f, "num_objects": len(items)}
    return JFSummary(
        objects=objects,
        videos=videos,
        j=float(np.mean([item.j for item in objects])),
        f=float(np.mean([item.f for item in objects])),
    )


def score_video_masks(
    video: str,
    predictions: Mapping[str, Mapping[int, np.ndarray]],
    ground_truths: Mapping[str, Mapping[int, np.ndarray]],
    skip_first_and_last: bool = True,
) -> list[ObjectScore]:
    """Score every ground-truth object of one video.

    Args:
        predictions: object id -> frame index -> bool [H, W] mask. Objects or
            frames that are absent count as empty predictions. Predictions
            for frames without a ground-truth mask are ignored.
        ground_truths: object id -> annotated frame index -> bool [H, W] mask.
    """
    scores = []
    for object_id in sorted(ground_truths):
        annotated = ground_truths[object_id]
        predicted = predictions.get(object_id, {})
        frames = [(predicted.get(index), annotated[index]) for index in sorted(annotated)]
        scores.append(score_object(video, object_id, frames, skip_first_and_last))
    return scores
