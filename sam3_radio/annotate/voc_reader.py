"""Read Pascal VOC XML files into a `BoxDataset`.

`<bndbox>` values are 1-based inclusive pixel indices, as in the VOC devkit:
`xmin - 1` and `ymin - 1` give the top-left corner and `xmax`, `ymax` the far
edge. Category ids are 1, 2, ... in the order of the class names file, or of
the sorted names found. `pose`, `truncated`, `difficult` and `occluded` are
kept in each annotation's `attributes`.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path
from typing import Any

from sam3_radio.annotate.dataset import BoxDataset, BoxPrompt, ImageTask, SkippedItem
from sam3_radio.annotate.yolo_reader import read_class_names

logger = logging.getLogger(__name__)

ATTRIBUTE_TAGS = ("pose", "truncated", "difficult", "occluded")


def _read_xml(path: Path) -> ElementTree.Element:
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise ValueError(f"unreadable VOC file: {error}") from error
    if root.tag != "annotation":
        raise ValueError(f"root element is <{root.tag}>, not <annotation>")
    return root


def _text(element: ElementTree.Element, path: str) -> str | None:
    found = element.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _size(root: ElementTree.Element) -> tuple[int | None, int | None]:
    try:
        width, height = int(_text(root, "size/width")), int(_text(root, "size/height"))
    except (TypeError, ValueError):
        return None, None
    if width <= 0 or height <= 0:
        return None, None
    return width, height


def _box(element: ElementTree.Element) -> tuple[float, float, float, float]:
    try:
        xmin, ymin, xmax, ymax = (
            float(_text(element, f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax")
        )
    except (TypeError, ValueError) as error:
        raise ValueError("<bndbox> lacks a numeric xmin, ymin, xmax or ymax") from error
    x0, y0, x1, y1 = xmin - 1, ymin - 1, xmax, ymax
    if not all(math.isfinite(value) for value in (x0, y0, x1, y1)):
        raise ValueError("<bndbox> has a non-finite value")
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {xmin:g},{ymin:g},{xmax:g},{ymax:g} has zero area")
    return x0, y0, x1, y1


def _attributes(element: ElementTree.Element) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for tag in ATTRIBUTE_TAGS:
        value = _text(element, tag)
        if value is None:
            continue
        attributes[tag] = int(value) if value.lstrip("-").isdigit() else value
    return attributes


def _xml_files(annotations: Path) -> list[Path]:
    if annotations.is_file():
        return [annotations]
    if not annotations.is_dir():
        raise ValueError(f"VOC annotations {annotations} not found: pass an XML file or a folder")
    return sorted(
        annotations.rglob("*.xml"), key=lambda path: path.relative_to(annotations).as_posix()
    )


def read_voc(annotations: Path, image_root: Path, classes: Path | None = None) -> BoxDataset:
    """Read one VOC XML file or every XML file under a folder."""
    files = _xml_files(annotations)
    skipped: list[SkippedItem] = []
    roots: list[tuple[Path, ElementTree.Element]] = []
    for path in files:
        try:
            roots.append((path, _read_xml(path)))
        except ValueError as error:
            skipped.append(SkippedItem(f"file {path.name}", str(error)))
    if classes is not None:
        names = list(read_class_names(classes).values())
    else:
        found = {_text(obj, "name") for _, root in roots for obj in root.iter("object")}
        names = sorted(name for name in found if name)
    category_ids = {name: index + 1 for index, name in enumerate(names)}
    document: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": category_ids[name], "name": name} for name in names],
    }
    tasks: list[ImageTask] = []
    for path, root in roots:
        file_name = _text(root, "filename")
        if not file_name:
            skipped.append(SkippedItem(f"file {path.name}", "no <filename> element"))
            continue
        image_id = len(tasks) + 1
        width, height = _size(root)
        task = ImageTask(file_name, image_id, image_root / file_name, width, height)
        record: dict[str, Any] = {"id": image_id, "file_name": file_name}
        if width is not None:
            record.update(width=width, height=height)
        document["images"].append(record)
        for position, obj in enumerate(root.iter("object")):
            item = f"{path.name} object {position}"
            name = _text(obj, "name")
            if name not in category_ids:
                skipped.append(SkippedItem(item, f"class {name!r} is not in the class names"))
                continue
            try:
                x0, y0, x1, y1 = _box(obj)
            except ValueError as error:
                skipped.append(SkippedItem(item, str(error)))
                continue
            index = len(document["annotations"])
            annotation = {
                "id": index + 1,
                "image_id": image_id,
                "category_id": category_ids[name],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0,
            }
            attributes = _attributes(obj)
            if attributes:
                annotation["attributes"] = attributes
            document["annotations"].append(annotation)
            slot = task.add_annotation(index)
            task.boxes.append(BoxPrompt(index, slot, category_ids[name], (x0, y0, x1, y1)))
        tasks.append(task)
    # Two XML files for one image would make two journal entries with one key.
    key_counts = Counter(task.key for task in tasks)
    duplicated = {key for key, count in key_counts.items() if count > 1}
    for key in sorted(duplicated):
        skipped.append(SkippedItem(f"image {key}", "listed by more than one XML file"))
    tasks = [task for task in tasks if task.key not in duplicated]
    logger.info("read %d VOC files: %d images, %d categories", len(files), len(tasks), len(names))
    return BoxDataset(document, tasks, skipped, files, 0)
