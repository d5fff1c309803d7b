"""SA-Co/Gold: cgF1, IL_MCC and pmF1 per subset against several annotators.

Each ground-truth `images` entry is one (image, noun phrase) pair. A unit is
one image file of one subset: the image is encoded once and every evaluated
noun phrase on it is a text prompt. Predictions are written as SAM 3 dumps
them for Gold: score threshold 0.3 (the metric then keeps scores >= 0.5),
normalised xywh boxes, RLE masks at the original size, normalised areas,
category_id 1. Only pairs that every annotator marks instance-exhaustive
are prompted, because only those are scored.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from sam3_radio.evaluate.models import ModelSpec, image_model
from sam3_radio.evaluate.store import OK, UnitResult
from sam3_radio.metrics.cgf1 import check_ground_truth, evaluate_cgf1, evaluated_pair_ids
from sam3_radio.predict.export import atomic_write_text, encode_rle
from sam3_radio.predict.io import ImageReadError, load_image

logger = logging.getLogger(__name__)

GOLD_CATEGORY_ID = 1
GOLD_ANNOTATORS = ("a", "b", "c")
KEY_SEPARATOR = "::"


class GoldTask:
    """SA-Co/Gold subsets `cfg.data.subsets`, with files from `cfg.data.root` unless given."""

    name = "gold"
    latency_unit = "image"

    def __init__(self, cfg: Any):
        self.dump_threshold = float(cfg.dump_threshold)
        self.score_threshold = float(cfg.score_threshold)
        self.subsets: dict[str, dict[str, Any]] = {}
        if not cfg.data.subsets:
            raise ValueError("no SA-Co/Gold subset configured: set data.subsets")
        for subset in cfg.data.subsets:
            subset = str(subset)
            gt_files = [Path(path) for path in self._gt_files(cfg.data, subset)]
            for path in gt_files:
                if not path.is_file():
                    raise FileNotFoundError(f"Gold ground truth {path} (subset {subset}) not found")
            images = Path(cfg.data.images.get(subset, cfg.data.images.default))
            if not images.is_dir():
                raise FileNotFoundError(
                    f"Gold image folder {images} (subset {subset}) not found: set "
                    f"data.images.{subset} or data.images.default"
                )
            datasets = [json.loads(path.read_text()) for path in gt_files]
            for path, dataset in zip(gt_files, datasets):
                check_ground_truth(dataset, str(path), "segm")
            pairs = {image["id"]: image for image in datasets[0]["images"]}
            by_file: dict[str, list[int]] = defaultdict(list)
            for pair_id in evaluated_pair_ids(datasets):
                by_file[pairs[pair_id]["file_name"]].append(pair_id)
            self.subsets[str(subset)] = {
                "gt_files": gt_files,
                "datasets": datasets,
                "images": images,
                "pairs": pairs,
                "by_file": dict(by_file),
            }
        self.predictor = None

    @staticmethod
    def _gt_files(data: Any, subset: str) -> list[str]:
        explicit = (data.get("gt_files") or {}).get(subset)
        if explicit:
            return list(explicit)
        return [
            str(Path(data.root) / f"gold_{subset}_merged_{annotator}_release_test.json")
            for annotator in GOLD_ANNOTATORS
        ]

    def units(self) -> list[str]:
        return [
            f"{subset}{KEY_SEPARATOR}{file_name}"
            for subset, entry in self.subsets.items()
            for file_name in sorted(entry["by_file"])
        ]

    def setup(self, spec: ModelSpec, device: str) -> None:
        from sam3_radio.predict.image import Sam3ImagePredictor

        self.predictor = Sam3ImagePredictor(image_model(spec, device), dtype=spec.dtype)

    def run_unit(self, key: str) -> UnitResult:
        subset, file_name = key.split(KEY_SEPARATOR, 1)
        entry = self.subsets[subset]
        path = entry["images"] / file_name
        try:
            image = load_image(path)
        except ImageReadError as error:
            return UnitResult.skipped(key, str(error))
        pair_ids = entry["by_file"][file_name]
        for pair_id in pair_ids:
            pair = entry["pairs"][pair_id]
            if (pair["width"], pair["height"]) != image.size:
                return UnitResult.skipped(
                    key,
                    f"image {path} is {image.width}x{image.height} but pair {pair_id} says "
                    f"{pair['width']}x{pair['height']}: the file does not match the ground truth",
                )

        start = time.perf_counter()
        self.predictor.set_image(image)
        records = []
        for pair_id in pair_ids:
            text = entry["pairs"][pair_id]["text_input"]
            detections = self.predictor.predict(text=text, threshold=self.dump_threshold)
            records += _gold_records(detections, pair_id, image.width, image.height)
        payload = {"pair_ids": pair_ids, "results": records}
        return UnitResult(key, payload, time.perf_counter() - start, 1)

    def finalize(self, results: dict[str, UnitResult], run_dir: Path) -> dict[str, Any]:
        per_subset: dict[str, dict[str, float]] = {}
        for subset, entry in self.subsets.items():
            prefix = f"{subset}{KEY_SEPARATOR}"
            finished = [
                result
                for key, result in results.items()
                if key.startswith(prefix) and result.status == OK
            ]
            if not finished:
                logger.warning("Gold subset %s: every image was skipped", subset)
                continue
            predictions = [item for result in finished for item in result.payload["results"]]
            evaluated = {pair_id for result in finished for pair_id in result.payload["pair_ids"]}
            dump = run_dir / f"gold_{subset}" / "coco_predictions_segm.json"
            atomic_write_text(dump, json.dumps(predictions))
            scores = {}
            for iou_type in ("segm", "bbox"):
                scores.update(
                    evaluate_cgf1(
                        entry["datasets"],
                        predictions,
                        iou_type,
                        self.score_threshold,
                        name=str(dump),
                        only_pairs=evaluated,
                    )
                )
            per_subset[subset] = scores

        headline: dict[str, float] = {}
        summary: dict[str, dict[str, float]] = {}
        for subset, scores in per_subset.items():
            summary[subset] = {
                "cgF1": 100 * scores["cgF1_eval_segm_cgF1"],
                "IL_MCC": scores["cgF1_eval_segm_IL_MCC"],
                "pmF1": 100 * scores["cgF1_eval_segm_positive_micro_F1"],
                "box cgF1": 100 * scores["cgF1_eval_bbox_cgF1"],
            }
        if summary:
            average = {
                name: float(np.mean([values[name] for values in summary.values()]))
                for name in ("cgF1", "IL_MCC", "pmF1", "box cgF1")
            }
            summary["average"] = average
            headline = {f"mask {name}" if name != "box cgF1" else name: value for name, value in average.items()}
            if len(per_subset) > 1:
                headline.update({f"cgF1 {subset}": summary[subset]["cgF1"] for subset in per_subset})
        return {
            "headline": headline,
            "metrics": {"summary": summary, "subsets": per_subset},
            "notes": [
                "cgF1 and pmF1 x 100, IL_MCC raw, as SAM 3 reports them; the average is the "
                "mean over subsets"
            ],
        }


def _gold_records(detections, pair_id: int, width: int, height: int) -> list[dict]:
    records = []
    scale = np.array([width, height, width, height], dtype=np.float64)
    for index in range(len(detections)):
        x0, y0, x1, y1 = detections.xyxy[index].astype(np.float64) / scale
        mask = detections.mask[index]
        records.append(
            {
                "image_id": pair_id,
                "category_id": GOLD_CATEGORY_ID,
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "score": float(detections.confidence[index]),
                "segmentation": encode_rle(mask),
                "area": float(mask.sum()) / (width * height),
            }
        )
    return records
