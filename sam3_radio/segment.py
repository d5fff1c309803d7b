"""The `segment` job: prompt SAM 3 on image files and write overlays and COCO JSON."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import supervision as sv
from tqdm import tqdm

from sam3_radio.predict.export import (
    RANDOM_WEIGHTS_WARNING,
    draw_overlay,
    write_coco_json,
    write_overlay_png,
)
from sam3_radio.predict.image import Sam3ImagePredictor
from sam3_radio.predict.io import ImageReadError, load_image

logger = logging.getLogger(__name__)


@dataclass
class SegmentRequest:
    """Prompts applied to every image. Boxes are pixel xyxy."""

    texts: list[str] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    negative_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    interactive: bool = False
    threshold: float | None = None


@dataclass
class ImageResult:
    """Outcome of `segment_images` for one file."""

    path: Path
    detections: sv.Detections | None
    seconds: float
    error: str | None = None


def _run_prompts(predictor: Sam3ImagePredictor, request: SegmentRequest) -> sv.Detections:
    if request.interactive:
        if request.texts or request.negative_boxes:
            raise ValueError("interactive mode takes --box prompts only, not text or negative boxes")
        return predictor.predict_boxes(request.boxes)
    if not request.texts:
        return predictor.predict(
            boxes=request.boxes,
            negative_boxes=request.negative_boxes,
            threshold=request.threshold,
        )
    per_text = predictor.predict_texts(
        request.texts,
        boxes=request.boxes,
        negative_boxes=request.negative_boxes,
        threshold=request.threshold,
    )
    merged = sv.Detections.merge(per_text)
    return merged


def segment_images(
    predictor: Sam3ImagePredictor,
    paths: list[Path],
    request: SegmentRequest,
    out_dir: Path,
    metadata: dict,
) -> list[ImageResult]:
    """Run `request` on each image, writing `<stem>.png` and `<stem>.json` to `out_dir`.

    A file that cannot be read or prompted is logged and skipped; the others
    still run. Output names take the file stem, with a numeric suffix when two
    inputs share a stem.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    banner = RANDOM_WEIGHTS_WARNING if metadata.get("random_weights") else None
    used_stems: set[str] = set()
    results = []
    for image_id, path in enumerate(tqdm(paths, desc="segment", unit="image"), start=1):
        start = time.perf_counter()
        try:
            image = load_image(path)
            predictor.set_image(image)
            detections = _run_prompts(predictor, request)
        except (ImageReadError, ValueError) as error:
            logger.error("skipped %s: %s", path, error)
            results.append(ImageResult(path, None, time.perf_counter() - start, str(error)))
            continue
        stem = _unique_stem(path.stem, used_stems)
        record = {"id": image_id, "file_name": str(path), "width": image.width, "height": image.height}
        file_metadata = {**metadata, "prompts": asdict(request)}
        write_coco_json(out_dir / f"{stem}.json", record, detections, file_metadata)
        write_overlay_png(out_dir / f"{stem}.png", draw_overlay(image, detections, banner), file_metadata)
        seconds = time.perf_counter() - start
        logger.info("%s: %d detections in %.2f s", path.name, len(detections), seconds)
        results.append(ImageResult(path, detections, seconds))
    return results


def _unique_stem(stem: str, used: set[str]) -> str:
    candidate, index = stem, 1
    while candidate in used:
        index += 1
        candidate = f"{stem}-{index}"
    used.add(candidate)
    return candidate


def detection_rows(results: list[ImageResult]) -> list[list[str]]:
    """Return one table row per detection (or per skipped image) for printing."""
    rows = []
    for result in results:
        if result.detections is None:
            rows.append([result.path.name, "-", "skipped", "-", result.error or ""])
            continue
        if len(result.detections) == 0:
            rows.append([result.path.name, "-", "no detections", "-", ""])
        names = result.detections.data.get("class_name", [])
        for index in range(len(result.detections)):
            x0, y0, x1, y1 = result.detections.xyxy[index]
            rows.append(
                [
                    result.path.name,
                    str(index),
                    str(names[index]),
                    f"{result.detections.confidence[index]:.3f}",
                    f"{x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}",
                ]
            )
    return rows
