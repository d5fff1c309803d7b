import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from sam3_radio.annotate.config import compose_config, settings_from_config
from sam3_radio.annotate.pipeline import run_annotation

TINY_MODEL = ["model.backbone=tiny-pe", "model.weights=random", "model.device=cpu"]

# (file name, width, height, pixel xyxy boxes with category ids) for the shared sample images.
SAMPLE_BOXES = {
    "truck.jpg": (1800, 1200, [(1, (60, 220, 1650, 1000)), (2, (1000, 120, 1300, 420))]),
    "groceries.jpg": (800, 534, [(3, (100, 100, 300, 300)), (3, (420, 60, 700, 400))]),
    "test_image.jpg": (1280, 720, [(2, (200, 150, 600, 650))]),
}
CATEGORIES = [{"id": 1, "name": "truck"}, {"id": 2, "name": "window"}, {"id": 3, "name": "fruit"}]


@pytest.fixture(scope="session")
def annotate_model(tiny_pe_model):
    return tiny_pe_model


def coco_document(boxes=SAMPLE_BOXES, extra_annotations=()) -> dict:
    """Return a COCO box document for `boxes`, with ids from 101 and attributes on each box."""
    document = {
        "info": {"description": "annotate test set"},
        "licenses": [{"id": 1, "name": "test"}],
        "images": [],
        "categories": [dict(category, supercategory="thing") for category in CATEGORIES],
        "annotations": [],
    }
    annotation_id = 101
    for image_id, (name, (width, height, image_boxes)) in enumerate(boxes.items(), start=1):
        document["images"].append(
            {"id": image_id, "file_name": name, "width": width, "height": height, "license": 1}
        )
        for category_id, (x0, y0, x1, y1) in image_boxes:
            document["annotations"].append(
                {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": category_id,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "attributes": {"reviewer": "ann", "occluded": False},
                }
            )
            annotation_id += 1
    document["annotations"].extend(extra_annotations)
    return document


def write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


def write_yolo_labels(folder: Path, boxes=SAMPLE_BOXES, names=CATEGORIES) -> Path:
    """Write YOLO labels (class index = category id - 1) and a data.yaml for `boxes`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (width, height, image_boxes) in boxes.items():
        lines = []
        for category_id, (x0, y0, x1, y1) in image_boxes:
            cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
            w, h = (x1 - x0) / width, (y1 - y0) / height
            lines.append(f"{category_id - 1} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        (folder / Path(name).with_suffix(".txt")).write_text("\n".join(lines) + "\n")
    yaml_names = "\n".join(f"  - {category['name']}" for category in names)
    (folder / "data.yaml").write_text(f"names:\n{yaml_names}\n")
    return folder


def voc_xml(name: str, width: int, height: int, objects: list[tuple[str, tuple]]) -> str:
    """Return a VOC XML document; boxes are pixel xyxy, written 1-based as in the devkit."""
    parts = [
        f"<annotation><folder>images</folder><filename>{name}</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for class_name, (x0, y0, x1, y1) in objects:
        parts.append(
            f"<object><name>{class_name}</name><pose>Frontal</pose><truncated>0</truncated>"
            f"<difficult>1</difficult><bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


def write_voc_files(folder: Path, boxes=SAMPLE_BOXES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = {category["id"]: category["name"] for category in CATEGORIES}
    for name, (width, height, image_boxes) in boxes.items():
        objects = [(names[category_id], box) for category_id, box in image_boxes]
        (folder / Path(name).with_suffix(".xml")).write_text(voc_xml(name, width, height, objects))
    return folder


def settings_for(overrides: list[str]):
    return settings_from_config(compose_config([*TINY_MODEL, *overrides]))


BAD_ANNOTATIONS = [
    # Outside the 800x534 groceries image.
    {"id": 301, "image_id": 2, "category_id": 3, "bbox": [900, 10, 50, 50], "iscrowd": 0},
    {"id": 302, "image_id": 2, "category_id": 42, "bbox": [10, 10, 50, 50], "iscrowd": 0},
    {"id": 303, "image_id": 2, "category_id": 3, "bbox": [10, 10, 0, 50], "iscrowd": 0},
    {"id": 304, "image_id": 4, "category_id": 3, "bbox": [10, 10, 50, 50], "iscrowd": 0},
    {"id": 305, "image_id": 5, "category_id": 3, "bbox": [10, 10, 50, 50], "iscrowd": 0},
]


class TrunkCounter:
    """Count trunk forward calls and the boxes of each interactive decoder call."""

    def __init__(self, model, monkeypatch):
        self.trunk_calls = 0
        self.decoder_batches: list[int] = []
        trunk = model.backbone.vision_backbone.trunk
        trunk_forward = trunk.forward
        predict_inst = model.predict_inst

        def counted_forward(*args, **kwargs):
            self.trunk_calls += 1
            return trunk_forward(*args, **kwargs)

        def counted_predict_inst(state, **kwargs):
            self.decoder_batches.append(len(kwargs["box"]))
            return predict_inst(state, **kwargs)

        monkeypatch.setattr(trunk, "forward", counted_forward)
        monkeypatch.setattr(model, "predict_inst", counted_predict_inst)


@dataclass
class CocoRun:
    settings: object
    summary: object
    document: dict
    input_bytes: bytes
    boxes_path: Path
    counter: TrunkCounter


def bad_input_document(folder: Path) -> dict:
    """Return the sample COCO document plus a missing image, a corrupt image and bad boxes."""
    document = coco_document(extra_annotations=BAD_ANNOTATIONS)
    document["images"].append({"id": 4, "file_name": "missing.jpg", "width": 50, "height": 50})
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not really a jpeg")
    document["images"].append({"id": 5, "file_name": str(corrupt), "width": 50, "height": 50})
    return document


@pytest.fixture(scope="session")
def coco_run(tmp_path_factory, shared_data, annotate_model):
    """One boxes-mode run on the sample images with a few bad records, COCO in."""
    folder = tmp_path_factory.mktemp("coco_run")
    document = bad_input_document(folder)
    boxes = write_json(folder / "boxes.json", document)
    before = boxes.read_bytes()
    settings = settings_for(
        [
            f"input.annotations={boxes}",
            f"input.images={shared_data / 'images'}",
            f"output.dir={folder / 'out'}",
        ]
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        counter = TrunkCounter(annotate_model, monkeypatch)
        summary = run_annotation(settings, model=annotate_model)
    return CocoRun(settings, summary, document, before, boxes, counter)
