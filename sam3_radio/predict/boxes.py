"""Box formats. The public API takes pixel xyxy boxes; SAM 3 wants other forms.

- Image concept prompts: normalised cxcywh (`Sam3Image` geometry encoder).
- Video concept prompts: normalised xywh; video results: normalised xywh.
- Interactive (SAM 1-style) predictor: pixel xyxy.
- Video tracker prompts: normalised xy points, a box as its two corners.
This module owns every conversion between them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse 'x0,y0,x1,y1' (pixels) into four floats."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 4:
        raise ValueError(f"invalid box {text!r}: expected four numbers x0,y0,x1,y1")
    try:
        x0, y0, x1, y1 = (float(part) for part in parts)
    except ValueError as error:
        raise ValueError(f"invalid box {text!r}: expected four numbers x0,y0,x1,y1") from error
    return x0, y0, x1, y1


def validate_boxes_xyxy(
    boxes: Sequence[Sequence[float]] | np.ndarray | None, width: int, height: int
) -> np.ndarray:
    """Check pixel xyxy boxes against a `width` x `height` image and clip them to it.

    Returns a float32 array of shape [N, 4]. A box with x1 < x0 or y1 < y0, a
    non-finite coordinate, or no overlap with the image raises ValueError. A box
    partly outside the image is clipped to it.
    """
    if boxes is None:
        return np.zeros((0, 4), dtype=np.float32)
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4] (pixel xyxy), got {array.shape}")
    for box in array:
        text = ",".join(f"{value:g}" for value in box)
        if not np.isfinite(box).all():
            raise ValueError(f"box {text} has a non-finite coordinate")
        if box[2] < box[0] or box[3] < box[1]:
            raise ValueError(
                f"box {text} has x1 < x0 or y1 < y0: boxes are pixel x0,y0,x1,y1 "
                "with the top-left corner first"
            )
        if box[0] >= width or box[1] >= height or box[2] <= 0 or box[3] <= 0:
            raise ValueError(
                f"box {text} lies outside the {width}x{height} image: "
                "boxes are pixel coordinates of the original image"
            )
    clipped = array.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    return clipped.astype(np.float32)


def xyxy_to_normalized_cxcywh(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Convert pixel xyxy [N, 4] to normalised cxcywh [N, 4] in [0, 1]."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scale = np.array([width, height, width, height], dtype=np.float32)
    x0, y0, x1, y1 = (boxes / scale).T
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=1)


def xyxy_to_normalized_xywh(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Convert pixel xyxy [N, 4] to normalised xywh [N, 4] (top-left corner, size)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scale = np.array([width, height, width, height], dtype=np.float32)
    x0, y0, x1, y1 = (boxes / scale).T
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def normalized_cxcywh_to_xyxy(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Convert normalised cxcywh [N, 4] to pixel xyxy [N, 4]."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    cx, cy, w, h = boxes.T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return xyxy * np.array([width, height, width, height], dtype=np.float32)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """Convert pixel xyxy [N, 4] to pixel xywh [N, 4] (COCO's box format)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def normalized_xywh_to_xyxy(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Convert normalised xywh [N, 4] (top-left corner, size) to pixel xyxy [N, 4]."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x0, y0, w, h = boxes.T
    xyxy = np.stack([x0, y0, x0 + w, y0 + h], axis=1)
    return xyxy * np.array([width, height, width, height], dtype=np.float32)


def xy_to_normalized(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Convert pixel xy points [N, 2] to normalised xy [N, 2] in [0, 1]."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    return points / np.array([width, height], dtype=np.float32)
