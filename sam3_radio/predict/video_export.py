"""Write video tracking results: SA-Co/VEval masklets, mask label images, annotated frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv
from PIL import Image

from sam3_radio.predict.boxes import xyxy_to_xywh
from sam3_radio.predict.export import _draw_banner, decode_rle, encode_rle


class MaskletRecorder:
    """Collect per-frame detections into masklets, stored as RLE.

    `record(frame_index, detections)` keeps each object's RLE mask, pixel xywh
    box and area; `veval_predictions` returns them in the SA-Co/VEval
    prediction format.
    """

    def __init__(self, num_frames: int):
        self.num_frames = num_frames
        self._frames: dict[int, dict[int, dict[str, Any]]] = {}
        self._best_scores: dict[int, float] = {}

    @property
    def frame_indices(self) -> list[int]:
        return sorted(self._frames)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._best_scores)

    def record(self, frame_index: int, detections: sv.Detections) -> None:
        """Store the masks, boxes and scores of one frame's detections."""
        boxes = xyxy_to_xywh(detections.xyxy) if len(detections) else np.zeros((0, 4))
        entries = {}
        for index in range(len(detections)):
            obj_id = int(detections.tracker_id[index])
            mask = detections.mask[index]
            score = float(detections.confidence[index])
            entries[obj_id] = {
                "segmentation": encode_rle(mask),
                "bbox": [round(float(value), 2) for value in boxes[index]],
                "area": int(mask.sum()),
                "score": score,
            }
            self._best_scores[obj_id] = max(score, self._best_scores.get(obj_id, score))
        self._frames[frame_index] = entries

    def detections(self, frame_index: int, class_name: str) -> sv.Detections:
        """Rebuild the recorded detections of one frame (empty when it was not tracked)."""
        entries = self._frames.get(frame_index, {})
        if not entries:
            return sv.Detections.empty()
        obj_ids = list(entries)
        xywh = np.array([entries[i]["bbox"] for i in obj_ids], dtype=np.float32)
        return sv.Detections(
            xyxy=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
            mask=np.stack([decode_rle(entries[i]["segmentation"]) for i in obj_ids]),
            confidence=np.array([entries[i]["score"] for i in obj_ids], dtype=np.float32),
            class_id=np.zeros(len(obj_ids), dtype=int),
            tracker_id=np.array(obj_ids, dtype=int),
            data={"class_name": np.array([class_name] * len(obj_ids))},
        )

    def veval_predictions(
        self,
        video_id: int,
        category_id: int,
        scores: dict[int, float] | None = None,
    ) -> list[dict[str, Any]]:
        """Return one prediction per masklet in the SA-Co/VEval format.

        Each has `video_id`, `category_id`, `score` (from `scores`, else the
        object's highest per-frame score), and `bboxes`, `segmentations` and
        `areas` with one item per video frame, None where the object has no mask.
        """
        scores = scores or {}
        predictions = []
        for obj_id in self.object_ids:
            per_frame = [self._frames.get(t, {}).get(obj_id) for t in range(self.num_frames)]
            predictions.append(
                {
                    "video_id": video_id,
                    "category_id": category_id,
                    "score": float(scores.get(obj_id, self._best_scores[obj_id])),
                    "bboxes": [entry and entry["bbox"] for entry in per_frame],
                    "segmentations": [entry and entry["segmentation"] for entry in per_frame],
                    "areas": [entry and entry["area"] for entry in per_frame],
                }
            )
        return predictions


def mask_label_image(detections: sv.Detections, width: int, height: int) -> np.ndarray:
    """Return an [H, W] label image: object id + 1 where its mask is, 0 elsewhere.

    The dtype is uint8 when every id is below 255 and uint16 otherwise. Where
    masks overlap, the object listed last wins.
    """
    ids = np.asarray(detections.tracker_id if len(detections) else [], dtype=np.int64)
    dtype = np.uint8 if ids.size == 0 or ids.max() < 255 else np.uint16
    if ids.size and ids.max() >= np.iinfo(np.uint16).max:
        raise ValueError(f"object id {ids.max()} does not fit in a 16-bit label image")
    labels = np.zeros((height, width), dtype=dtype)
    for obj_id, mask in zip(ids, detections.mask if len(detections) else []):
        labels[mask] = obj_id + 1
    return labels


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Save a label image as an 8- or 16-bit grayscale PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(path, format="PNG")


class FrameAnnotator:
    """Draw tracked masks, boxes and `#id class score` labels, one color per object."""

    def __init__(self, banner: str | None = None):
        self.banner = banner
        lookup = sv.ColorLookup.TRACK
        self._masks = sv.MaskAnnotator(opacity=0.45, color_lookup=lookup)
        self._boxes = sv.BoxAnnotator(color_lookup=lookup)
        self._labels = sv.LabelAnnotator(text_scale=0.5, color_lookup=lookup)

    def annotate(self, rgb: np.ndarray, detections: sv.Detections) -> np.ndarray:
        """Return an annotated copy of an RGB uint8 [H, W, 3] frame."""
        scene = rgb.copy()
        if len(detections):
            names = detections.data.get("class_name", ["object"] * len(detections))
            labels = [
                f"#{obj_id} {name} {score:.2f}"
                for obj_id, name, score in zip(detections.tracker_id, names, detections.confidence)
            ]
            scene = self._masks.annotate(scene, detections)
            scene = self._boxes.annotate(scene, detections)
            scene = self._labels.annotate(scene, detections, labels=labels)
        if self.banner:
            scene = _draw_banner(scene, self.banner)
        return scene
