"""The `annotate` job: read boxes, prompt SAM 3 per image, journal, write datasets.

Each finished image is appended to the journal before the next one starts.
The final COCO and YOLO files are rebuilt from the journal at the end of every
run and replaced atomically, so killing the process at any moment and running
the same command again gives the same files as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from sam3_radio.annotate.coco_reader import read_coco
from sam3_radio.annotate.config import AnnotateSettings
from sam3_radio.annotate.dataset import BoxDataset, ImageTask, SkippedItem
from sam3_radio.annotate.journal import Journal
from sam3_radio.annotate.prompting import ImageSkipError, annotate_image
from sam3_radio.annotate.voc_reader import read_voc
from sam3_radio.annotate.writers import build_coco_document, write_coco, write_yolo
from sam3_radio.annotate.yolo_reader import read_yolo
from sam3_radio.predict.export import RANDOM_WEIGHTS_WARNING, atomic_write_text
from sam3_radio.predict.image import Sam3ImagePredictor
from sam3_radio.predict.io import ImageReadError, load_image

logger = logging.getLogger(__name__)

# Images decoded ahead of the one being prompted, on a background thread.
PREFETCH = 2


def read_dataset(settings: AnnotateSettings) -> BoxDataset:
    """Read the input annotations in `settings.input_format`."""
    if settings.input_format == "coco":
        return read_coco(settings.annotations, settings.images, settings.keep_existing_masks)
    if settings.input_format == "yolo":
        return read_yolo(
            settings.annotations, settings.images, settings.classes, settings.keep_existing_masks
        )
    return read_voc(settings.annotations, settings.images, settings.classes)


def prompt_digest(task: ImageTask, names: dict[int, str], settings: AnnotateSettings) -> str:
    """Return a digest of everything that decides an image's journal record.

    A journal record whose digest differs from the current one is stale (its
    boxes or category names changed), and the image runs again.
    """
    content: dict[str, Any] = {
        "path": task.path.name,
        "size": [task.width, task.height],
        "boxes": [[box.slot, box.category_id, *map(float, box.xyxy)] for box in task.boxes],
    }
    if settings.mode == "concept":
        content["names"] = sorted(names.items())
    encoded = json.dumps(content, sort_keys=True).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:16]


@dataclass
class AnnotationSummary:
    """Counts of one run over the whole dataset, journal included, and every skipped item."""

    images: int = 0
    images_finished: int = 0
    boxes_prompted: int = 0
    boxes_clipped: int = 0
    masks: int = 0
    prelabels: int = 0
    kept_masks: int = 0
    yolo_omitted_annotations: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        reasons = Counter(_reason_kind(item.reason) for item in self.skipped)
        return {
            "images": self.images,
            "images_finished": self.images_finished,
            "images_skipped": self.images - self.images_finished,
            "boxes_prompted": self.boxes_prompted,
            "boxes_clipped_to_image": self.boxes_clipped,
            "masks": self.masks,
            "prelabels": self.prelabels,
            "existing_masks_kept": self.kept_masks,
            "yolo_annotations_without_mask": self.yolo_omitted_annotations,
            "skipped_count": len(self.skipped),
            "skipped_by_reason": dict(sorted(reasons.items())),
            "skipped": [item.as_dict() for item in self.skipped],
        }


def _reason_kind(reason: str) -> str:
    """Return a short kind for a skip reason, e.g. 'image not found', for counting."""
    for kind in (
        "not found",
        "cannot read image",
        "duplicate image id",
        "is duplicated",
        "is not in 'images'",
        "is not in 'categories'",
        "is not in the class names",
        "zero area",
        "lies outside",
        "crowd annotation",
        "unreadable",
        "annotations give",
        "label file",
    ):
        if kind in reason:
            return kind
    return reason.split(":")[0][:60]


class _WarningLimiter:
    """Log the first `limit` skips of each kind, then only count them."""

    def __init__(self, limit: int):
        self.limit = limit
        self.counts: Counter[str] = Counter()

    def warn(self, item: SkippedItem) -> None:
        kind = _reason_kind(item.reason)
        self.counts[kind] += 1
        if self.counts[kind] <= self.limit:
            logger.warning("skipped %s: %s", item.item, item.reason)
        elif self.counts[kind] == self.limit + 1:
            logger.warning("more skips of kind %r are counted in the summary only", kind)


def _load(task: ImageTask) -> Image.Image:
    return load_image(task.path)


def _prefetched(tasks: list[ImageTask]) -> Iterator[tuple[ImageTask, Future]]:
    """Yield (task, future image) pairs while the next images decode on a thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotate-load") as pool:
        futures: list[tuple[ImageTask, Future]] = []
        position = 0
        while position < len(tasks) or futures:
            while position < len(tasks) and len(futures) <= PREFETCH:
                futures.append((tasks[position], pool.submit(_load, tasks[position])))
                position += 1
            yield futures.pop(0)


def provenance(model, settings: AnnotateSettings) -> dict[str, Any]:
    """Return how the masks were made, stored in the COCO output's `sam3_radio` key."""
    info = model.build_info
    result = {
        "tool": "sam3-radio annotate",
        "mode": settings.mode,
        "backbone": info.backbone,
        "window_size": info.window_size,
        "sam3_weights": info.sam3_weights,
        "radio_weights": info.radio_weights,
        "random_weights": info.random_weights,
        "dtype": settings.model.dtype,
        "score": "predicted mask IoU" if settings.mode == "boxes" else "detection score",
    }
    if info.random_weights:
        result["warning"] = RANDOM_WEIGHTS_WARNING
    return result


def build_model(settings: AnnotateSettings):
    """Build the image model that `settings.model` describes."""
    from sam3_radio.model.builder import build_sam3_image_model

    return build_sam3_image_model(
        settings.model.backbone,
        weights=settings.model.weights,
        radio_weights=settings.model.radio_weights,
        window_size=settings.model.window_size,
        device=settings.model.device,
        interactive=settings.mode == "boxes",
        seed=settings.model.seed,
    )


def _process(
    pending: list[ImageTask],
    journal: Journal,
    dataset: BoxDataset,
    predictor: Sam3ImagePredictor,
    settings: AnnotateSettings,
    digests: dict[str, str],
    limiter: _WarningLimiter,
) -> list[SkippedItem]:
    names = dataset.category_names()
    failures: list[SkippedItem] = []
    finished = len(dataset.tasks) - len(pending)
    with (
        logging_redirect_tqdm(),
        tqdm(
            total=len(dataset.tasks), initial=finished, unit="img", desc="annotate", smoothing=0.1
        ) as bar,
    ):
        for task, future in _prefetched(pending):
            try:
                image = future.result()
                record = annotate_image(predictor, task, image, dataset.document, names, settings)
            except (ImageReadError, ImageSkipError) as error:
                failures.append(SkippedItem(f"image {task.key}", str(error)))
                limiter.warn(failures[-1])
            except (ValueError, RuntimeError) as error:
                failures.append(SkippedItem(f"image {task.key}", f"prompting failed: {error}"))
                logger.exception("prompting image %s (%s) failed", task.key, task.path)
            else:
                record["digest"] = digests[task.key]
                journal.append(record)
                for item in record["skipped"]:
                    limiter.warn(SkippedItem(item["item"], item["reason"]))
            bar.update(1)
    return failures


def _summarise(
    dataset: BoxDataset, records: dict[str, dict[str, Any]], failures: list[SkippedItem]
) -> AnnotationSummary:
    summary = AnnotationSummary(images=len(dataset.tasks), kept_masks=dataset.kept_masks)
    summary.skipped.extend(dataset.skipped)
    for task in dataset.tasks:
        record = records.get(task.key)
        if record is None:
            continue
        summary.images_finished += 1
        summary.masks += len(record.get("masks", []))
        summary.prelabels += len(record.get("prelabels", []))
        summary.boxes_clipped += record.get("clipped", 0)
        summary.skipped.extend(SkippedItem(**item) for item in record["skipped"])
        summary.boxes_prompted += record.get("boxes", 0)
    summary.skipped.extend(failures)
    return summary


def _current_records(journal: Journal, digests: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Return the journal records of the dataset's images whose digest is current."""
    return {
        key: journal.records[key]
        for key, digest in digests.items()
        if key in journal.records and journal.records[key].get("digest") == digest
    }


def run_annotation(settings: AnnotateSettings, model=None) -> AnnotationSummary:
    """Run the whole job and return its summary; `model` skips building one (tests, notebooks)."""
    start = time.perf_counter()
    dataset = read_dataset(settings)
    names = dataset.category_names()
    journal = Journal.open(settings.journal_path, settings.journal_fingerprint())
    digests = {task.key: prompt_digest(task, names, settings) for task in dataset.tasks}
    records = _current_records(journal, digests)
    stale = sum(1 for key in journal.records if key in digests and key not in records)
    if stale:
        logger.warning(
            "%d journal records are stale (boxes changed): those images run again", stale
        )
    pending = [task for task in dataset.tasks if task.key not in records]
    limiter = _WarningLimiter(settings.max_warnings_per_reason)
    for item in dataset.skipped:
        limiter.warn(item)

    if model is None:
        model = build_model(settings)
    predictor = Sam3ImagePredictor(model, dtype=settings.model.dtype)
    if model.build_info.random_weights:
        logger.warning("annotating with RANDOM weights: masks and scores are meaningless")
    logger.info(
        "%d images: %d finished before, %d to do (%s mode, %s)",
        len(dataset.tasks),
        len(records),
        len(pending),
        settings.mode,
        model.build_info.backbone,
    )
    process_start = time.perf_counter()
    failures = _process(pending, journal, dataset, predictor, settings, digests, limiter)
    seconds = time.perf_counter() - process_start
    done_now = len(pending) - len(failures)
    if pending:
        logger.info(
            "prompted %d images in %.1f s (%.2f images/s)",
            done_now,
            seconds,
            done_now / max(seconds, 1e-9),
        )

    records = _current_records(journal, digests)
    summary = _summarise(dataset, records, failures)
    _write_outputs(dataset, records, settings, provenance(model, settings), summary)
    logger.info("finished in %.1f s", time.perf_counter() - start)
    return summary


def _write_outputs(
    dataset: BoxDataset,
    records: dict[str, dict[str, Any]],
    settings: AnnotateSettings,
    made_by: dict[str, Any],
    summary: AnnotationSummary,
) -> None:
    if settings.write_yolo:
        report = write_yolo(
            dataset,
            records,
            settings.labels_dir,
            settings.data_yaml_path,
            settings.images,
            settings.polygon_simplification,
        )
        summary.yolo_omitted_annotations = report.omitted_annotations
        summary.skipped.extend(report.skipped)
        logger.info("wrote YOLO labels to %s", settings.labels_dir)
    if settings.write_coco:
        document = build_coco_document(
            dataset, records, settings.mask_format, settings.polygon_simplification, made_by
        )
        write_coco(settings.coco_path, document)
        logger.info("wrote %s", settings.coco_path)
    text = json.dumps({"sam3_radio": made_by, **summary.as_dict()}, indent=1, ensure_ascii=False)
    atomic_write_text(settings.summary_path, text + "\n")
