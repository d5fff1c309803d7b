"""SA-Co/VEval metrics: input checks around the `sam3` package's own evaluator.

The numbers come from `sam3.eval.saco_veval_eval.VEvalEvaluator` (sam3 0.1.4),
called as a library on CPU. It runs five evaluators on every (video, noun
phrase) pair: class mAP, phrase AP, TETA, phrase HOTA and video cgF1. SAM 3
reports cgF1 = `video_mask_demo_cgf1_micro_50_95` and pHOTA =
`video_mask_all_phrase_HOTA`, both x 100.

The evaluator fails with an IndexError or KeyError deep in its stack on an
empty prediction list or on ids the ground truth lacks, so `check_predictions`
rejects those first with a message that names the value.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CGF1_KEY = "video_mask_demo_cgf1_micro_50_95"
PHOTA_KEY = "video_mask_all_phrase_HOTA"
MAP_KEY = "video_mask_mAP_50_95"


class EmptyPredictionsError(ValueError):
    """Raised when a prediction file has no masklet to score."""


def check_predictions(ground_truth: dict, predictions: Sequence[dict], name: str) -> None:
    """Raise ValueError if VEval predictions do not fit the ground truth.

    The list must not be empty, and every `video_id` must be a ground-truth
    video. Every (video_id, category_id) must be one of `video_np_pairs`, or
    a known category when the ground truth has no such list. Per-frame lists
    need one entry per frame.
    """
    if not isinstance(predictions, list):
        raise ValueError(f"{name} is not a JSON list of masklets: got {type(predictions).__name__}")
    if not predictions:
        raise EmptyPredictionsError(
            f"{name} has no masklets: the sam3 VEval evaluator cannot score an empty file. "
            "A model that finds nothing scores 0 on cgF1, pHOTA and mAP"
        )
    lengths = {video["id"]: len(video["file_names"]) for video in ground_truth["videos"]}
    pairs = {(pair["video_id"], pair["category_id"]) for pair in ground_truth.get("video_np_pairs", [])}
    categories = {category["id"] for category in ground_truth.get("categories", [])}
    for index, item in enumerate(predictions):
        for key in ("video_id", "category_id", "score", "segmentations"):
            if key not in item:
                raise ValueError(f"{name}: masklet #{index} has no {key!r} field")
        video_id, category_id = item["video_id"], item["category_id"]
        if video_id not in lengths:
            raise ValueError(
                f"{name}: masklet #{index} has video_id {video_id}, which the ground truth "
                f"lacks (it has {len(lengths)} videos): the predictions belong to another file"
            )
        if pairs and (video_id, category_id) not in pairs:
            raise ValueError(
                f"{name}: masklet #{index} has (video_id, category_id) = ({video_id}, "
                f"{category_id}), which is not one of the ground truth's video_np_pairs"
            )
        if not pairs and category_id not in categories:
            raise ValueError(f"{name}: masklet #{index} has unknown category_id {category_id}")
        if len(item["segmentations"]) != lengths[video_id]:
            raise ValueError(
                f"{name}: masklet #{index} has {len(item['segmentations'])} segmentations "
                f"but video {video_id} has {lengths[video_id]} frames: write one entry per "
                "frame, None where the object is absent"
            )


def check_ground_truth(ground_truth: dict, name: str) -> None:
    """Raise ValueError if a VEval ground truth lacks what the evaluator reads."""
    for key in ("videos", "annotations", "categories"):
        if key not in ground_truth:
            raise ValueError(f"ground truth {name} has no {key!r} list: it is not a VEval file")
    lacking = [item.get("id") for item in ground_truth["annotations"] if "segmentations" not in item]
    if lacking:
        raise ValueError(
            f"ground truth {name} has {len(lacking)} masklet(s) without 'segmentations', "
            f"e.g. ids {lacking[:5]}: VEval needs per-frame masks"
        )


def evaluate_veval_file(
    gt_file: str | Path, pred_file: str | Path, result_file: str | Path | None = None
) -> dict[str, Any]:
    """Check a VEval prediction file, then score it with sam3's `VEvalEvaluator`.

    Returns the evaluator's output: `{"dataset_results": {...},
    "video_np_results": [...]}`. With `result_file`, the evaluator also
    writes that JSON there, as its command line does.
    """
    from sam3.eval.saco_veval_eval import VEvalEvaluator

    gt_file, pred_file = Path(gt_file), Path(pred_file)
    for path in (gt_file, pred_file):
        if not path.is_file():
            raise FileNotFoundError(f"VEval file {path} not found")
    ground_truth = json.loads(gt_file.read_text())
    check_ground_truth(ground_truth, str(gt_file))
    check_predictions(ground_truth, json.loads(pred_file.read_text()), str(pred_file))

    with tempfile.TemporaryDirectory() as scratch:
        target = Path(result_file) if result_file else Path(scratch) / "eval_res.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        evaluator = VEvalEvaluator(gt_annot_file=str(gt_file), eval_res_file=str(target))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            results = evaluator.run_eval(pred_file=str(pred_file))
    logger.debug("sam3 VEval evaluator output:\n%s", printed.getvalue())
    dataset = results["dataset_results"]
    logger.info(
        "VEval %s: cgF1 %.4f, pHOTA %.4f, mask mAP %.4f",
        pred_file.name,
        dataset.get(CGF1_KEY, float("nan")),
        dataset.get(PHOTA_KEY, float("nan")),
        dataset.get(MAP_KEY, float("nan")),
    )
    return results
