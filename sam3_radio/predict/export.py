"""Write predictions as COCO results JSON and overlay images.

COCO RLE masks follow pycocotools: uint8 masks in Fortran order, with the
`counts` bytes decoded to UTF-8 text so the JSON is portable.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pycocotools import mask as mask_utils

from sam3_radio.predict.boxes import xyxy_to_xywh

RANDOM_WEIGHTS_WARNING = "RANDOM WEIGHTS: masks and scores are meaningless"


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode one bool [H, W] mask as a COCO RLE dict with text counts."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE dict (text or bytes counts) to a bool [H, W] mask."""
    counts = rle["counts"]
    if isinstance(counts, str):
        rle = {"size": rle["size"], "counts": counts.encode("utf-8")}
    return mask_utils.decode(rle).astype(bool)


def detections_to_coco_results(
    detections: sv.Detections, image_id: int, category_ids: dict[str, int]
) -> list[dict[str, Any]]:
    """Turn detections into COCO result records (RLE mask, pixel xywh box, score)."""
    results = []
    boxes = xyxy_to_xywh(detections.xyxy) if len(detections) else np.zeros((0, 4))
    names = detections.data.get("class_name", np.array(["object"] * len(detections)))
    for index in range(len(detections)):
        mask = detections.mask[index]
        results.append(
            {
                "image_id": image_id,
                "category_id": category_ids[str(names[index])],
                "bbox": [round(float(value), 2) for value in boxes[index]],
                "score": round(float(detections.confidence[index]), 5),
                "segmentation": encode_rle(mask),
                "area": int(mask.sum()),
            }
        )
    return results


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_coco_json(
    path: str | Path,
    image_record: dict[str, Any],
    detections: sv.Detections,
    metadata: dict[str, Any],
) -> None:
    """Write one image's detections as a COCO-style file.

    The file contains `info` (how the results were made, including whether the
    weights were random), `images`, `categories` and `annotations`. The
    `annotations` list is a valid COCO results list for `COCO.loadRes`.
    """
    names = [str(name) for name in detections.data.get("class_name", [])]
    categories = sorted(set(names))
    category_ids = {name: index + 1 for index, name in enumerate(categories)}
    document = {
        "info": metadata,
        "images": [image_record],
        "categories": [{"id": category_ids[name], "name": name} for name in categories],
        "annotations": detections_to_coco_results(detections, image_record["id"], category_ids),
    }
    atomic_write_text(path, json.dumps(document, indent=1))


def draw_overlay(
    image: Image.Image, detections: sv.Detections, banner: str | None = None
) -> np.ndarray:
    """Draw masks, boxes and labels on `image`; return an RGB uint8 array."""
    scene = np.array(image.convert("RGB"))
    labels = [
        f"{name} {score:.2f}"
        for name, score in zip(detections.data.get("class_name", []), detections.confidence)
    ]
    scene = sv.MaskAnnotator(opacity=0.45).annotate(scene.copy(), detections)
    scene = sv.BoxAnnotator(thickness=max(1, min(scene.shape[:2]) // 400)).annotate(
        scene, detections
    )
    if len(detections) and min(scene.shape[:2]) >= 32:
        scene = sv.LabelAnnotator(text_scale=0.5).annotate(scene, detections, labels=labels)
    if banner:
        scene = _draw_banner(scene, banner)
    return scene


def _draw_banner(scene: np.ndarray, text: str) -> np.ndarray:
    height, width = scene.shape[:2]
    scale = max(0.3, width / 1400)
    thickness = max(1, int(scale * 2))
    (_, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    bar = min(height, text_height + baseline + 12)
    scene = scene.copy()
    scene[:bar] = (scene[:bar] * 0.3 + np.array([180, 0, 0]) * 0.7).astype(np.uint8)
    cv2.putText(
        scene, text, (6, bar - baseline - 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
        (255, 255, 255), thickness, cv2.LINE_AA,
    )
    return scene


def write_overlay_png(path: str | Path, scene: np.ndarray, metadata: dict[str, Any]) -> None:
    """Save an RGB overlay as PNG with `metadata` as JSON in a `sam3-radio` text chunk."""
    info = PngInfo()
    info.add_text("sam3-radio", json.dumps(metadata))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    Image.fromarray(scene).save(temporary, format="PNG", pnginfo=info)
    os.replace(temporary, path)
