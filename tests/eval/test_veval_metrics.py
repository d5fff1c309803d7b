"""SA-Co/VEval: our harness's numbers equal sam3's evaluator on the toy files; bad input is rejected."""

import json
import subprocess
import sys

import pytest

from sam3_radio.metrics.veval import EmptyPredictionsError, check_predictions, evaluate_veval_file
from sam3_radio.predict.export import encode_rle

from .conftest import rectangle, veval_dataset

TOY = "veval-toy"


@pytest.fixture(autouse=True, scope="module")
def release_cached_models():
    """Free the models that earlier end-to-end tests cached, before the memory-heavy evaluator runs."""
    import gc

    from sam3_radio.evaluate.models import clear_cache

    clear_cache()
    gc.collect()


def test_veval_toy_equals_sam3_evaluator(shared_data, tmp_path):
    gt_file = shared_data / TOY / "saco_veval_sav_test_gt.json"
    pred_file = shared_data / TOY / "saco_veval_sav_test_pred.json"
    official_file = tmp_path / "official.json"
    command = [
        sys.executable, "-m", "sam3.eval.saco_veval_eval", "one", "--gt_annot_file", str(gt_file),
        "--pred_file", str(pred_file), "--eval_res_file", str(official_file),
    ]
    # One after the other: class mAP over the toy file's 51,248 categories needs
    # several GB, so two evaluators side by side can exhaust a small machine.
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-2000:]
    official = json.loads(official_file.read_text())
    ours = evaluate_veval_file(gt_file, pred_file, tmp_path / "ours.json")

    assert len(official["dataset_results"]) == 54
    assert ours["dataset_results"] == official["dataset_results"]
    assert ours["video_np_results"] == official["video_np_results"]
    assert ours["dataset_results"]["video_mask_demo_cgf1_micro_50_95"] == pytest.approx(0.2000763, abs=1e-6)
    assert ours["dataset_results"]["video_mask_all_phrase_HOTA"] == pytest.approx(0.4656080, abs=1e-6)


def masklet(video_id=0, category_id=1, frames=2, score=0.9):
    mask = rectangle(90, 160, 20, 20, 80, 70)
    return {"video_id": video_id, "category_id": category_id, "score": score,
            "segmentations": [encode_rle(mask)] * frames, "bboxes": [[20, 20, 60, 50]] * frames,
            "areas": [int(mask.sum())] * frames}


@pytest.mark.parametrize(
    "predictions, message",
    [
        ([], "no masklets"),
        ([masklet(video_id=7)], "video_id 7"),
        ([masklet(category_id=3)], "video_np_pairs"),
        ([masklet(frames=5)], "5 segmentations"),
        ([{"video_id": 0, "category_id": 1}], "no 'score'"),
    ],
)
def test_veval_bad_predictions_rejected(predictions, message):
    with pytest.raises(ValueError, match=message):
        check_predictions(veval_dataset(2, 160, 90), predictions, "predictions.json")


def test_veval_empty_file_error_class(tmp_path):
    gt_file, pred_file = tmp_path / "gt.json", tmp_path / "pred.json"
    gt_file.write_text(json.dumps(veval_dataset(2, 160, 90)))
    pred_file.write_text("[]")
    with pytest.raises(EmptyPredictionsError):
        evaluate_veval_file(gt_file, pred_file)


def test_veval_perfect_predictions_score_one(tmp_path):
    gt = veval_dataset(3, 160, 90)
    gt_file, pred_file = tmp_path / "gt.json", tmp_path / "pred.json"
    gt_file.write_text(json.dumps(gt))
    truth = gt["annotations"][0]
    perfect = [{"video_id": 0, "category_id": 1, "score": 0.99, "segmentations": truth["segmentations"],
                "bboxes": truth["bboxes"], "areas": truth["areas"]}]
    pred_file.write_text(json.dumps(perfect))
    results = evaluate_veval_file(gt_file, pred_file)["dataset_results"]
    assert results["video_mask_demo_cgf1_micro_50_95"] == pytest.approx(1.0, abs=1e-3)
    assert results["video_mask_all_phrase_HOTA"] == pytest.approx(1.0, abs=1e-6)
    assert results["video_mask_mAP_50_95"] == pytest.approx(1.0, abs=1e-6)
