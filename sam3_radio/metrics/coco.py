"""COCO box and mask AP through pycocotools, with input checks and mask IoU per category."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

logger = logging.getLogger(__name__)

# The order of `COCOeval.stats` in pycocotools.
COCO_STAT_NAMES = (
    "AP",
    "AP_50",
    "AP_75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR_1",
    "AR_10",
    "AR_100",
    "AR_small",
    "AR_medium",
    "AR_large",
)
IOU_TYPES = ("bbox", "segm")


def load_coco(dataset: dict | str) -> COCO:
    """Build a pycocotools `COCO` index from a dataset dict or a JSON path, without printing."""
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(dataset, dict):
            coco = COCO()
            coco.dataset = copy.deepcopy(dataset)
            coco.createIndex()
        else:
            coco = COCO(str(dataset))
    return coco


def check_ground_truth_masks(coco: COCO, name: str = "ground truth") -> None:
    """Raise ValueError if a non-crowd annotation has no segmentation."""
    lacking = [
        annotation["id"]
        for annotation in coco.dataset.get("annotations", [])
        if not annotation.get("segmentation")
    ]
    if lacking:
        raise ValueError(
            f"{name} has {len(lacking)} annotation(s) without a segmentation, e.g. ids "
            f"{lacking[:5]}: mask metrics need polygons or RLE masks; evaluate bbox only "
            "or use a ground truth with masks"
        )


def check_results(coco: COCO, results: Sequence[dict], iou_type: str, name: str) -> None:
    """Raise ValueError if `results` do not fit the ground truth in `coco`.

    Each result needs a known `image_id` and `category_id`, a `score`, and the
    field that `iou_type` scores (`bbox` or `segmentation`).
    """
    image_ids = set(coco.getImgIds())
    category_ids = set(coco.getCatIds())
    unknown_images = sorted({item["image_id"] for item in results} - image_ids)
    if unknown_images:
        raise ValueError(
            f"{name} has results for {len(unknown_images)} image_id(s) not in the ground "
            f"truth, e.g. {unknown_images[:5]}: the results were made for another dataset"
        )
    unknown_categories = sorted({item["category_id"] for item in results} - category_ids)
    if unknown_categories:
        raise ValueError(
            f"{name} has results with {len(unknown_categories)} category_id(s) not in the "
            f"ground truth, e.g. {unknown_categories[:5]}: map them to the dataset's ids"
        )
    field = "segmentation" if iou_type == "segm" else "bbox"
    for item in results:
        if field not in item or "score" not in item:
            raise ValueError(
                f"{name}: a result for image {item['image_id']} lacks {field!r} or 'score', "
                f"which iou_type={iou_type!r} needs"
            )


def load_results(coco: COCO, results: Sequence[dict]) -> COCO:
    """Load COCO results into a pycocotools index; an empty list gives an empty index.

    `COCO.loadRes` fails on an empty list, but no detections is a valid
    outcome whose AP is 0 wherever the ground truth has objects.
    """
    if results:
        with contextlib.redirect_stdout(io.StringIO()):
            return coco.loadRes(copy.deepcopy(list(results)))
    empty = COCO()
    empty.dataset = {
        "images": coco.dataset.get("images", []),
        "categories": coco.dataset.get("categories", []),
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        empty.createIndex()
    return empty


def evaluate_coco(
    coco: COCO,
    results: Sequence[dict],
    iou_type: str,
    image_ids: Iterable[int] | None = None,
    name: str = "results",
) -> dict[str, float]:
    """Run pycocotools' COCOeval and return its 12 stats by name.

    Args:
        coco: ground truth.
        results: COCO results: `{image_id, category_id, score, bbox}` with
            pixel xywh boxes, plus an RLE `segmentation` for 'segm'.
        iou_type: 'bbox' or 'segm'.
        image_ids: evaluate these images only (default: all images of `coco`).
        name: how error messages refer to `results`.

    Returns:
        `AP`, `AP_50`, ..., `AR_large` as pycocotools computes them (-1 where
        undefined, e.g. `AP_small` without small objects).
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"unknown IoU type {iou_type!r}: use one of {IOU_TYPES}")
    if iou_type == "segm":
        check_ground_truth_masks(coco)
    check_results(coco, results, iou_type, name)
    detections = load_results(coco, results)
    evaluator = COCOeval(coco, detections, iou_type)
    if image_ids is not None:
        evaluator.params.imgIds = sorted(image_ids)
    if not evaluator.params.imgIds:
        raise ValueError("no image to evaluate: every image was skipped or the ground truth is empty")
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    logger.info("COCO %s:\n%s", iou_type, text.getvalue().rstrip())
    return {stat: float(value) for stat, value in zip(COCO_STAT_NAMES, evaluator.stats)}


def mask_iou(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    """Return the IoU of two bool [H, W] masks, 1 when both are empty."""
    union = np.logical_or(prediction, ground_truth).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(prediction, ground_truth).sum() / union)


def mean_iou_per_category(
    records: Iterable[tuple[int, float]], category_names: dict[int, str]
) -> dict[str, Any]:
    """Average (category_id, IoU) records per category and overall.

    Returns `mIoU` (mean over objects), `mIoU_categories` (mean of the
    per-category means) and `per_category` {name: {mIoU, count}}.
    """
    by_category: dict[int, list[float]] = defaultdict(list)
    for category_id, value in records:
        by_category[category_id].append(float(value))
    per_category = {
        category_names.get(category_id, str(category_id)): {
            "mIoU": float(np.mean(values)),
            "count": len(values),
        }
        for category_id, values in sorted(by_category.items())
    }
    all_values = [value for values in by_category.values() for value in values]
    return {
        "mIoU": float(np.mean(all_values)) if all_values else float("nan"),
        "mIoU_categories": (
            float(np.mean([entry["mIoU"] for entry in per_category.values()]))
            if per_category
            else float("nan")
        ),
        "per_category": per_category,
    }


def top_detections(results: list[dict], max_detections: int) -> list[dict]:
    """Keep the `max_detections` highest-scoring results (one image's list)."""
    if len(results) <= max_detections:
        return results
    return sorted(results, key=lambda item: item["score"], reverse=True)[:max_detections]
