"""The dataset that every input format is read into.

Each reader turns its format into a COCO-form `document` (images, categories,
annotations, plus any other top-level keys of a COCO input) and a list of
`ImageTask`s, one per image to process. Annotations keep their original fields,
so the writers only add masks and scores to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BoxPrompt:
    """One box of an image.

    `index` is the annotation's position in `document["annotations"]` and
    `slot` its position among the image's annotations. The journal stores
    `slot`, which stays valid when annotations of other images change.
    """

    index: int
    slot: int
    category_id: int
    xyxy: tuple[float, float, float, float]  # pixel xyxy in the upright image


@dataclass
class ImageTask:
    """One image to process.

    `key` identifies the image in the journal: the COCO image id as text, or
    the image path relative to the image folder for YOLO and VOC inputs.
    `width` and `height` are the size the annotations were made for, or None
    when the annotations do not state it. `annotation_indices` lists the
    positions in `document["annotations"]` of all the image's annotations,
    prompted or not, in file order.
    """

    key: str
    image_id: int
    path: Path
    width: int | None
    height: int | None
    boxes: list[BoxPrompt] = field(default_factory=list)
    annotation_indices: list[int] = field(default_factory=list)

    def add_annotation(self, index: int) -> int:
        """Record the annotation at `index` as the image's next one and return its slot."""
        self.annotation_indices.append(index)
        return len(self.annotation_indices) - 1


@dataclass(frozen=True)
class SkippedItem:
    """An image, annotation or file left out of the run, and why."""

    item: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"item": self.item, "reason": self.reason}


@dataclass
class BoxDataset:
    """A dataset read from any input format, in COCO form.

    `source_files` are the annotation files read, for the journal fingerprint.
    `kept_masks` counts annotations left with the segmentation they had.
    """

    document: dict[str, Any]
    tasks: list[ImageTask]
    skipped: list[SkippedItem]
    source_files: list[Path]
    kept_masks: int = 0

    @property
    def categories(self) -> list[dict[str, Any]]:
        return self.document["categories"]

    def category_names(self) -> dict[int, str]:
        return {int(category["id"]): str(category["name"]) for category in self.categories}
