"""Read a COCO JSON file of boxes (with or without masks) into a `BoxDataset`."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

from sam3_radio.annotate.dataset import BoxDataset, BoxPrompt, ImageTask, SkippedItem

logger = logging.getLogger(__name__)


class AnnotationFileError(ValueError):
    """Raised when an annotation file cannot be read at all."""


def read_json_document(path: Path) -> dict[str, Any]:
    """Read a COCO JSON file, raising `AnnotationFileError` when it is unusable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise AnnotationFileError(f"annotation file {path} not found") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationFileError(
            f"cannot read annotation file {path}: {error}. Pass a COCO JSON file"
        ) from error
    if not isinstance(document, dict):
        raise AnnotationFileError(
            f"annotation file {path} contains a JSON {type(document).__name__}, "
            "not a COCO object with images, categories and annotations"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(document.get(key, []), list):
            raise AnnotationFileError(f"annotation file {path}: {key!r} is not a list")
    return document


def coco_bbox_to_xyxy(bbox: Any) -> tuple[float, float, float, float]:
    """Convert a COCO pixel xywh box to pixel xyxy, raising ValueError on a bad box."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"bbox {bbox!r} is not four numbers [x, y, width, height]")
    try:
        x, y, width, height = (float(value) for value in bbox)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bbox {bbox!r} is not four numbers [x, y, width, height]") from error
    if not all(math.isfinite(value) for value in (x, y, width, height)):
        raise ValueError(f"bbox {bbox!r} has a non-finite value")
    if width <= 0 or height <= 0:
        raise ValueError(f"bbox {bbox!r} has zero area")
    return x, y, x + width, y + height


def has_segmentation(annotation: dict[str, Any]) -> bool:
    """Return True when a COCO annotation carries a non-empty segmentation."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        return bool(segmentation.get("counts"))
    if isinstance(segmentation, list):
        return any(len(polygon) >= 6 for polygon in segmentation if isinstance(polygon, list))
    return False


def _image_size(record: dict[str, Any]) -> tuple[int | None, int | None]:
    try:
        width, height = int(record["width"]), int(record["height"])
    except (KeyError, TypeError, ValueError):
        return None, None
    if width <= 0 or height <= 0:
        return None, None
    return width, height


def _read_images(
    images: list[Any], image_root: Path, skipped: list[SkippedItem]
) -> dict[int, ImageTask]:
    ids = Counter(record.get("id") for record in images if isinstance(record, dict))
    tasks: dict[int, ImageTask] = {}
    for position, record in enumerate(images):
        if not isinstance(record, dict) or not isinstance(record.get("id"), int):
            skipped.append(SkippedItem(f"images[{position}]", "image record has no integer 'id'"))
            continue
        image_id = record["id"]
        name = f"image {image_id}"
        if ids[image_id] > 1:
            skipped.append(
                SkippedItem(
                    f"{name} (images[{position}])",
                    f"duplicate image id: {ids[image_id]} images share it, so their "
                    "annotations cannot be told apart",
                )
            )
            continue
        file_name = record.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            skipped.append(SkippedItem(name, "image record has no 'file_name'"))
            continue
        width, height = _image_size(record)
        tasks[image_id] = ImageTask(str(image_id), image_id, image_root / file_name, width, height)
    return tasks


def read_coco(path: Path, image_root: Path, keep_existing_masks: bool = True) -> BoxDataset:
    """Read a COCO JSON file and the images it lists under `image_root`.

    Images with duplicate ids, annotations whose image or category is unknown,
    crowd annotations and malformed boxes are reported in `skipped` and get no
    mask. Every record stays in `document` unchanged.
    """
    document = read_json_document(path)
    document.setdefault("images", [])
    document.setdefault("annotations", [])
    document.setdefault("categories", [])
    skipped: list[SkippedItem] = []
    tasks = _read_images(document["images"], image_root, skipped)
    duplicate_ids = {
        image_id
        for image_id, count in Counter(
            record.get("id") for record in document["images"] if isinstance(record, dict)
        ).items()
        if count > 1
    }
    category_ids = {
        category.get("id") for category in document["categories"] if isinstance(category, dict)
    }
    kept_masks = 0
    for index, annotation in enumerate(document["annotations"]):
        if not isinstance(annotation, dict):
            skipped.append(SkippedItem(f"annotations[{index}]", "annotation is not an object"))
            continue
        name = f"annotation {annotation.get('id', f'at position {index}')}"
        image_id = annotation.get("image_id")
        if image_id in duplicate_ids:
            skipped.append(SkippedItem(name, f"its image id {image_id} is duplicated"))
            continue
        if image_id not in tasks:
            skipped.append(SkippedItem(name, f"image id {image_id!r} is not in 'images'"))
            continue
        slot = tasks[image_id].add_annotation(index)
        category_id = annotation.get("category_id")
        if category_id not in category_ids:
            skipped.append(SkippedItem(name, f"category id {category_id!r} is not in 'categories'"))
            continue
        if annotation.get("iscrowd", 0):
            skipped.append(SkippedItem(name, "crowd annotation (iscrowd=1) kept as it is"))
            continue
        if keep_existing_masks and has_segmentation(annotation):
            kept_masks += 1
            continue
        try:
            xyxy = coco_bbox_to_xyxy(annotation.get("bbox"))
        except ValueError as error:
            skipped.append(SkippedItem(name, str(error)))
            continue
        tasks[image_id].boxes.append(BoxPrompt(index, slot, int(category_id), xyxy))
    logger.info(
        "read %s: %d images, %d categories, %d annotations",
        path,
        len(document["images"]),
        len(document["categories"]),
        len(document["annotations"]),
    )
    return BoxDataset(document, list(tasks.values()), skipped, [path], kept_masks)
