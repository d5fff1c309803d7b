"""Read YOLO detection labels and their images into a `BoxDataset`.

Layout: the labels folder mirrors the image folder, with `<stem>.txt` for each
image. A line is `class cx cy w h` (normalised to [0, 1]), or a segmentation
line `class x1 y1 x2 y2 ...` whose polygon becomes the annotation's existing
mask. An image without a label file has no boxes, as in YOLO training.
Category ids are the YOLO class indices.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from sam3_radio.annotate.dataset import BoxDataset, BoxPrompt, ImageTask, SkippedItem
from sam3_radio.annotate.image_files import list_images, upright_size
from sam3_radio.predict.io import ImageReadError

logger = logging.getLogger(__name__)

CLASS_FILE_NAMES = ("data.yaml", "classes.txt")


def read_class_names(path: Path) -> dict[int, str]:
    """Read class names from a data.yaml (`names` list or mapping) or a text file, one a line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read class names from {path}: {error}") from error
    if path.suffix.lower() not in (".yaml", ".yml"):
        names = [line.strip() for line in text.splitlines() if line.strip()]
        return dict(enumerate(names))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"cannot parse {path} as YAML: {error}") from error
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        return {index: str(name) for index, name in enumerate(names)}
    if isinstance(names, dict):
        try:
            return {int(key): str(value) for key, value in names.items()}
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: 'names' keys must be class indices") from error
    raise ValueError(f"{path} has no 'names' list or mapping: add the class names")


def _find_class_file(labels_dir: Path) -> Path | None:
    for folder in (labels_dir, labels_dir.parent):
        for name in CLASS_FILE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def _parse_line(
    line: str, width: int, height: int
) -> tuple[int, tuple[float, float, float, float], list[float] | None]:
    """Parse one label line into (class index, pixel xyxy, pixel polygon or None)."""
    tokens = line.split()
    if len(tokens) < 5 or (len(tokens) > 5 and (len(tokens) - 1) % 2 != 0):
        raise ValueError(f"line {line!r} is neither 'class cx cy w h' nor a polygon")
    try:
        class_index = int(tokens[0])
        values = [float(token) for token in tokens[1:]]
    except ValueError as error:
        raise ValueError(f"line {line!r} has a value that is not a number") from error
    if len(values) == 4:
        cx, cy, w, h = values
        xyxy = (
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
        )
        return class_index, xyxy, None
    if len(values) < 6:
        raise ValueError(f"line {line!r} has a polygon with fewer than three points")
    polygon = [
        value * (width if position % 2 == 0 else height) for position, value in enumerate(values)
    ]
    xs, ys = polygon[0::2], polygon[1::2]
    return class_index, (min(xs), min(ys), max(xs), max(ys)), polygon


def _read_label_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"unreadable label file: {error}") from error
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_yolo(
    labels_dir: Path,
    image_root: Path,
    classes: Path | None = None,
    keep_existing_masks: bool = True,
) -> BoxDataset:
    """Read the images under `image_root` and their YOLO labels under `labels_dir`."""
    if not labels_dir.is_dir():
        raise ValueError(
            f"YOLO labels folder {labels_dir} not found: pass input.annotations=FOLDER"
        )
    class_file = classes or _find_class_file(labels_dir)
    names = read_class_names(class_file) if class_file else None
    if names is None:
        logger.warning(
            "no data.yaml or classes.txt beside %s: categories are named class_<index>; "
            "pass input.classes=FILE to name them",
            labels_dir,
        )
    document: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    tasks: list[ImageTask] = []
    skipped: list[SkippedItem] = []
    sources: list[Path] = []
    found_classes: set[int] = set()
    kept_masks = 0
    for image_path in list_images(image_root):
        relative = image_path.relative_to(image_root).as_posix()
        label_path = labels_dir / Path(relative).with_suffix(".txt")
        try:
            width, height = upright_size(image_path)
            lines = _read_label_lines(label_path) if label_path.is_file() else []
        except (ImageReadError, ValueError) as error:
            skipped.append(SkippedItem(f"image {relative}", str(error)))
            continue
        if label_path.is_file():
            sources.append(label_path)
        image_id = len(tasks) + 1
        task = ImageTask(relative, image_id, image_path, width, height)
        document["images"].append(
            {"id": image_id, "file_name": relative, "width": width, "height": height}
        )
        for line_number, line in enumerate(lines, start=1):
            item = f"{label_path.relative_to(labels_dir).as_posix()}:{line_number}"
            try:
                class_index, xyxy, polygon = _parse_line(line, width, height)
            except ValueError as error:
                skipped.append(SkippedItem(item, str(error)))
                continue
            if names is not None and class_index not in names:
                skipped.append(
                    SkippedItem(
                        item, f"class {class_index} is not in the class names of {class_file}"
                    )
                )
                continue
            found_classes.add(class_index)
            x0, y0, x1, y1 = xyxy
            bbox = [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)]
            index = len(document["annotations"])
            annotation = {
                "id": index + 1,
                "image_id": image_id,
                "category_id": class_index,
                "bbox": bbox,
                "area": round((x1 - x0) * (y1 - y0), 3),
                "iscrowd": 0,
            }
            document["annotations"].append(annotation)
            slot = task.add_annotation(index)
            if polygon is not None and keep_existing_masks:
                annotation["segmentation"] = [[round(value, 3) for value in polygon]]
                kept_masks += 1
                continue
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                skipped.append(SkippedItem(item, f"box {bbox} has zero area"))
                continue
            task.boxes.append(BoxPrompt(index, slot, class_index, (x0, y0, x1, y1)))
        tasks.append(task)
    if names is None:
        names = {index: f"class_{index}" for index in sorted(found_classes)}
    document["categories"] = [{"id": index, "name": name} for index, name in sorted(names.items())]
    logger.info(
        "read %s: %d images, %d labels, %d categories",
        labels_dir,
        len(tasks),
        len(document["annotations"]),
        len(names),
    )
    if class_file:
        sources.append(class_file)
    return BoxDataset(document, tasks, skipped, sources, kept_masks)
