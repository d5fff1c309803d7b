"""SA-Co/VEval: video concept segmentation scored by the `sam3` package's evaluator.

A unit is one video: every noun phrase of its `video_np_pairs` (positive and
negative) is prompted on frame 0 and tracked forward. The predictions file is
written in the official format, a list of masklets `{video_id, category_id,
score, segmentations[T] (RLE), bboxes[T] (pixel xywh), areas[T]}` where a
frame without the object has an empty RLE, box [0, 0, 0, 0] and area 0.
`sam3.eval`'s `VEvalEvaluator` then scores it (see `metrics.veval`).

With `predictions_file` set, no model runs: the file is checked and scored.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from sam3_radio.evaluate.models import ModelSpec, video_model
from sam3_radio.evaluate.store import OK, UnitResult
from sam3_radio.evaluate.video_tracking import ConceptTrackFn, Masklets, Sam3ConceptTracker, mask_box
from sam3_radio.metrics.veval import (
    CGF1_KEY,
    MAP_KEY,
    PHOTA_KEY,
    EmptyPredictionsError,
    check_ground_truth,
    evaluate_veval_file,
)
from sam3_radio.predict.export import atomic_write_text, encode_rle
from sam3_radio.predict.io import ImageReadError, load_image

logger = logging.getLogger(__name__)


def headline_metrics(dataset_results: dict[str, float]) -> dict[str, float]:
    """Return SAM 3's reported video metrics (x 100) from the evaluator's dataset results."""
    return {
        "cgF1": 100 * dataset_results[CGF1_KEY],
        "pHOTA": 100 * dataset_results[PHOTA_KEY],
        "mask mAP": 100 * dataset_results[MAP_KEY],
        "IL_MCC": dataset_results["video_mask_demo_ilmcc_50_95"],
        "pmF1": 100 * dataset_results["video_mask_demo_positive_micro_f1_50_95"],
    }


def masklet_records(
    video_id: int,
    category_id: int,
    masklets: Masklets,
    scores: dict[int, float],
    num_frames: int,
    height: int,
    width: int,
) -> list[dict[str, Any]]:
    """Convert tracked masks into official VEval prediction masklets."""
    empty = encode_rle(np.zeros((height, width), dtype=bool))
    records = []
    for obj_id in sorted(masklets):
        segmentations, bboxes, areas = [], [], []
        for frame_index in range(num_frames):
            mask = masklets[obj_id].get(frame_index)
            box = None if mask is None else mask_box(mask)
            if box is None:
                segmentations.append(dict(empty))
                bboxes.append([0, 0, 0, 0])
                areas.append(0)
                continue
            x0, y0, x1, y1 = box
            segmentations.append(encode_rle(mask))
            bboxes.append([x0, y0, x1 - x0, y1 - y0])
            areas.append(int(mask.sum()))
        records.append(
            {
                "video_id": video_id,
                "category_id": category_id,
                "score": float(scores[obj_id]),
                "segmentations": segmentations,
                "bboxes": bboxes,
                "areas": areas,
            }
        )
    return records


class VEvalTask:
    """One SA-Co/VEval split: `cfg.data.gt_file` and the frame folder `cfg.data.media_dir`."""

    name = "veval"
    latency_unit = "frame"

    def __init__(self, cfg: Any, concept_tracker: ConceptTrackFn | None = None):
        self.gt_file = Path(cfg.data.gt_file)
        if not self.gt_file.is_file():
            raise FileNotFoundError(f"VEval ground truth {self.gt_file} not found: set data.gt_file")
        self.ground_truth = json.loads(self.gt_file.read_text())
        check_ground_truth(self.ground_truth, str(self.gt_file))
        self.split = str(cfg.data.get("name") or self.gt_file.stem)
        self.predictions_file = cfg.get("predictions_file")
        self.media_dir = Path(cfg.data.media_dir) if cfg.data.get("media_dir") else None
        if self.predictions_file is None and (self.media_dir is None or not self.media_dir.is_dir()):
            raise FileNotFoundError(
                f"VEval frame folder {self.media_dir} not found: set data.media_dir to the "
                "folder that the ground truth's file_names are relative to"
            )
        self.videos = {video["id"]: video for video in self.ground_truth["videos"]}
        self.pairs: dict[int, list[tuple[int, str]]] = defaultdict(list)
        if "video_np_pairs" in self.ground_truth:
            for pair in self.ground_truth["video_np_pairs"]:
                self.pairs[pair["video_id"]].append((pair["category_id"], pair["noun_phrase"]))
        else:
            names = {item["id"]: item["name"] for item in self.ground_truth["categories"]}
            for item in self.ground_truth["annotations"]:
                entry = (item["category_id"], names[item["category_id"]])
                if entry not in self.pairs[item["video_id"]]:
                    self.pairs[item["video_id"]].append(entry)
        self.concept_tracker = concept_tracker

    def units(self) -> list[str]:
        if self.predictions_file is not None:
            return []
        return [str(video_id) for video_id in sorted(self.videos)]

    def setup(self, spec: ModelSpec, device: str) -> None:
        if self.concept_tracker is not None:
            return
        from sam3_radio.predict.video import Sam3VideoTracker

        tracker = Sam3VideoTracker(video_model(spec, device), dtype=spec.dtype)
        self.concept_tracker = Sam3ConceptTracker(tracker)

    def run_unit(self, key: str) -> UnitResult:
        video = self.videos[int(key)]
        frames = []
        for file_name in video["file_names"]:
            try:
                frames.append(np.asarray(load_image(self.media_dir / file_name)))
            except ImageReadError as error:
                return UnitResult.skipped(key, f"video {video.get('video_name', key)}: {error}")
        size = (video["height"], video["width"])
        if frames[0].shape[:2] != size:
            return UnitResult.skipped(
                key,
                f"video {video.get('video_name', key)} frames are {frames[0].shape[1]}x"
                f"{frames[0].shape[0]} but the ground truth says {size[1]}x{size[0]}",
            )

        records = []
        start = time.perf_counter()
        for category_id, noun_phrase in self.pairs[video["id"]]:
            masklets, scores = self.concept_tracker(frames, noun_phrase)
            records += masklet_records(
                video["id"], category_id, masklets, scores, len(frames), *size
            )
        seconds = time.perf_counter() - start
        num_prompts = len(self.pairs[video["id"]])
        return UnitResult(key, {"results": records}, seconds, len(frames) * num_prompts)

    def finalize(self, results: dict[str, UnitResult], run_dir: Path) -> dict[str, Any]:
        notes = []
        gt_file = self.gt_file
        if self.predictions_file is not None:
            pred_file = Path(self.predictions_file)
        else:
            predictions = [
                item for result in results.values() if result.status == OK for item in result.payload["results"]
            ]
            pred_file = run_dir / f"{self.split}_preds.json"
            atomic_write_text(pred_file, json.dumps(predictions))
            evaluated = {int(key) for key, result in results.items() if result.status == OK}
            if len(evaluated) < len(self.videos):
                gt_file = self._write_subset(evaluated, run_dir)
                notes.append(
                    f"scored on {len(evaluated)} of {len(self.videos)} videos; the ground truth "
                    f"without the skipped videos is {gt_file.name}"
                )
        try:
            output = evaluate_veval_file(gt_file, pred_file, run_dir / f"{self.split}_eval_res.json")
        except EmptyPredictionsError as error:
            logger.error("%s", error)
            return {"headline": {}, "metrics": {"error": str(error)}, "notes": notes + [str(error)]}
        return {
            "headline": headline_metrics(output["dataset_results"]),
            "metrics": output["dataset_results"],
            "notes": notes + ["cgF1, pHOTA, pmF1 and mAP x 100, IL_MCC raw"],
        }

    def _write_subset(self, video_ids: set[int], run_dir: Path) -> Path:
        subset = dict(self.ground_truth)
        subset["videos"] = [video for video in self.ground_truth["videos"] if video["id"] in video_ids]
        subset["annotations"] = [
            item for item in self.ground_truth["annotations"] if item["video_id"] in video_ids
        ]
        if "video_np_pairs" in subset:
            subset["video_np_pairs"] = [
                item for item in self.ground_truth["video_np_pairs"] if item["video_id"] in video_ids
            ]
        path = run_dir / f"{self.split}_gt_evaluated.json"
        atomic_write_text(path, json.dumps(subset))
        return path
