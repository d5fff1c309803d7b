import json
import shutil

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from sam3_radio.cli import main
from sam3_radio.predict.export import decode_rle

TINY = ["--backbone", "tiny-pe", "--weights", "random", "--device", "cpu"]


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("segment")
    images = sorted((shared_data / "images").glob("*.jpg"))
    code = main(["segment", *map(str, images), "--text", "truck", "--threshold", "0.1", "--out", str(out), *TINY])
    return code, out, images


def test_segment_writes_overlay_and_json_per_image(segment_run):
    code, out, images = segment_run
    assert code == 0
    for image in images:
        assert (out / f"{image.stem}.png").is_file()
        assert (out / f"{image.stem}.json").is_file()


def test_segment_json_marks_random_weights(segment_run):
    _, out, _ = segment_run
    info = json.loads((out / "truck.json").read_text())["info"]
    assert info["random_weights"] is True
    assert "meaningless" in info["warning"]


def test_segment_png_metadata_marks_random_weights(segment_run):
    _, out, _ = segment_run
    metadata = json.loads(Image.open(out / "truck.png").text["sam3-radio"])
    assert metadata["random_weights"] is True


def test_segment_masks_at_original_size(segment_run):
    _, out, _ = segment_run
    document = json.loads((out / "groceries.json").read_text())
    masks = [decode_rle(a["segmentation"]) for a in document["annotations"]]
    assert masks
    assert {mask.shape for mask in masks} == {(534, 800)}


def test_segment_json_loads_in_pycocotools(segment_run, tmp_path):
    _, out, _ = segment_run
    document = json.loads((out / "truck.json").read_text())
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps({k: document[k] for k in ("images", "categories")} | {"annotations": []}))
    first = dict(document["annotations"][0])
    coco = COCO(str(gt_path))
    results = coco.loadRes(document["annotations"])
    assert len(results.getAnnIds()) == len(document["annotations"])
    assert first["bbox"][2] >= 0
    assert first["area"] == int(decode_rle(first["segmentation"]).sum())


def test_segment_prints_table(shared_data, tmp_path, capsys):
    image = shared_data / "images" / "test_image.jpg"
    main(["segment", str(image), "--text", "car", "--threshold", "0", "--out", str(tmp_path), *TINY])
    printed = capsys.readouterr().out
    assert "test_image.jpg" in printed
    assert "score" in printed


def test_segment_interactive_boxes(shared_data, tmp_path):
    image = shared_data / "images" / "truck.jpg"
    code = main(
        ["segment", str(image), "--box", "100,300,900,1100", "--box", "1000,100,1700,600",
         "--interactive", "--out", str(tmp_path), *TINY]
    )
    document = json.loads((tmp_path / "truck.json").read_text())
    assert code == 0
    assert len(document["annotations"]) == 2


def test_segment_skips_bad_file_and_keeps_others(shared_data, tmp_path, caplog):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    good = tmp_path / "truck.jpg"
    shutil.copy(shared_data / "images" / "truck.jpg", good)
    out = tmp_path / "out"
    code = main(["segment", str(bad), str(good), "--text", "truck", "--out", str(out), *TINY])
    assert code == 1
    assert (out / "truck.json").is_file()
    assert not (out / "broken.json").exists()
    assert "skipped" in caplog.text and "broken.jpg" in caplog.text


def test_segment_missing_weights_message(shared_data, tmp_path, capsys):
    image = shared_data / "images" / "truck.jpg"
    code = main(["segment", str(image), "--text", "truck", "--backbone", "tiny-pe",
                 "--weights", str(tmp_path / "sam3.pt"), "--out", str(tmp_path)])
    assert code == 2
    assert "facebook/sam3" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--text", " "], "--text is empty"),
        ([], "no prompt"),
        (["--text", "truck", "--window-size", "12"], "RADIO backbones only"),
    ],
)
def test_segment_bad_arguments(shared_data, tmp_path, capsys, arguments, message):
    image = shared_data / "images" / "truck.jpg"
    code = main(["segment", str(image), *arguments, "--out", str(tmp_path), *TINY])
    assert code == 2
    assert message in capsys.readouterr().err


def test_segment_unknown_backbone_exits(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", "x.jpg", "--text", "a", "--backbone", "vit-g"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'vit-g'" in capsys.readouterr().err


def test_segment_invalid_box_argument(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "x.jpg", "--box", "1,2,3"])
    assert "four numbers" in capsys.readouterr().err
