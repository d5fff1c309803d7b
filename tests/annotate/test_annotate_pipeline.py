"""The annotate pipeline with the tiny random-weight model, in process."""

import json

import numpy as np
import pytest
from .conftest import (
    SAMPLE_BOXES,
    TrunkCounter,
    coco_document,
    settings_for,
    write_json,
    write_voc_files,
    write_yolo_labels,
)
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from sam3_radio.annotate.journal import JournalMismatchError
from sam3_radio.annotate.pipeline import run_annotation
from sam3_radio.predict.export import decode_rle


def test_coco_run_keeps_input_unchanged(coco_run):
    assert coco_run.boxes_path.read_bytes() == coco_run.input_bytes


def test_coco_run_adds_mask_and_score_per_box(coco_run):
    settings = coco_run.settings
    output = json.loads(settings.coco_path.read_text())
    by_id = {annotation["id"]: annotation for annotation in output["annotations"]}
    for annotation_id in range(101, 106):
        annotation = by_id[annotation_id]
        assert annotation["segmentation"]["counts"]
        assert 0.0 <= annotation["score"] <= 1.5
        assert annotation["area"] == int(decode_rle(annotation["segmentation"]).sum())


def test_coco_run_keeps_ids_categories_attributes(coco_run):
    settings, document = coco_run.settings, coco_run.document
    output = json.loads(settings.coco_path.read_text())
    assert output["info"] == document["info"]
    assert output["licenses"] == document["licenses"]
    assert output["categories"] == document["categories"]
    assert output["images"] == document["images"]
    assert [a["id"] for a in output["annotations"]] == [a["id"] for a in document["annotations"]]
    for original, written in zip(document["annotations"], output["annotations"]):
        for key in ("image_id", "category_id", "bbox", "iscrowd", "attributes"):
            assert written.get(key) == original.get(key)


def test_coco_run_marks_random_weights(coco_run):
    settings = coco_run.settings
    output = json.loads(settings.coco_path.read_text())
    assert output["sam3_radio"]["random_weights"] is True
    assert "meaningless" in output["sam3_radio"]["warning"]


def test_coco_run_loads_in_pycocotools(coco_run):
    settings = coco_run.settings
    coco = COCO(str(settings.coco_path))
    annotation = coco.loadAnns([101])[0]
    height, width = 1200, 1800
    assert coco.annToMask(annotation).shape == (height, width)


def test_coco_run_reports_each_bad_input(coco_run):
    summary = coco_run.summary
    reasons = {item.item: item.reason for item in summary.skipped}
    assert "lies outside the 800x534 image" in reasons["annotation 301"]
    assert "category id 42 is not in 'categories'" in reasons["annotation 302"]
    assert "zero area" in reasons["annotation 303"]
    assert "not found" in reasons["image 4"]
    assert "cannot read image" in reasons["image 5"]


def test_coco_run_summary_counts(coco_run):
    settings, summary = coco_run.settings, coco_run.summary
    assert summary.images == 5
    assert summary.images_finished == 3
    assert summary.boxes_prompted == 5
    assert summary.masks == 5
    written = json.loads(settings.summary_path.read_text())
    assert written["skipped_count"] == len(summary.skipped)
    assert written["images_skipped"] == 2


def test_coco_run_writes_yolo_segmentation(coco_run):
    settings = coco_run.settings
    assert (settings.labels_dir / "truck.txt").is_file()
    lines = (settings.labels_dir / "truck.txt").read_text().splitlines()
    assert len(lines) == 2
    classes = [int(line.split()[0]) for line in lines]
    assert classes == [0, 1]
    coordinates = [float(value) for value in lines[0].split()[1:]]
    assert len(coordinates) >= 6
    assert all(0.0 <= value <= 1.0 for value in coordinates)
    data = settings.data_yaml_path.read_text()
    assert "- truck" in data and "nc: 3" in data


def test_coco_run_skips_yolo_file_of_failed_image(coco_run):
    settings = coco_run.settings
    assert not (settings.labels_dir / "missing.txt").exists()


def test_rerun_finished_output_encodes_nothing(coco_run, annotate_model, monkeypatch):
    settings = coco_run.settings
    before = settings.coco_path.read_bytes()
    counter = TrunkCounter(annotate_model, monkeypatch)
    run_annotation(settings, model=annotate_model)
    assert counter.trunk_calls == 0
    assert settings.coco_path.read_bytes() == before


def test_rerun_with_other_mode_raises(coco_run, annotate_model):
    settings, boxes = coco_run.settings, coco_run.boxes_path
    other = settings_for(
        [
            "mode=concept",
            f"input.annotations={boxes}",
            f"input.images={settings.images}",
            f"output.dir={settings.output_dir}",
        ]
    )
    with pytest.raises(JournalMismatchError, match="mode: 'boxes' -> 'concept'"):
        run_annotation(other, model=annotate_model)


def test_one_encoder_pass_per_image(coco_run):
    assert coco_run.counter.trunk_calls == 3


def test_all_boxes_of_image_in_one_decoder_call(coco_run):
    assert coco_run.counter.decoder_batches == [2, 2, 1]


def test_batch_size_splits_decoder_calls_only(tmp_path, shared_data, annotate_model, monkeypatch):
    truck_only = {"truck.jpg": SAMPLE_BOXES["truck.jpg"]}
    boxes = write_json(tmp_path / "boxes.json", coco_document(truck_only))
    settings = settings_for(
        [
            f"input.annotations={boxes}",
            f"input.images={shared_data / 'images'}",
            f"output.dir={tmp_path / 'out'}",
            "output.yolo=false",
            "boxes.batch_size=1",
        ]
    )
    counter = TrunkCounter(annotate_model, monkeypatch)
    run_annotation(settings, model=annotate_model)
    assert counter.trunk_calls == 1
    assert counter.decoder_batches == [1, 1]


def test_changed_box_reruns_only_its_image(coco_run, tmp_path, annotate_model, monkeypatch):
    settings, document = coco_run.settings, coco_run.document
    changed = json.loads(json.dumps(document))
    changed["annotations"][4]["bbox"] = [210, 160, 300, 400]
    boxes = write_json(tmp_path / "changed.json", changed)
    rerun = settings_for(
        [
            f"input.annotations={boxes}",
            f"input.images={settings.images}",
            f"output.dir={tmp_path / 'out'}",
        ]
    )
    for path in ("journal.jsonl",):
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / path).write_bytes((settings.output_dir / path).read_bytes())
    counter = TrunkCounter(annotate_model, monkeypatch)
    run_annotation(rerun, model=annotate_model)
    assert counter.trunk_calls == 1
    assert counter.decoder_batches == [1]


def test_polygon_output_matches_rle_area(coco_run, tmp_path, annotate_model):
    settings, boxes = coco_run.settings, coco_run.boxes_path
    polygon = settings_for(
        [
            f"input.annotations={boxes}",
            f"input.images={settings.images}",
            f"output.dir={settings.output_dir}",
            "output.mask_format=polygon",
            "output.coco_file=polygons.json",
        ]
    )
    run_annotation(polygon, model=annotate_model)
    rle_output = json.loads(settings.coco_path.read_text())
    polygon_output = json.loads(polygon.coco_path.read_text())
    rle_mask = decode_rle(rle_output["annotations"][2]["segmentation"])
    segmentation = polygon_output["annotations"][2]["segmentation"]
    assert isinstance(segmentation, list)
    height, width = rle_mask.shape
    polygon_mask = mask_utils.decode(
        mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    )
    overlap = np.logical_and(polygon_mask, rle_mask).sum() / max(
        np.logical_or(polygon_mask, rle_mask).sum(), 1
    )
    assert overlap > 0.5


def test_concept_mode_adds_prelabels(tmp_path, shared_data, annotate_model, monkeypatch):
    document = coco_document({"groceries.jpg": SAMPLE_BOXES["groceries.jpg"]})
    boxes = write_json(tmp_path / "boxes.json", document)
    settings = settings_for(
        [
            "mode=concept",
            "concept.threshold=0.0",
            "concept.duplicate_iou=null",
            f"input.annotations={boxes}",
            f"input.images={shared_data / 'images'}",
            f"output.dir={tmp_path / 'out'}",
        ]
    )
    counter = TrunkCounter(annotate_model, monkeypatch)
    summary = run_annotation(settings, model=annotate_model)
    assert counter.trunk_calls == 1
    output = json.loads(settings.coco_path.read_text())
    originals = output["annotations"][: len(document["annotations"])]
    prelabels = output["annotations"][len(document["annotations"]) :]
    assert originals == document["annotations"]
    assert len(prelabels) == summary.prelabels > 0
    assert all(annotation["pre_label"] is True for annotation in prelabels)
    assert all(0.0 <= annotation["score"] <= 1.0 for annotation in prelabels)
    assert [annotation["id"] for annotation in prelabels] == list(range(103, 103 + len(prelabels)))
    assert {annotation["category_id"] for annotation in prelabels} == {3}


@pytest.mark.parametrize("input_format", ["yolo", "voc"])
def test_other_input_formats_give_masks(input_format, tmp_path, shared_data, annotate_model):
    images = tmp_path / "images"
    images.mkdir()
    (images / "test_image.jpg").write_bytes(
        (shared_data / "images" / "test_image.jpg").read_bytes()
    )
    boxes = {"test_image.jpg": SAMPLE_BOXES["test_image.jpg"]}
    if input_format == "yolo":
        annotations = write_yolo_labels(tmp_path / "labels", boxes)
    else:
        annotations = write_voc_files(tmp_path / "voc", boxes)
    settings = settings_for(
        [
            f"input.format={input_format}",
            f"input.annotations={annotations}",
            f"input.images={images}",
            f"output.dir={tmp_path / 'out'}",
        ]
    )
    summary = run_annotation(settings, model=annotate_model)
    assert summary.masks == 1
    assert summary.skipped == []
    output = json.loads(settings.coco_path.read_text())
    assert [annotation["category_id"] for annotation in output["annotations"]] == [1]
    assert "score" in output["annotations"][0]
    assert output["images"][0]["file_name"] == "test_image.jpg"
    assert len((settings.labels_dir / "test_image.txt").read_text().splitlines()) == 1
