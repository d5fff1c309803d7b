"""COCO AP through our checks equals a direct pycocotools run; bad input is rejected."""

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sam3_radio.metrics.coco import COCO_STAT_NAMES, evaluate_coco, load_coco, mean_iou_per_category
from sam3_radio.predict.export import encode_rle

from .conftest import coco_dataset


def noisy_results(coco: COCO, seed: int = 0) -> list[dict]:
    """Ground truth turned into detections with shifted boxes and masks and random scores."""
    rng = np.random.default_rng(seed)
    results = []
    for annotation in coco.dataset["annotations"]:
        mask = coco.annToMask(annotation).astype(bool)
        shift = int(rng.integers(0, 12))
        mask = np.roll(mask, shift, axis=1)
        x, y, w, h = annotation["bbox"]
        for category_id in (annotation["category_id"], 3 - annotation["category_id"]):
            results.append({
                "image_id": annotation["image_id"], "category_id": category_id,
                "bbox": [x + shift, y, w * float(rng.uniform(0.7, 1.2)), h],
                "score": float(rng.uniform(0.1, 1.0)), "segmentation": encode_rle(mask),
            })
    return results


def direct_pycocotools(coco: COCO, results: list[dict], iou_type: str) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return list(evaluator.stats)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_ap_equals_direct_pycocotools(iou_type):
    coco = load_coco(coco_dataset())
    results = noisy_results(coco)
    ours = evaluate_coco(coco, results, iou_type)
    expected = direct_pycocotools(coco, results, iou_type)
    assert [ours[name] for name in COCO_STAT_NAMES] == expected


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_perfect_results_score_one(iou_type):
    coco = load_coco(coco_dataset())
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
         "segmentation": encode_rle(coco.annToMask(a).astype(bool))}
        for a in coco.dataset["annotations"]
    ]
    assert evaluate_coco(coco, perfect, iou_type)["AP"] == pytest.approx(1.0)


def test_coco_empty_results_score_zero():
    coco = load_coco(coco_dataset())
    stats = evaluate_coco(coco, [], "segm")
    assert stats["AP"] == 0.0
    assert stats["AR_100"] == 0.0


def test_coco_unknown_image_id_rejected():
    coco = load_coco(coco_dataset())
    bad = [{"image_id": 42, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]
    with pytest.raises(ValueError, match="image_id"):
        evaluate_coco(coco, bad, "bbox")


def test_coco_unknown_category_rejected():
    coco = load_coco(coco_dataset())
    bad = [{"image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5], "score": 0.5}]
    with pytest.raises(ValueError, match="category_id"):
        evaluate_coco(coco, bad, "bbox")


def test_coco_ground_truth_without_masks_rejected():
    dataset = coco_dataset()
    del dataset["annotations"][0]["segmentation"]
    with pytest.raises(ValueError, match="without a segmentation"):
        evaluate_coco(load_coco(dataset), [], "segm")


def test_mean_iou_per_category_hand_case():
    summary = mean_iou_per_category([(1, 0.5), (1, 1.0), (2, 0.0)], {1: "truck", 2: "bag"})
    assert summary["mIoU"] == pytest.approx(0.5)
    assert summary["mIoU_categories"] == pytest.approx(0.375)
    assert summary["per_category"]["truck"] == {"mIoU": 0.75, "count": 2}
