"""End-to-end evaluation runs with the tiny presets (random weights) on CPU.

Each task runs with tiny_pe and tiny_radio into one output folder, so the
report compares both. Models are cached per process, so each preset is built
once per test session.
"""

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pycocotools.cocoeval import COCOeval

from sam3_radio.cli import main
from sam3_radio.evaluate import compose_config, evaluate
from sam3_radio.evaluate.coco_tasks import CocoBoxTask
from sam3_radio.metrics.coco import load_coco, load_results

from .conftest import coco_dataset, veval_dataset

MODELS = ["tiny_pe", "tiny_radio"]
REPO = Path(__file__).resolve().parents[2]


def run_task(task, overrides, out_dir, model, **tracker):
    cfg = compose_config(task, [*overrides, f"model={model}", "device=cpu", f"out_dir={out_dir}"])
    return evaluate(cfg, **tracker)


def coco_overrides(files):
    # Two of the three images keep the runs short; the resume test adds a missing third.
    return [f"data.annotations={files['annotations']}", f"data.images={files['images']}", "limit=2"]


def check_report(out_dir, names):
    report = (out_dir / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| metric"))
    for name in names:
        assert name in header
    assert "RANDOM weights" in report
    assert (out_dir / "report.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def coco_text_runs(tmp_path_factory, coco_files):
    out_dir = tmp_path_factory.mktemp("coco_text")
    runs = [run_task("coco_text", coco_overrides(coco_files), out_dir, model) for model in MODELS]
    return out_dir, runs


@pytest.fixture(scope="module")
def coco_box_runs(tmp_path_factory, coco_files):
    out_dir = tmp_path_factory.mktemp("coco_box")
    runs = [run_task("coco_box", coco_overrides(coco_files), out_dir, model) for model in MODELS]
    return out_dir, runs


def test_coco_text_both_backbones(coco_text_runs):
    out_dir, runs = coco_text_runs
    check_report(out_dir, MODELS)
    for run in runs:
        assert run["num_units"] == 2
        assert set(run["headline"]) == {"box AP", "box AP50", "mask AP", "mask AP50"}
        assert run["latency"]["seconds_per_frame"] > 0


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_text_equals_pycocotools_on_results_file(coco_text_runs, coco_files, iou_type):
    out_dir, runs = coco_text_runs
    coco = load_coco(str(coco_files["annotations"]))
    for model, run in zip(MODELS, runs):
        results = json.loads((out_dir / model / "coco_results.json").read_text())
        assert results, "random weights at threshold 0.05 still give detections"
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval(coco, load_results(coco, results), iou_type)
            evaluator.params.imgIds = [1, 2]  # the two images that limit=2 keeps
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        assert run["metrics"][iou_type]["AP"] == evaluator.stats[0]
        assert run["metrics"][iou_type]["AR_100"] == evaluator.stats[8]


def test_coco_text_keeps_max_detections(coco_text_runs):
    out_dir, _ = coco_text_runs
    results = json.loads((out_dir / "tiny_pe" / "coco_results.json").read_text())
    per_image = {}
    for item in results:
        per_image[item["image_id"]] = per_image.get(item["image_id"], 0) + 1
    assert max(per_image.values()) <= 100


def test_coco_box_both_backbones(coco_box_runs):
    out_dir, runs = coco_box_runs
    check_report(out_dir, MODELS)
    for run in runs:
        assert run["num_units"] == 2
        assert run["metrics"]["iou"]["per_category"]["truck"]["count"] == 1
        assert run["metrics"]["iou"]["per_category"]["bag"]["count"] == 3
        assert 0 <= run["headline"]["mIoU"] <= 100


def test_coco_box_resume_and_missing_image(tmp_path, coco_files, coco_box_runs, monkeypatch):
    dataset = coco_dataset()
    dataset["images"] = dataset["images"][:2]
    dataset["annotations"] = [item for item in dataset["annotations"] if item["image_id"] <= 2]
    dataset["images"].append({"id": 4, "file_name": "missing.jpg", "width": 50, "height": 50})
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(dataset))
    overrides = [f"data.annotations={annotations}", f"data.images={coco_files['images']}"]
    out_dir = tmp_path / "out"

    calls = []
    original = CocoBoxTask.run_unit

    def crash_on_second(self, key):
        calls.append(key)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        return original(self, key)

    monkeypatch.setattr(CocoBoxTask, "run_unit", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_task("coco_box", overrides, out_dir, "tiny_pe")
    assert calls == ["1", "2"]

    calls.clear()
    monkeypatch.setattr(CocoBoxTask, "run_unit", lambda self, key: calls.append(key) or original(self, key))
    run = run_task("coco_box", overrides, out_dir, "tiny_pe")

    assert calls == ["2", "4"]
    assert [item["key"] for item in run["skipped"]] == ["4"]
    assert "missing.jpg" in run["skipped"][0]["reason"]
    results = json.loads((out_dir / "tiny_pe" / "coco_results.json").read_text())
    assert len(results) == len(dataset["annotations"])
    clean = coco_box_runs[1][0]
    assert run["metrics"]["segm"] == clean["metrics"]["segm"]
    assert run["metrics"]["iou"] == clean["metrics"]["iou"]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_coco_box_sharded_two_gloo_processes(tmp_path, coco_files, coco_box_runs):
    out_dir = tmp_path / "out"
    command = [
        shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun",
        "--nnodes", "1", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"127.0.0.1:{_free_port()}",
        str(REPO / "eval" / "coco_box.py"), *coco_overrides(coco_files), "model=tiny_pe",
        "device=cpu", f"out_dir={out_dir}", f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment, cwd=REPO)
    assert finished.returncode == 0, finished.stderr[-3000:]

    shards = {}
    for path in sorted((out_dir / "tiny_pe" / "predictions").glob("rank-*.jsonl")):
        shards[path.name] = [json.loads(line)["key"] for line in path.read_text().splitlines()]
    assert shards == {"rank-000.jsonl": ["1"], "rank-001.jsonl": ["2"]}
    sharded = json.loads((out_dir / "tiny_pe" / "metrics.json").read_text())
    clean = coco_box_runs[1][0]
    assert sharded["metrics"]["segm"] == clean["metrics"]["segm"]
    assert sharded["metrics"]["iou"]["mIoU"] == pytest.approx(clean["metrics"]["iou"]["mIoU"], abs=1e-12)


def test_gold_both_backbones(tmp_path, gold_files):
    overrides = [f"data.root={gold_files['root']}", "data.subsets=[tiny]",
                 "data.images.default=" + str(gold_files["images"]),
                 "+data.gt_files.tiny=[" + ",".join(
                     str(gold_files["root"] / f"gold_tiny_merged_{a}_release_test.json") for a in "ab") + "]"]
    runs = [run_task("gold", overrides, tmp_path, model) for model in MODELS]
    check_report(tmp_path, MODELS)
    for model, run in zip(MODELS, runs):
        assert run["num_units"] == 3  # pair 5 is not exhaustive, so test_image.jpg has one pair
        assert set(run["metrics"]["summary"]) == {"tiny", "average"}
        for name in ("mask cgF1", "mask IL_MCC", "mask pmF1", "box cgF1"):
            assert name in run["headline"]
        dump = json.loads((tmp_path / model / "gold_tiny" / "coco_predictions_segm.json").read_text())
        assert all(item["category_id"] == 1 and item["score"] > 0.3 for item in dump)
        assert all(0 <= value <= 1.0001 for item in dump for value in item["bbox"])


def veval_overrides(files, gt="gt_file"):
    return [f"data.gt_file={files[gt]}", f"data.media_dir={files['media_dir']}"]


def test_veval_both_backbones(tmp_path, veval_files):
    # The ground truth without its negative pair prompts one noun phrase per video.
    overrides = veval_overrides(veval_files, "positive_gt_file")
    runs = [run_task("veval", overrides, tmp_path, model) for model in MODELS]
    check_report(tmp_path, MODELS)
    for model, run in zip(MODELS, runs):
        assert run["num_units"] == 1
        assert run["latency"]["frames"] == 2
        predictions = json.loads((tmp_path / model / "tiny_veval_positive_gt_preds.json").read_text())
        if predictions:
            assert "cgF1" in run["headline"]
        else:
            assert "no masklets" in run["metrics"]["error"]


def test_veval_stub_tracker_ground_truth_scores_one(tmp_path, veval_files):
    gt = veval_dataset(2, 160, 90)
    from sam3_radio.predict.export import decode_rle

    def ground_truth_tracker(frames, text):
        if text != "car":
            return {}, {}
        masks = [decode_rle(rle) for rle in gt["annotations"][0]["segmentations"]]
        return {1: dict(enumerate(masks))}, {1: 0.9}

    run = run_task("veval", veval_overrides(veval_files), tmp_path, "tiny_pe", concept_tracker=ground_truth_tracker)
    assert run["headline"]["cgF1"] == pytest.approx(100, abs=0.1)
    assert run["headline"]["pHOTA"] == pytest.approx(100, abs=1e-6)
    assert run["headline"]["IL_MCC"] == pytest.approx(1, abs=1e-5)


def test_veval_scores_existing_predictions_file(tmp_path, veval_files):
    truth = json.loads(veval_files["gt_file"].read_text())["annotations"][0]
    masklet = {key: truth[key] for key in ("video_id", "category_id", "segmentations", "bboxes", "areas")}
    pred_file = tmp_path / "predictions.json"
    pred_file.write_text(json.dumps([{**masklet, "score": 0.9}]))
    overrides = [f"data.gt_file={veval_files['gt_file']}", f"predictions_file={pred_file}"]
    run = run_task("veval", overrides, tmp_path, "pe")
    assert run["num_units"] == 0
    assert run["headline"]["cgF1"] == pytest.approx(100, abs=0.1)
    assert run["headline"]["mask mAP"] == pytest.approx(100, abs=1e-6)


def test_cli_eval_report(coco_box_runs, capsys):
    out_dir = coco_box_runs[0]
    code = main(["eval", "report", str(out_dir)])
    assert code == 0
    assert "| mask AP |" in capsys.readouterr().out


def test_cli_eval_missing_data_path(capsys):
    assert main(["eval", "coco_box", "--models", "tiny_pe"]) == 2
    assert "data.annotations" in capsys.readouterr().err
