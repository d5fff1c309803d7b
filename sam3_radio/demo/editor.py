"""Read the image and the example boxes from a `gr.ImageEditor` value.

The editor keeps the uploaded image as its background and the user's brush
strokes in transparent layers. Two brush colours carry the box label: strokes
in `POSITIVE_COLOR` are positive examples and strokes in `NEGATIVE_COLOR` are
negative examples. Each connected stroke becomes one box, the bounding
rectangle of its pixels, so a user may outline an object or scribble over it.
Strokes of both colours in every layer are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from sam3_radio.predict.io import to_rgb

POSITIVE_COLOR = (34, 197, 94)
NEGATIVE_COLOR = (239, 68, 68)
# Strokes whose bounding box is smaller than this on either side, in pixels of
# the layer, are treated as stray clicks and ignored.
MIN_BOX_SIDE = 3


@dataclass
class EditorPrompt:
    """The image and example boxes read from the editor. Boxes are pixel xyxy [N, 4]."""

    image: Image.Image
    boxes: np.ndarray
    negative_boxes: np.ndarray


def css_rgb(color: tuple[int, int, int]) -> str:
    """Return `color` in the CSS form the editor's brush takes, e.g. 'rgb(34, 197, 94)'."""
    return f"rgb({color[0]}, {color[1]}, {color[2]})"


def _as_array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGBA"))
    array = np.asarray(image)
    if array.ndim == 2:
        return np.dstack([array, array, array, np.full_like(array, 255)])
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"editor layer must have shape [H, W, 3] or [H, W, 4], got {array.shape}")
    if array.shape[2] == 3:
        # NOTE: a layer without alpha cannot show where the strokes are, so
        # every non-black pixel is taken as painted.
        alpha = np.where(array.any(axis=2), 255, 0).astype(array.dtype)
        return np.dstack([array, alpha])
    return array


def _background_image(background) -> Image.Image:
    if isinstance(background, Image.Image):
        return to_rgb(background)
    array = np.asarray(background)
    if array.dtype != np.uint8:
        raise ValueError(f"editor background must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 4:
        return to_rgb(Image.fromarray(array, mode="RGBA"))
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(array, mode="RGB")
    if array.ndim == 2:
        return Image.fromarray(array, mode="L").convert("RGB")
    raise ValueError(f"editor background must be an [H, W, 3|4] image, got {array.shape}")


def label_stroke_pixels(layer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the painted pixels of an RGBA layer [H, W, 4] by nearest brush colour.

    Returns:
        Bool masks [H, W] of the positive and the negative strokes.
    """
    painted = layer[..., 3] > 0
    rgb = layer[..., :3].astype(np.int32)
    positive_distance = ((rgb - np.array(POSITIVE_COLOR)) ** 2).sum(axis=2)
    negative_distance = ((rgb - np.array(NEGATIVE_COLOR)) ** 2).sum(axis=2)
    positive = painted & (positive_distance <= negative_distance)
    negative = painted & (negative_distance < positive_distance)
    return positive, negative


def stroke_boxes(strokes: np.ndarray) -> np.ndarray:
    """Return the bounding box of each 8-connected stroke in a bool mask [H, W].

    Returns:
        Pixel xyxy float32 [N, 4], where x1 and y1 are one past the last stroke
        pixel, in top-to-bottom then left-to-right order of the strokes.
    """
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        strokes.astype(np.uint8), connectivity=8
    )
    boxes = []
    # Label 0 is the unpainted background.
    for label in range(1, count):
        x, y, width, height = stats[label, :4]
        if width < MIN_BOX_SIDE or height < MIN_BOX_SIDE:
            continue
        boxes.append((x, y, x + width, y + height))
    boxes.sort(key=lambda box: (box[1], box[0]))
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def parse_editor_value(value: Mapping | None) -> EditorPrompt:
    """Read the image and the positive and negative example boxes from an editor value.

    Args:
        value: the `gr.ImageEditor` value, a dict with 'background' (the
            uploaded image) and 'layers' (RGBA stroke layers), as numpy
            arrays or PIL images.

    Returns:
        The background as an RGB PIL image and the boxes in its pixel xyxy
        coordinates. A layer of another size than the background (a canvas
        scaled for display) has its boxes scaled to the background.

    Raises:
        ValueError: no image was uploaded, or an array has an unusable shape.
    """
    if value is None or value.get("background") is None:
        raise ValueError("no image: upload an image or pick a sample first")
    image = _background_image(value["background"])
    width, height = image.size

    positives, negatives = [], []
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        layer = _as_array(layer)
        scale = np.array(
            [width / layer.shape[1], height / layer.shape[0]] * 2, dtype=np.float32
        )
        positive, negative = label_stroke_pixels(layer)
        positives.append(stroke_boxes(positive) * scale)
        negatives.append(stroke_boxes(negative) * scale)

    return EditorPrompt(
        image=image,
        boxes=np.concatenate(positives) if positives else np.zeros((0, 4), np.float32),
        negative_boxes=np.concatenate(negatives) if negatives else np.zeros((0, 4), np.float32),
    )


def limit_image_side(prompt: EditorPrompt, max_side: int) -> tuple[EditorPrompt, float]:
    """Downscale the image and its boxes so that the longer image side is at most `max_side`.

    Returns:
        The prompt, unchanged when the image is small enough, and the scale
        factor applied (1.0 when unchanged).
    """
    width, height = prompt.image.size
    longer = max(width, height)
    if longer <= max_side:
        return prompt, 1.0
    scale = max_side / longer
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = prompt.image.resize(size, Image.Resampling.BILINEAR)
    return (
        EditorPrompt(
            image=image,
            boxes=prompt.boxes * np.float32(scale),
            negative_boxes=prompt.negative_boxes * np.float32(scale),
        ),
        scale,
    )
