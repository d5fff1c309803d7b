"""cgF1, IL_MCC and pmF1: SAM 3's concept-grounding metrics for SA-Co/Gold.

The unit of evaluation is one (image, noun phrase) pair, stored as one entry of
the ground truth's `images` list. For each pair:

- detections scoring below `score_threshold` (0.5) are dropped;
- crowd ground truths are dropped, so detections on them count as false positives;
- detections and ground truths are matched one to one by Hungarian matching on
  IoU (mask or box), and at each IoU threshold t in 0.50:0.05:0.95 a match with
  IoU >= t is a true positive, the other detections false positives and the
  other ground truths false negatives;
- the pair is image-level positive when it has a ground truth, and predicted
  positive when it keeps a detection.

Counts are summed over pairs (micro averages). pmF1 takes its precision only
from pairs that have both ground truths and detections, IL_MCC is Matthews'
correlation of the image-level decisions, and cgF1 = pmF1 x IL_MCC. With
several annotators, each pair is scored against the annotator whose ground
truth gives the best mean F1 over the IoU thresholds, and an annotator with
no ground truth wins when the pair also has no detection.

The epsilons (1e-4 in precision, recall and F1, 1e-6 in the image-level
ratios) follow `sam3.eval.cgf1_eval` in sam3 0.1.4, so the numbers agree with
SAM 3's published ones to the last digit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

logger = logging.getLogger(__name__)

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
SCORE_THRESHOLD = 0.5
EPS = 1e-4
IMAGE_LEVEL_EPS = 1e-6
IOU_TYPES = ("segm", "bbox")


@dataclass
class PairCounts:
    """Box-level and image-level counts of one (image, noun phrase) pair.

    `tp`, `fp` and `fn` hold one count per IoU threshold. `local_f1` is the
    pair's own F1 per threshold, or None when the pair has neither ground
    truths nor detections (a true negative, where F1 is undefined).
    """

    num_gt: int
    num_dt: int
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    local_f1: np.ndarray | None


def _rle_with_bytes(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    if isinstance(counts, str):
        return {"size": rle["size"], "counts": counts.encode("utf-8")}
    if isinstance(counts, list):
        height, width = rle["size"]
        return mask_utils.frPyObjects(rle, height, width)
    return rle


def pairwise_iou(
    detections: Sequence[dict], ground_truths: Sequence[dict], iou_type: str
) -> np.ndarray:
    """Return the [num_dt, num_gt] IoU matrix of COCO-style annotations.

    `segm` compares RLE `segmentation` fields and `bbox` compares xywh `bbox`
    fields (any consistent unit, pixels or normalised).
    """
    if not detections or not ground_truths:
        return np.zeros((len(detections), len(ground_truths)))
    if iou_type == "segm":
        dt = [_rle_with_bytes(item["segmentation"]) for item in detections]
        gt = [_rle_with_bytes(item["segmentation"]) for item in ground_truths]
    elif iou_type == "bbox":
        dt = [list(map(float, item["bbox"])) for item in detections]
        gt = [list(map(float, item["bbox"])) for item in ground_truths]
    else:
        raise ValueError(f"unknown IoU type {iou_type!r}: use one of {IOU_TYPES}")
    return np.asarray(mask_utils.iou(dt, gt, [0] * len(gt)), dtype=np.float64)


def count_pair(
    ground_truths: Sequence[dict],
    detections: Sequence[dict],
    iou_type: str = "segm",
    score_threshold: float = SCORE_THRESHOLD,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
) -> PairCounts:
    """Match the detections of one pair to its ground truths and count."""
    ground_truths = [item for item in ground_truths if not item.get("iscrowd", 0)]
    detections = [item for item in detections if item["score"] >= score_threshold]
    num_gt, num_dt = len(ground_truths), len(detections)
    zeros = np.zeros(len(iou_thresholds), dtype=np.int64)
    if num_gt == 0 and num_dt == 0:
        return PairCounts(0, 0, zeros, zeros.copy(), zeros.copy(), None)

    ious = pairwise_iou(detections, ground_truths, iou_type)
    rows, cols = linear_sum_assignment(-ious)
    matched = ious[rows, cols]
    tp = np.array([(matched >= t).sum() for t in iou_thresholds], dtype=np.int64)
    fp = num_dt - tp
    fn = num_gt - tp

    precision = tp / (tp + fp + EPS)
    recall = tp / (tp + fn + EPS)
    local_f1 = 2 * precision * recall / (precision + recall + EPS)
    return PairCounts(num_gt, num_dt, tp, fp, fn, local_f1)


def select_best_annotator(candidates: Sequence[PairCounts]) -> PairCounts:
    """Pick the counts against the annotator that scores the pair best.

    A candidate without a local F1 (no ground truth and no detection) wins at
    once. Otherwise the highest mean local F1 wins, and ties keep the earlier
    annotator.
    """
    best = candidates[0]
    for candidate in candidates[1:]:
        if best.local_f1 is None:
            break
        if candidate.local_f1 is None:
            best = candidate
        elif candidate.local_f1.mean() > best.local_f1.mean():
            best = candidate
    return best


def _matthews(tp: int, fp: int, tn: int, fn: int) -> float:
    numerator = float(tp * tn - fp * fn)
    denominator = float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn)
    return numerator / (denominator**0.5 + IMAGE_LEVEL_EPS)


def accumulate(pairs: Iterable[PairCounts]) -> dict[str, np.ndarray | float]:
    """Sum per-pair counts into dataset metrics.

    Returns arrays over the IoU thresholds for the box-level metrics and
    floats for the image-level ones (`IL_*`, which do not depend on IoU).
    `positive_macro_F1` is NaN when no pair has both ground truths and
    detections.
    """
    size = len(IOU_THRESHOLDS)
    tp = np.zeros(size, dtype=np.int64)
    fp = np.zeros(size, dtype=np.int64)
    fn = np.zeros(size, dtype=np.int64)
    positive_fp = np.zeros(size, dtype=np.int64)
    positive_f1_sum = np.zeros(size, dtype=np.float64)
    positive_pairs = 0
    image_tp = image_fp = image_tn = image_fn = 0

    for pair in pairs:
        has_gt, has_dt = pair.num_gt > 0, pair.num_dt > 0
        image_tp += has_gt and has_dt
        image_fp += (not has_gt) and has_dt
        image_tn += (not has_gt) and (not has_dt)
        image_fn += has_gt and (not has_dt)
        if pair.local_f1 is None:
            continue
        tp += pair.tp
        fp += pair.fp
        fn += pair.fn
        if has_gt and has_dt:
            positive_fp += pair.fp
            positive_f1_sum += pair.local_f1
            positive_pairs += 1

    precision = tp / (tp + fp + EPS)
    recall = tp / (tp + fn + EPS)
    f1 = 2 * precision * recall / (precision + recall + EPS)
    positive_precision = tp / (tp + positive_fp + EPS)
    positive_micro_f1 = 2 * positive_precision * recall / (positive_precision + recall + EPS)
    with np.errstate(invalid="ignore", divide="ignore"):
        positive_macro_f1 = positive_f1_sum / positive_pairs

    image_recall = image_tp / (image_tp + image_fn + IMAGE_LEVEL_EPS)
    image_precision = image_tp / (image_tp + image_fp + IMAGE_LEVEL_EPS)
    il_mcc = _matthews(image_tp, image_fp, image_tn, image_fn)
    return {
        "cgF1": positive_micro_f1 * il_mcc,
        "precision": precision,
        "recall": recall,
        "F1": f1,
        "positive_macro_F1": positive_macro_f1,
        "positive_micro_F1": positive_micro_f1,
        "positive_micro_precision": positive_precision,
        "IL_precision": image_precision,
        "IL_recall": image_recall,
        "IL_F1": 2 * image_precision * image_recall
        / (image_precision + image_recall + IMAGE_LEVEL_EPS),
        "IL_FPR": image_fp / (image_fp + image_tn + IMAGE_LEVEL_EPS),
        "IL_MCC": il_mcc,
        "num_pairs": image_tp + image_fp + image_tn + image_fn,
    }


def summarize(accumulated: dict[str, np.ndarray | float], iou_type: str) -> dict[str, float]:
    """Flatten accumulated metrics into `cgF1_eval_<iou_type>_<name>[@t]` keys.

    Box-level metrics appear averaged over 0.50:0.95 and at 0.5 and 0.75. An
    average with no valid value is -1, as in `sam3.eval.cgf1_eval`.
    """
    summary: dict[str, float] = {}
    prefix = f"cgF1_eval_{iou_type}_"
    box_level = [
        "cgF1",
        "precision",
        "recall",
        "F1",
        "positive_macro_F1",
        "positive_micro_F1",
        "positive_micro_precision",
    ]
    for name in box_level:
        summary[prefix + name] = _mean_valid(accumulated[name])
    for name in ["IL_precision", "IL_recall", "IL_F1", "IL_FPR", "IL_MCC"]:
        summary[prefix + name] = float(accumulated[name])
    for threshold in (0.5, 0.75):
        index = int(np.argmin(np.abs(IOU_THRESHOLDS - threshold)))
        for name in box_level:
            summary[f"{prefix}{name}@{threshold}"] = _mean_valid(accumulated[name][index : index + 1])
    return summary


def _mean_valid(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


def evaluated_pair_ids(ground_truths: Sequence[dict]) -> list[int]:
    """Return the pair ids that every annotator marks instance-exhaustive.

    The first annotator's `images` list sets the pairs and their order.
    """
    excluded = set()
    for dataset in ground_truths[1:]:
        excluded |= {
            image["id"] for image in dataset["images"] if not image.get("is_instance_exhaustive", 0)
        }
    return [
        image["id"]
        for image in ground_truths[0]["images"]
        if image.get("is_instance_exhaustive", 0) and image["id"] not in excluded
    ]


def check_ground_truth(dataset: dict, name: str, iou_type: str) -> None:
    """Raise ValueError if a Gold ground truth cannot be scored with `iou_type`."""
    for key in ("images", "annotations"):
        if key not in dataset:
            raise ValueError(f"ground truth {name} has no {key!r} list: it is not a COCO-format file")
    field = "segmentation" if iou_type == "segm" else "bbox"
    lacking = [item.get("id") for item in dataset["annotations"] if not item.get(field)]
    if lacking:
        raise ValueError(
            f"ground truth {name} has {len(lacking)} annotation(s) without a {field!r}, "
            f"e.g. ids {lacking[:5]}: use a ground truth with {field} for iou_type={iou_type!r}"
        )


def check_predictions(predictions: Sequence[dict], pair_ids: set[int], name: str) -> None:
    """Raise ValueError if a prediction names a pair the ground truth lacks."""
    unknown = sorted({item["image_id"] for item in predictions if item["image_id"] not in pair_ids})
    if unknown:
        raise ValueError(
            f"{name} has predictions for {len(unknown)} image_id(s) that the ground truth "
            f"lacks, e.g. {unknown[:5]}: the predictions were made for another ground truth file"
        )


def evaluate_cgf1(
    ground_truths: Sequence[dict],
    predictions: Sequence[dict],
    iou_type: str = "segm",
    score_threshold: float = SCORE_THRESHOLD,
    name: str = "predictions",
    only_pairs: set[int] | None = None,
) -> dict[str, float]:
    """Score SA-Co/Gold predictions against one or more annotators.

    Args:
        ground_truths: Gold COCO-format datasets, one per annotator, whose
            `images` are (image, noun phrase) pairs with the same ids.
        predictions: COCO results `{image_id, bbox, score, segmentation}`,
            with `image_id` the pair id.
        iou_type: 'segm' (RLE masks) or 'bbox' (xywh boxes).
        score_threshold: detections scoring below this are ignored.
        name: how error messages refer to `predictions`.
        only_pairs: evaluate only these pair ids, e.g. leaving out pairs
            whose image could not be read (default: every evaluated pair).

    Returns:
        `cgF1_eval_<iou_type>_*` keys as `summarize` names them, plus
        `num_pairs`.
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"unknown IoU type {iou_type!r}: use one of {IOU_TYPES}")
    if not ground_truths:
        raise ValueError("no ground truth given: pass at least one annotator's file")
    for index, dataset in enumerate(ground_truths):
        check_ground_truth(dataset, f"#{index}", iou_type)
    all_ids = {image["id"] for image in ground_truths[0]["images"]}
    check_predictions(predictions, all_ids, name)
    pair_ids = evaluated_pair_ids(ground_truths)
    if only_pairs is not None:
        pair_ids = [pair_id for pair_id in pair_ids if pair_id in only_pairs]
    if not pair_ids:
        raise ValueError("the ground truth has no instance-exhaustive pair to evaluate")

    detections_by_pair: dict[int, list[dict]] = defaultdict(list)
    for item in predictions:
        detections_by_pair[item["image_id"]].append(item)
    annotations_by_pair = []
    for dataset in ground_truths:
        grouped: dict[int, list[dict]] = defaultdict(list)
        for item in dataset["annotations"]:
            grouped[item["image_id"]].append(item)
        annotations_by_pair.append(grouped)

    pairs = []
    for pair_id in pair_ids:
        candidates = [
            count_pair(grouped[pair_id], detections_by_pair[pair_id], iou_type, score_threshold)
            for grouped in annotations_by_pair
        ]
        pairs.append(select_best_annotator(candidates))
    summary = summarize(accumulate(pairs), iou_type)
    summary["num_pairs"] = len(pairs)
    return summary
