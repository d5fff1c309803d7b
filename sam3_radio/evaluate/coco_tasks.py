"""COCO instance segmentation with text prompts and with ground-truth box prompts.

- `coco_text`: every category name is a noun-phrase prompt on every image, as
  SAM 3 evaluates COCO. Each image keeps its `max_detections` best results
  over all categories. Scored as box and mask AP by pycocotools.
- `coco_box`: every non-crowd ground-truth box prompts the interactive
  predictor for one mask, scored by its predicted IoU. Reported as mask AP
  and as the mean IoU of each mask with its ground-truth mask, per category.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from sam3_radio.evaluate.models import ModelSpec, image_model
from sam3_radio.evaluate.store import OK, UnitResult
from sam3_radio.metrics.coco import (
    check_ground_truth_masks,
    evaluate_coco,
    load_coco,
    mask_iou,
    mean_iou_per_category,
    top_detections,
)
from sam3_radio.predict.export import atomic_write_text, detections_to_coco_results, encode_rle
from sam3_radio.predict.io import ImageReadError, load_image

logger = logging.getLogger(__name__)

RESULTS_FILE = "coco_results.json"
# Boxes per call of the interactive predictor, to bound memory on crowded images.
BOX_CHUNK = 32


class _CocoTask:
    latency_unit = "image"

    def __init__(self, cfg: Any):
        self.annotations = Path(cfg.data.annotations)
        self.images = Path(cfg.data.images)
        if not self.annotations.is_file():
            raise FileNotFoundError(
                f"COCO annotation file {self.annotations} not found: set data.annotations"
            )
        if not self.images.is_dir():
            raise FileNotFoundError(f"COCO image folder {self.images} not found: set data.images")
        self.coco = load_coco(str(self.annotations))
        self.dtype = "fp32"
        self.predictor = None

    def units(self) -> list[str]:
        return [str(image_id) for image_id in sorted(self.coco.getImgIds())]

    def setup(self, spec: ModelSpec, device: str) -> None:
        from sam3_radio.predict.image import Sam3ImagePredictor

        self.predictor = Sam3ImagePredictor(image_model(spec, device), dtype=spec.dtype)

    def _read(self, key: str):
        """Return (image_id, PIL image) or a skipped result."""
        image_id = int(key)
        info = self.coco.imgs[image_id]
        path = self.images / info["file_name"]
        try:
            image = load_image(path)
        except ImageReadError as error:
            return image_id, UnitResult.skipped(key, str(error))
        expected = (info.get("width"), info.get("height"))
        if None not in expected and image.size != expected:
            return image_id, UnitResult.skipped(
                key,
                f"image {path} is {image.width}x{image.height} but the ground truth says "
                f"{expected[0]}x{expected[1]}: the file does not belong to this annotation set",
            )
        return image_id, image

    def _evaluated_ids(self, results: dict[str, UnitResult]) -> list[int]:
        return [int(key) for key, result in results.items() if result.status == OK]

    def _write_results(self, results: dict[str, UnitResult], run_dir: Path) -> list[dict]:
        import json

        merged = [
            item
            for result in results.values()
            if result.status == OK
            for item in result.payload["results"]
        ]
        atomic_write_text(run_dir / RESULTS_FILE, json.dumps(merged))
        return merged


class CocoTextTask(_CocoTask):
    """COCO with one text prompt per category name per image."""

    name = "coco_text"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.score_threshold = float(cfg.score_threshold)
        self.max_detections = int(cfg.max_detections)
        self.prompt_template = str(cfg.get("prompt_template", "{name}"))
        self.prompts = {
            category["id"]: self.prompt_template.format(name=category["name"])
            for category in self.coco.dataset["categories"]
        }
        if cfg.get("iou_types") is not None:
            self.iou_types = list(cfg.iou_types)
        else:
            self.iou_types = ["bbox", "segm"]
        if "segm" in self.iou_types:
            check_ground_truth_masks(self.coco, str(self.annotations))

    def run_unit(self, key: str) -> UnitResult:
        image_id, image = self._read(key)
        if isinstance(image, UnitResult):
            return image
        start = time.perf_counter()
        self.predictor.set_image(image)
        records: list[dict] = []
        for category_id, prompt in self.prompts.items():
            detections = self.predictor.predict(text=prompt, threshold=self.score_threshold)
            records += detections_to_coco_results(detections, image_id, {prompt.strip(): category_id})
        records = top_detections(records, self.max_detections)
        return UnitResult(key, {"results": records}, time.perf_counter() - start, 1)

    def finalize(self, results: dict[str, UnitResult], run_dir: Path) -> dict[str, Any]:
        merged = self._write_results(results, run_dir)
        image_ids = self._evaluated_ids(results)
        metrics = {
            iou_type: evaluate_coco(self.coco, merged, iou_type, image_ids, str(run_dir / RESULTS_FILE))
            for iou_type in self.iou_types
        }
        headline = {}
        if "bbox" in metrics:
            headline["box AP"] = 100 * metrics["bbox"]["AP"]
            headline["box AP50"] = 100 * metrics["bbox"]["AP_50"]
        if "segm" in metrics:
            headline["mask AP"] = 100 * metrics["segm"]["AP"]
            headline["mask AP50"] = 100 * metrics["segm"]["AP_50"]
        return {
            "headline": headline,
            "metrics": metrics,
            "notes": [
                f"score threshold {self.score_threshold}, top {self.max_detections} "
                "detections per image; AP on a 0-100 scale in the table"
            ],
        }


class CocoBoxTask(_CocoTask):
    """COCO with every ground-truth box as a prompt of the interactive predictor."""

    name = "coco_box"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        check_ground_truth_masks(self.coco, str(self.annotations))

    def run_unit(self, key: str) -> UnitResult:
        image_id, image = self._read(key)
        if isinstance(image, UnitResult):
            return image
        annotations = [
            annotation
            for annotation in self.coco.imgToAnns[image_id]
            if not annotation.get("iscrowd", 0)
        ]
        usable = [item for item in annotations if item["bbox"][2] > 0 and item["bbox"][3] > 0]
        degenerate = [item["id"] for item in annotations if item not in usable]
        if degenerate:
            logger.warning("image %d: left out %d zero-size boxes %s", image_id, len(degenerate), degenerate[:5])
        if not usable:
            return UnitResult(key, {"results": [], "ious": [], "degenerate": degenerate}, 0.0, 0)

        start = time.perf_counter()
        self.predictor.set_image(image)
        masks, scores = [], []
        for first in range(0, len(usable), BOX_CHUNK):
            chunk = usable[first : first + BOX_CHUNK]
            boxes = np.array(
                [[x, y, x + w, y + h] for x, y, w, h in (item["bbox"] for item in chunk)],
                dtype=np.float32,
            )
            detections = self.predictor.predict_boxes(boxes)
            masks += list(detections.mask)
            scores += [float(score) for score in detections.confidence]
        seconds = time.perf_counter() - start

        records, ious = [], []
        for annotation, mask, score in zip(usable, masks, scores):
            records.append(_mask_record(image_id, annotation["category_id"], mask, score))
            truth = self.coco.annToMask(annotation).astype(bool)
            ious.append([annotation["id"], annotation["category_id"], mask_iou(mask, truth)])
        payload = {"results": records, "ious": ious, "degenerate": degenerate}
        return UnitResult(key, payload, seconds, 1)

    def finalize(self, results: dict[str, UnitResult], run_dir: Path) -> dict[str, Any]:
        merged = self._write_results(results, run_dir)
        image_ids = self._evaluated_ids(results)
        segm = evaluate_coco(self.coco, merged, "segm", image_ids, str(run_dir / RESULTS_FILE))
        names = {category["id"]: category["name"] for category in self.coco.dataset["categories"]}
        records = [
            (category_id, value)
            for result in results.values()
            if result.status == OK
            for _, category_id, value in result.payload["ious"]
        ]
        degenerate = sum(
            len(result.payload.get("degenerate", []))
            for result in results.values()
            if result.status == OK
        )
        iou = mean_iou_per_category(records, names)
        notes = ["masks from ground-truth box prompts; AP and IoU on a 0-100 scale in the table"]
        if degenerate:
            notes.append(f"{degenerate} zero-size ground-truth boxes were not prompted")
        return {
            "headline": {
                "mask AP": 100 * segm["AP"],
                "mask AP50": 100 * segm["AP_50"],
                "mIoU": 100 * iou["mIoU"],
                "mIoU (per category)": 100 * iou["mIoU_categories"],
            },
            "metrics": {"segm": segm, "iou": iou},
            "notes": notes,
        }


def _mask_record(image_id: int, category_id: int, mask: np.ndarray, score: float) -> dict:
    rows, columns = np.nonzero(mask)
    if len(rows):
        x0, y0, x1, y1 = columns.min(), rows.min(), columns.max() + 1, rows.max() + 1
        bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    else:
        bbox = [0.0, 0.0, 0.0, 0.0]
    return {
        "image_id": image_id,
        "category_id": category_id,
        "bbox": bbox,
        "score": round(float(score), 5),
        "segmentation": encode_rle(mask),
        "area": int(mask.sum()),
    }
