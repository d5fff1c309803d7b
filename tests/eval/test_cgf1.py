"""cgF1, IL_MCC and pmF1 on cases computed by hand, and against sam3's own evaluator."""

import contextlib
import io
import json

import numpy as np
import pytest

from sam3_radio.metrics.cgf1 import count_pair, evaluate_cgf1, select_best_annotator
from sam3_radio.predict.export import encode_rle

from .conftest import gold_datasets, rectangle

H, W = 40, 40


def pair(pair_id, exhaustive=1):
    return {"id": pair_id, "file_name": f"{pair_id}.jpg", "text_input": "thing", "width": W,
            "height": H, "is_instance_exhaustive": exhaustive}


def annotation(ann_id, pair_id, box, iscrowd=0):
    x0, y0, x1, y1 = box
    return {"id": ann_id, "image_id": pair_id, "category_id": 1, "iscrowd": iscrowd,
            "segmentation": encode_rle(rectangle(H, W, *box)),
            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)}


def detection(pair_id, box, score=0.9):
    x0, y0, x1, y1 = box
    return {"image_id": pair_id, "category_id": 1, "score": score,
            "segmentation": encode_rle(rectangle(H, W, *box)), "bbox": [x0, y0, x1 - x0, y1 - y0]}


def dataset(pairs, annotations):
    return {"images": pairs, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}


# Pair 1: two objects; one detection has IoU 5/8 with its object, the other 1/4.
# Pair 2: one object, found exactly. Pair 3: negative with a false detection.
# Pairs 4 and 5: negative without detections.
HAND_GT = dataset(
    [pair(i) for i in range(1, 6)],
    [annotation(1, 1, (0, 0, 10, 10)), annotation(2, 1, (20, 20, 30, 30)),
     annotation(3, 2, (5, 5, 15, 15))],
)
HAND_DT = [
    detection(1, (0, 0, 10, 16)),      # 100 / 160 = 0.625 with annotation 1
    detection(1, (20, 20, 25, 25)),    # 25 / 100 = 0.25 with annotation 2
    detection(2, (5, 5, 15, 15)),
    detection(3, (0, 0, 5, 5)),
    detection(4, (0, 0, 5, 5), score=0.4),  # below the 0.5 threshold: ignored
]


def test_cgf1_hand_case():
    scores = evaluate_cgf1([HAND_GT], HAND_DT)
    # Image level: TP = pairs 1 and 2, FP = pair 3, TN = pairs 4 and 5.
    # MCC = (2 * 2 - 1 * 0) / sqrt(3 * 2 * 3 * 2) = 2 / 3.
    assert scores["cgF1_eval_segm_IL_MCC"] == pytest.approx(2 / 3, abs=1e-5)
    # IoU thresholds 0.50-0.60: TP 2, FP 1 (positive pairs only), FN 1 -> pmF1 2/3.
    # IoU thresholds 0.65-0.95: TP 1, FP 2, FN 2 -> pmF1 1/3.
    expected_pmf1 = (3 * 2 / 3 + 7 * 1 / 3) / 10
    assert scores["cgF1_eval_segm_positive_micro_F1"] == pytest.approx(expected_pmf1, abs=1e-3)
    assert scores["cgF1_eval_segm_cgF1"] == pytest.approx(expected_pmf1 * 2 / 3, abs=1e-3)
    assert scores["cgF1_eval_segm_positive_micro_F1@0.5"] == pytest.approx(2 / 3, abs=1e-3)
    assert scores["cgF1_eval_segm_positive_micro_F1@0.75"] == pytest.approx(1 / 3, abs=1e-3)
    # Precision with every FP (pair 3 too): 2 / 4 at 0.50-0.60, 1 / 4 above.
    assert scores["cgF1_eval_segm_precision"] == pytest.approx((3 * 0.5 + 7 * 0.25) / 10, abs=1e-3)
    # Per-pair F1 of pairs 1 and 2: (0.5, 1) then (0, 1).
    assert scores["cgF1_eval_segm_positive_macro_F1"] == pytest.approx(0.575, abs=1e-3)
    assert scores["num_pairs"] == 5


def test_cgf1_perfect_predictions():
    perfect = [detection(a["image_id"], _box(a), 1.0) for a in HAND_GT["annotations"]]
    scores = evaluate_cgf1([HAND_GT], perfect)
    assert scores["cgF1_eval_segm_cgF1"] == pytest.approx(1.0, abs=1e-3)
    assert scores["cgF1_eval_segm_IL_MCC"] == pytest.approx(1.0, abs=1e-5)
    assert scores["cgF1_eval_segm_positive_micro_F1"] == pytest.approx(1.0, abs=1e-3)


def test_cgf1_empty_predictions():
    scores = evaluate_cgf1([HAND_GT], [])
    assert scores["cgF1_eval_segm_cgF1"] == 0.0
    assert scores["cgF1_eval_segm_IL_MCC"] == 0.0
    assert scores["cgF1_eval_segm_positive_micro_F1"] == 0.0


def test_cgf1_crowd_detection_is_false_positive():
    gt = dataset([pair(1)], [annotation(1, 1, (0, 0, 10, 10)), annotation(2, 1, (20, 20, 30, 30), 1)])
    counts = count_pair(gt["annotations"], [detection(1, (0, 0, 10, 10)), detection(1, (20, 20, 30, 30))])
    assert counts.num_gt == 1
    assert counts.tp[0] == 1
    assert counts.fp[0] == 1


def test_best_annotator_highest_f1():
    gt_a = [annotation(1, 1, (0, 0, 10, 10))]
    gt_b = [annotation(1, 1, (20, 20, 30, 30))]
    dt = [detection(1, (20, 20, 30, 30))]
    chosen = select_best_annotator([count_pair(gt_a, dt), count_pair(gt_b, dt)])
    assert chosen.tp.tolist() == [1] * 10


def test_best_annotator_empty_wins_without_detections():
    chosen = select_best_annotator([count_pair([annotation(1, 1, (0, 0, 10, 10))], []), count_pair([], [])])
    assert chosen.local_f1 is None
    assert chosen.num_gt == 0


def test_cgf1_non_exhaustive_pair_left_out():
    gt = dataset([pair(1), pair(2, exhaustive=0)], [annotation(1, 1, (0, 0, 10, 10))])
    scores = evaluate_cgf1([gt], [detection(1, (0, 0, 10, 10)), detection(2, (0, 0, 5, 5))])
    assert scores["num_pairs"] == 1
    assert scores["cgF1_eval_segm_positive_micro_F1"] == pytest.approx(1.0, abs=1e-3)


def test_cgf1_unknown_pair_id_rejected():
    with pytest.raises(ValueError, match="image_id"):
        evaluate_cgf1([HAND_GT], [detection(99, (0, 0, 5, 5))])


def test_cgf1_ground_truth_without_masks_rejected():
    gt = dataset([pair(1)], [{k: v for k, v in annotation(1, 1, (0, 0, 5, 5)).items() if k != "segmentation"}])
    with pytest.raises(ValueError, match="without a 'segmentation'"):
        evaluate_cgf1([gt], [])


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cgf1_equals_sam3_evaluator(tmp_path, iou_type):
    from sam3.eval.cgf1_eval import CGF1Evaluator

    datasets = gold_datasets()
    sizes = {image["id"]: (image["width"], image["height"]) for image in datasets[0]["images"]}
    rng = np.random.default_rng(0)
    predictions = []
    for pair_id in range(1, 6):
        width, height = sizes[pair_id]
        for _ in range(3):
            x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
            x1, y1 = x0 + rng.integers(20, width // 2), y0 + rng.integers(20, height // 2)
            predictions.append({"image_id": pair_id, "category_id": 1, "score": float(rng.uniform(0.3, 1)),
                                "segmentation": encode_rle(rectangle(height, width, x0, y0, x1, y1)),
                                "bbox": [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]})
    # Pair 3 found exactly by annotator b's box, so the annotator choice matters.
    predictions.append({**predictions[6], "segmentation": datasets[1]["annotations"][1]["segmentation"],
                        "bbox": datasets[1]["annotations"][1]["bbox"], "score": 0.95, "image_id": 3})
    paths = []
    for index, data in enumerate(datasets):
        paths.append(str(tmp_path / f"gt_{index}.json"))
        (tmp_path / f"gt_{index}.json").write_text(json.dumps(data))
    pred_file = tmp_path / "predictions.json"
    pred_file.write_text(json.dumps(predictions))

    with contextlib.redirect_stdout(io.StringIO()):
        official = CGF1Evaluator(paths, iou_type=iou_type).evaluate(str(pred_file))
    ours = evaluate_cgf1(datasets, predictions, iou_type)
    for key, value in official.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def _box(item):
    x, y, w, h = item["bbox"]
    return (x, y, x + w, y + h)
