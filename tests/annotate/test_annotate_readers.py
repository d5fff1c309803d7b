"""Readers, config checks and the journal, without a model."""

import json

import pytest
import torch
from .conftest import (
    SAMPLE_BOXES,
    coco_document,
    settings_for,
    voc_xml,
    write_json,
    write_voc_files,
    write_yolo_labels,
)
from sam3_radio.annotate.coco_reader import AnnotationFileError, read_coco
from sam3_radio.annotate.config import AnnotateConfigError
from sam3_radio.annotate.journal import Journal, JournalMismatchError
from sam3_radio.annotate.voc_reader import read_voc
from sam3_radio.annotate.yolo_reader import read_yolo


def reasons(dataset) -> dict[str, str]:
    return {item.item: item.reason for item in dataset.skipped}


def test_coco_reader_keeps_valid_boxes(tmp_path, shared_data):
    path = write_json(tmp_path / "boxes.json", coco_document())
    dataset = read_coco(path, shared_data / "images")
    assert [task.key for task in dataset.tasks] == ["1", "2", "3"]
    assert [len(task.boxes) for task in dataset.tasks] == [2, 2, 1]
    assert dataset.tasks[0].boxes[0].xyxy == (60, 220, 1650, 1000)
    assert dataset.skipped == []


def test_coco_reader_reports_bad_records(tmp_path, shared_data):
    document = coco_document(
        extra_annotations=[
            {"id": 201, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5]},
            {"id": 202, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 5]},
            {"id": 203, "image_id": 77, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 204, "image_id": 1, "category_id": 1, "bbox": "oops"},
            {"id": 205, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 1},
            {"id": 206, "image_id": 4, "category_id": 1, "bbox": [1, 1, 5, 5]},
        ]
    )
    document["images"].append({"id": 4, "file_name": "a.jpg", "width": 10, "height": 10})
    document["images"].append({"id": 4, "file_name": "b.jpg", "width": 10, "height": 10})
    dataset = read_coco(write_json(tmp_path / "boxes.json", document), shared_data / "images")
    found = reasons(dataset)
    assert "category id 99 is not in 'categories'" in found["annotation 201"]
    assert "zero area" in found["annotation 202"]
    assert "image id 77 is not in 'images'" in found["annotation 203"]
    assert "not four numbers" in found["annotation 204"]
    assert "crowd" in found["annotation 205"]
    assert "duplicated" in found["annotation 206"]
    assert "duplicate image id" in found["image 4 (images[3])"]
    assert "duplicate image id" in found["image 4 (images[4])"]
    assert [len(task.boxes) for task in dataset.tasks] == [2, 2, 1]


def test_coco_reader_keeps_existing_masks(tmp_path, shared_data):
    document = coco_document()
    document["annotations"][0]["segmentation"] = [[60, 220, 600, 220, 600, 900]]
    dataset = read_coco(write_json(tmp_path / "boxes.json", document), shared_data / "images")
    assert dataset.kept_masks == 1
    assert len(dataset.tasks[0].boxes) == 1
    assert dataset.tasks[0].boxes[0].slot == 1


def test_coco_reader_rejects_unreadable_file(tmp_path, shared_data):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(AnnotationFileError, match="cannot read annotation file"):
        read_coco(path, shared_data / "images")


def test_yolo_reader_converts_boxes_to_pixels(tmp_path, shared_data):
    labels = write_yolo_labels(tmp_path / "labels")
    dataset = read_yolo(labels, shared_data / "images")
    by_key = {task.key: task for task in dataset.tasks}
    x0, y0, x1, y1 = by_key["truck.jpg"].boxes[0].xyxy
    assert abs(x0 - 60) < 0.01 and abs(y0 - 220) < 0.01
    assert abs(x1 - 1650) < 0.01 and abs(y1 - 1000) < 0.01
    assert by_key["truck.jpg"].boxes[0].category_id == 0
    assert [category["name"] for category in dataset.categories] == ["truck", "window", "fruit"]


def test_yolo_reader_reports_bad_label_files(tmp_path, shared_data):
    labels = write_yolo_labels(tmp_path / "labels")
    (labels / "truck.txt").write_bytes(b"\xff\xfe\x00 not utf-8")
    (labels / "groceries.txt").write_text(
        "2 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n1 0.5 abc 0.1 0.1\n"
    )
    (labels / "test_image.txt").write_text("0 0.1 0.1 0.3 0.1 0.3 0.4\n")
    dataset = read_yolo(labels, shared_data / "images")
    found = reasons(dataset)
    assert "unreadable label file" in found["image truck.jpg"]
    assert "class 7 is not in the class names" in found["groceries.txt:2"]
    assert "not a number" in found["groceries.txt:3"]
    by_key = {task.key: task for task in dataset.tasks}
    assert len(by_key["groceries.jpg"].boxes) == 1
    assert by_key["test_image.jpg"].boxes == []
    assert dataset.kept_masks == 1


def test_voc_reader_keeps_attributes(tmp_path, shared_data):
    folder = write_voc_files(tmp_path / "voc")
    (folder / "broken.xml").write_text("<annotation><object>")
    dataset = read_voc(folder, shared_data / "images")
    assert "unreadable VOC file" in reasons(dataset)["file broken.xml"]
    truck = next(task for task in dataset.tasks if task.key == "truck.jpg")
    assert truck.boxes[0].xyxy == (60, 220, 1650, 1000)
    annotation = dataset.document["annotations"][truck.boxes[0].index]
    assert annotation["attributes"] == {"pose": "Frontal", "truncated": 0, "difficult": 1}
    assert [category["name"] for category in dataset.categories] == ["fruit", "truck", "window"]


def test_voc_reader_reports_unknown_class(tmp_path, shared_data):
    folder = tmp_path / "voc"
    folder.mkdir()
    (folder / "a.xml").write_text(voc_xml("truck.jpg", 1800, 1200, [("bus", (1, 1, 50, 50))]))
    classes = tmp_path / "classes.txt"
    classes.write_text("truck\n")
    dataset = read_voc(folder, shared_data / "images", classes)
    assert "class 'bus' is not in the class names" in reasons(dataset)["a.xml object 0"]


def test_config_rejects_output_equal_to_input(tmp_path):
    boxes = write_json(tmp_path / "annotations.json", coco_document())
    overrides = [f"input.annotations={boxes}", f"input.images={tmp_path}", f"output.dir={tmp_path}"]
    with pytest.raises(AnnotateConfigError, match="is also an input"):
        settings_for(overrides)


def test_config_rejects_yolo_output_over_input_labels(tmp_path):
    labels = write_yolo_labels(tmp_path / "out" / "labels" / "train")
    overrides = [
        "input.format=yolo",
        f"input.annotations={labels}",
        f"input.images={tmp_path}",
        f"output.dir={tmp_path / 'out'}",
    ]
    with pytest.raises(AnnotateConfigError, match="overlaps the input labels"):
        settings_for(overrides)


def test_config_names_missing_key(tmp_path):
    with pytest.raises(AnnotateConfigError, match="input.annotations is not set"):
        settings_for([f"output.dir={tmp_path}"])


def test_config_rejects_unknown_mode(tmp_path):
    overrides = [
        "mode=lasso",
        "input.annotations=a.json",
        "input.images=.",
        f"output.dir={tmp_path}",
    ]
    with pytest.raises(AnnotateConfigError, match="invalid mode='lasso'"):
        settings_for(overrides)


def test_journal_cuts_torn_last_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal.open(path, {"mode": "boxes"})
    journal.append({"image": "1", "masks": []})
    with open(path, "ab") as stream:
        stream.write(b'{"image": "2", "mas')
    reopened = Journal.open(path, {"mode": "boxes"})
    assert sorted(reopened.records) == ["1"]
    assert path.read_bytes().endswith(b"\n")
    reopened.append({"image": "2", "masks": []})
    lines = path.read_text().splitlines()
    assert [json.loads(line).get("image") for line in lines[1:]] == ["1", "2"]


def test_journal_ignores_corrupt_middle_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal.open(path, {"mode": "boxes"})
    with open(path, "ab") as stream:
        stream.write(b"garbage\n")
    journal.append({"image": "3", "masks": []})
    assert sorted(Journal.open(path, {"mode": "boxes"}).records) == ["3"]


def test_journal_rejects_other_fingerprint(tmp_path):
    path = tmp_path / "journal.jsonl"
    Journal.open(path, {"mode": "boxes"})
    with pytest.raises(JournalMismatchError, match="mode: 'boxes' -> 'concept'"):
        Journal.open(path, {"mode": "concept"})


def test_sample_boxes_fit_images(shared_data):
    from PIL import Image

    for name, (width, height, _) in SAMPLE_BOXES.items():
        assert Image.open(shared_data / "images" / name).size == (width, height)
