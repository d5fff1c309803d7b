"""Build the final COCO JSON and YOLO segmentation labels from the journal.

Both outputs are rebuilt from the input dataset and the journal records alone,
in dataset order, so an interrupted and resumed run writes the same bytes as an
uninterrupted one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from supervision.dataset.formats.yolo import object_to_yolo
from supervision.dataset.utils import approximate_mask_with_polygons

from sam3_radio.annotate.dataset import BoxDataset, ImageTask, SkippedItem
from sam3_radio.annotate.masks import mask_to_polygons, segmentation_to_mask
from sam3_radio.predict.export import atomic_write_text, decode_rle


def _next_annotation_id(annotations: list[Any]) -> int:
    ids = [
        annotation["id"]
        for annotation in annotations
        if isinstance(annotation, dict) and isinstance(annotation.get("id"), int)
    ]
    return max(ids, default=0) + 1


def _segmentation(rle: dict[str, Any], mask_format: str, simplification: float) -> Any:
    if mask_format == "rle":
        return rle
    polygons = mask_to_polygons(decode_rle(rle), simplification)
    # NOTE: a mask whose holes cannot be joined to its outline keeps its exact RLE,
    # so a polygon file may contain a few RLE segmentations.
    return rle if polygons is None else polygons


def build_coco_document(
    dataset: BoxDataset,
    records: dict[str, dict[str, Any]],
    mask_format: str,
    simplification: float,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """Return the input document with masks and scores added.

    Box-prompt masks replace the `segmentation` and `area` of their annotation
    and add `score` (predicted mask IoU). Concept detections become new
    annotations with `pre_label: true`, a `score` and ids after the largest
    existing id. Every other field and record is kept as it was.
    """
    document = dict(dataset.document)
    annotations = [
        dict(annotation) if isinstance(annotation, dict) else annotation
        for annotation in document["annotations"]
    ]
    next_id = _next_annotation_id(annotations)
    prelabels = []
    for task in dataset.tasks:
        record = records.get(task.key)
        if record is None:
            continue
        for entry in record.get("masks", []):
            annotation = annotations[task.annotation_indices[entry["slot"]]]
            annotation["segmentation"] = _segmentation(
                entry["segmentation"], mask_format, simplification
            )
            annotation["area"] = entry["area"]
            annotation["score"] = entry["score"]
        for entry in record.get("prelabels", []):
            prelabels.append(
                {
                    "id": next_id,
                    "image_id": task.image_id,
                    "category_id": entry["category_id"],
                    "bbox": entry["bbox"],
                    "area": entry["area"],
                    "iscrowd": 0,
                    "segmentation": _segmentation(
                        entry["segmentation"], mask_format, simplification
                    ),
                    "score": entry["score"],
                    "pre_label": True,
                }
            )
            next_id += 1
    document["annotations"] = annotations + prelabels
    document["sam3_radio"] = provenance
    return document


def write_coco(path: Path, document: dict[str, Any]) -> None:
    """Write `document` to `path` atomically."""
    atomic_write_text(path, json.dumps(document, ensure_ascii=False))


@dataclass
class YoloReport:
    """What the YOLO writer left out: annotations without a mask or polygon, and images."""

    omitted_annotations: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)


def yolo_class_indices(categories: list[dict[str, Any]]) -> dict[int, int]:
    """Map COCO category ids to YOLO class indices: positions in id order."""
    ids = sorted(int(category["id"]) for category in categories)
    return {category_id: position for position, category_id in enumerate(ids)}


def _image_masks(
    task: ImageTask, record: dict[str, Any], annotations: list[Any]
) -> tuple[list[tuple[int, np.ndarray]], int]:
    """Return the image's (category id, mask) pairs and how many annotations lack a mask."""
    width, height = record["size"]
    predicted = {entry["slot"]: entry for entry in record.get("masks", [])}
    masks = []
    omitted = 0
    for slot, index in enumerate(task.annotation_indices):
        annotation = annotations[index]
        if slot in predicted:
            mask = decode_rle(predicted[slot]["segmentation"])
        else:
            mask = segmentation_to_mask(annotation.get("segmentation"), width, height)
        if mask is None or not mask.any():
            omitted += 1
            continue
        masks.append((int(annotation["category_id"]), mask))
    for entry in record.get("prelabels", []):
        mask = decode_rle(entry["segmentation"])
        if mask.any():
            masks.append((entry["category_id"], mask))
    return masks, omitted


def _largest_polygon(mask: np.ndarray, simplification: float) -> np.ndarray | None:
    """Return the largest connected component of `mask` as a pixel polygon [N, 2].

    Holes are joined to the outline by a zero-width seam where supervision finds
    one, and are filled otherwise.
    """
    try:
        polygons = approximate_mask_with_polygons(
            mask, approximation_percentage=simplification, bridge_holes=True
        )
    except ValueError:
        # The largest contour is an outline, never a hole, so skipping the seams only fills holes.
        polygons = approximate_mask_with_polygons(mask, approximation_percentage=simplification)
    polygons = [polygon for polygon in polygons if len(polygon) >= 3]
    if not polygons:
        return None
    return max(polygons, key=lambda polygon: abs(cv2.contourArea(polygon.astype(np.float32))))


def yolo_label_lines(
    masks: list[tuple[int, np.ndarray]], class_indices: dict[int, int], simplification: float
) -> tuple[list[str], int]:
    """Return one YOLO segmentation line per mask, and how many masks had no polygon.

    A YOLO line is one instance, so a mask split into several connected
    components is written as its largest component.
    """
    lines = []
    without_polygon = 0
    for category_id, mask in masks:
        polygon = _largest_polygon(mask, simplification)
        if polygon is None:
            without_polygon += 1
            continue
        xyxy = np.array([*polygon.min(axis=0), *polygon.max(axis=0)], dtype=np.float32)
        lines.append(object_to_yolo(xyxy, class_indices[category_id], mask.shape, polygon=polygon))
    return lines, without_polygon


def _label_path(labels_dir: Path, task: ImageTask, image_root: Path) -> Path:
    try:
        relative = task.path.relative_to(image_root)
    except ValueError:
        relative = Path(task.path.name)
    return labels_dir / relative.with_suffix(".txt")


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write_text(path, text)


def write_yolo(
    dataset: BoxDataset,
    records: dict[str, dict[str, Any]],
    labels_dir: Path,
    data_yaml: Path,
    image_root: Path,
    simplification: float,
) -> YoloReport:
    """Write `<labels_dir>/<image path>.txt` for each finished image and `data.yaml`.

    Annotations without a mask (skipped boxes, crowd regions without one) are
    left out and counted in the report.
    """
    report = YoloReport()
    class_indices = yolo_class_indices(dataset.categories)
    names = dataset.category_names()
    annotations = dataset.document["annotations"]
    written: dict[Path, str] = {}
    for task in dataset.tasks:
        record = records.get(task.key)
        if record is None:
            continue
        path = _label_path(labels_dir, task, image_root)
        if path in written:
            report.skipped.append(
                SkippedItem(
                    f"image {task.key}",
                    f"its YOLO label file {path} is already written for image {written[path]}",
                )
            )
            continue
        masks, omitted = _image_masks(task, record, annotations)
        report.omitted_annotations += omitted
        lines, without_polygon = yolo_label_lines(masks, class_indices, simplification)
        report.omitted_annotations += without_polygon
        _write_if_changed(path, "".join(f"{line}\n" for line in lines))
        written[path] = task.key
    ordered = [names[category_id] for category_id in sorted(class_indices, key=class_indices.get)]
    text = yaml.safe_dump(
        {"nc": len(ordered), "names": ordered}, sort_keys=False, allow_unicode=True
    )
    _write_if_changed(data_yaml, text)
    return report
