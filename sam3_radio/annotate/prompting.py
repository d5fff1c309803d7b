"""Prompt SAM 3 on one image and return its journal record.

One image is encoded once (`Sam3ImagePredictor.set_image`), then every prompt
reuses the features: in `boxes` mode all valid boxes go through the
interactive decoder in batches of `batch_size`, and in `concept` mode each
category is one concept prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv
from PIL import Image

from sam3_radio.annotate.config import AnnotateSettings
from sam3_radio.annotate.dataset import BoxPrompt, ImageTask, SkippedItem
from sam3_radio.predict.boxes import xyxy_to_xywh
from sam3_radio.predict.export import encode_rle
from sam3_radio.predict.image import Sam3ImagePredictor

SCORE_DIGITS = 5
BOX_DIGITS = 2


class ImageSkipError(ValueError):
    """Raised when a whole image must be skipped, e.g. its size disagrees with the annotations."""


def check_image_size(task: ImageTask, image: Image.Image) -> None:
    """Raise `ImageSkipError` if the image size differs from the size in the annotations."""
    width, height = image.size
    if task.width is None or (task.width, task.height) == (width, height):
        return
    raise ImageSkipError(
        f"image is {width}x{height} but the annotations give {task.width}x{task.height}: "
        "fix the width and height in the annotations or the image file"
    )


def valid_boxes(
    boxes: Sequence[BoxPrompt], width: int, height: int, skipped: list[SkippedItem], document: dict
) -> tuple[list[BoxPrompt], int]:
    """Clip boxes to the image and drop those outside it or of zero area.

    Returns the kept boxes (clipped) and how many of them were clipped.
    """
    kept: list[BoxPrompt] = []
    clipped_count = 0
    for box in boxes:
        x0, y0, x1, y1 = box.xyxy
        annotation_id = document["annotations"][box.index].get("id", box.index)
        item = f"annotation {annotation_id}"
        text = ",".join(f"{value:g}" for value in box.xyxy)
        if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
            skipped.append(
                SkippedItem(item, f"box {text} (xyxy) lies outside the {width}x{height} image")
            )
            continue
        clipped = (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))
        if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
            skipped.append(SkippedItem(item, f"box {text} (xyxy) has zero area inside the image"))
            continue
        if clipped != (x0, y0, x1, y1):
            clipped_count += 1
        kept.append(BoxPrompt(box.index, box.slot, box.category_id, clipped))
    return kept, clipped_count


def _mask_entry(mask: np.ndarray, score: float) -> dict[str, Any]:
    return {
        "segmentation": encode_rle(mask),
        "area": int(mask.sum()),
        "score": round(float(score), SCORE_DIGITS),
    }


def segment_boxes(
    predictor: Sam3ImagePredictor, boxes: list[BoxPrompt], batch_size: int
) -> list[dict[str, Any]]:
    """Return one mask entry per box, in box order, from `predict_boxes` batches."""
    entries = []
    for start in range(0, len(boxes), batch_size):
        batch = boxes[start : start + batch_size]
        detections = predictor.predict_boxes(
            np.array([box.xyxy for box in batch], dtype=np.float32)
        )
        for box, mask, score in zip(batch, detections.mask, detections.confidence):
            entries.append({"slot": box.slot, **_mask_entry(mask, score)})
    return entries


def _concept_categories(
    boxes: list[BoxPrompt], names: dict[int, str], settings: AnnotateSettings
) -> list[int]:
    if settings.concept_categories == "all":
        return sorted(names)
    return sorted({box.category_id for box in boxes})


def _drop_duplicates(
    detections: sv.Detections, given: np.ndarray, threshold: float | None
) -> sv.Detections:
    if threshold is None or len(detections) == 0 or len(given) == 0:
        return detections
    overlap = sv.box_iou_batch(detections.xyxy, given).max(axis=1)
    return detections[overlap < threshold]


def find_concepts(
    predictor: Sam3ImagePredictor,
    boxes: list[BoxPrompt],
    names: dict[int, str],
    settings: AnnotateSettings,
    skipped: list[SkippedItem],
    image_label: str,
) -> list[dict[str, Any]]:
    """Return pre-label entries for every instance found per category, in category order."""
    prelabels = []
    for category_id in _concept_categories(boxes, names, settings):
        given = np.array(
            [box.xyxy for box in boxes if box.category_id == category_id], dtype=np.float32
        ).reshape(-1, 4)
        text = names.get(category_id, "").strip() if settings.concept_text else None
        examples = given if settings.concept_example_boxes else np.zeros((0, 4), np.float32)
        if settings.concept_text and not text:
            skipped.append(
                SkippedItem(f"{image_label} category {category_id}", "category has an empty name")
            )
            text = None
        if text is None and len(examples) == 0:
            continue
        detections = predictor.predict(
            text=text, boxes=examples, threshold=settings.concept_threshold
        )
        detections = _drop_duplicates(detections, given, settings.duplicate_iou)
        xywh = xyxy_to_xywh(detections.xyxy) if len(detections) else np.zeros((0, 4))
        for position in range(len(detections)):
            entry = _mask_entry(detections.mask[position], detections.confidence[position])
            prelabels.append(
                {
                    "category_id": category_id,
                    "bbox": [round(float(value), BOX_DIGITS) for value in xywh[position]],
                    **entry,
                }
            )
    return prelabels


def annotate_image(
    predictor: Sam3ImagePredictor,
    task: ImageTask,
    image: Image.Image,
    document: dict[str, Any],
    names: dict[int, str],
    settings: AnnotateSettings,
) -> dict[str, Any]:
    """Prompt SAM 3 on one image and return its journal record.

    The image is encoded only when it has something to prompt, so an image
    without valid boxes costs no encoder pass.
    """
    check_image_size(task, image)
    width, height = image.size
    skipped: list[SkippedItem] = []
    boxes, clipped = valid_boxes(task.boxes, width, height, skipped, document)
    record: dict[str, Any] = {
        "image": task.key,
        "size": [width, height],
        "boxes": len(boxes),
        "clipped": clipped,
    }
    if settings.mode == "boxes":
        record["masks"] = []
        if boxes:
            predictor.set_image(image)
            record["masks"] = segment_boxes(predictor, boxes, settings.batch_size)
    else:
        record["prelabels"] = []
        if boxes or settings.concept_categories == "all":
            predictor.set_image(image)
            record["prelabels"] = find_concepts(
                predictor, boxes, names, settings, skipped, f"image {task.key}"
            )
    record["skipped"] = [item.as_dict() for item in skipped]
    return record
