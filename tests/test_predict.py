import numpy as np
import pytest
from PIL import Image

from sam3_radio.predict.image import Sam3ImagePredictor
from sam3_radio.predict.io import load_image


@pytest.fixture(scope="module")
def truck_predictor(tiny_pe_model, shared_data):
    predictor = Sam3ImagePredictor(tiny_pe_model, threshold=0.0)
    predictor.set_image(load_image(shared_data / "images" / "truck.jpg"))
    return predictor


def test_predict_text_masks_at_original_size(truck_predictor):
    detections = truck_predictor.predict(text="truck")
    assert len(detections) > 0
    assert detections.mask.shape[1:] == (1200, 1800)
    assert detections.data["class_name"][0] == "truck"


def test_predict_scores_sorted_and_thresholded(truck_predictor):
    scores = truck_predictor.predict(text="truck").confidence
    cut = float(np.median(scores))
    kept = truck_predictor.predict(text="truck", threshold=cut).confidence
    assert (np.diff(scores) <= 0).all()
    assert (kept > cut).all()
    assert len(kept) < len(scores)


def test_predict_boxes_change_the_result(truck_predictor):
    plain = truck_predictor.predict(text="truck")
    prompted = truck_predictor.predict(
        text="truck", boxes=[[100, 300, 900, 1100]], negative_boxes=[[1000, 100, 1700, 600]]
    )
    assert not np.array_equal(plain.confidence, prompted.confidence)


def test_predict_boxes_only_uses_visual_prompt(truck_predictor):
    detections = truck_predictor.predict(boxes=[[100, 300, 900, 1100]])
    assert set(detections.data["class_name"]) == {"visual"}


def test_predict_boxes_inside_image(truck_predictor):
    xyxy = truck_predictor.predict(text="truck").xyxy
    assert xyxy[:, [0, 1]].min() >= 0
    assert xyxy[:, 2].max() <= 1800
    assert xyxy[:, 3].max() <= 1200


def test_interactive_one_mask_per_box(truck_predictor):
    detections = truck_predictor.predict_boxes([[100, 300, 900, 1100], [1000, 100, 1700, 600]])
    assert detections.mask.shape == (2, 1200, 1800)
    assert detections.xyxy.tolist() == [[100, 300, 900, 1100], [1000, 100, 1700, 600]]


@pytest.mark.parametrize("text", ["", "   "])
def test_predict_empty_text(truck_predictor, text):
    with pytest.raises(ValueError, match="text prompt .* is empty"):
        truck_predictor.predict(text=text)


def test_predict_without_prompt(truck_predictor):
    with pytest.raises(ValueError, match="no prompt"):
        truck_predictor.predict()


def test_predict_box_outside_image(truck_predictor):
    with pytest.raises(ValueError, match="outside the 1800x1200 image"):
        truck_predictor.predict(text="truck", boxes=[[5000, 10, 5100, 40]])


def test_predict_inverted_box(truck_predictor):
    with pytest.raises(ValueError, match="x1 < x0"):
        truck_predictor.predict_boxes([[900, 300, 100, 1100]])


def test_predict_threshold_out_of_range(truck_predictor):
    with pytest.raises(ValueError, match="outside \\[0, 1\\)"):
        truck_predictor.predict(text="truck", threshold=1.5)


def test_predict_before_set_image(tiny_pe_model):
    with pytest.raises(RuntimeError, match="call set_image"):
        Sam3ImagePredictor(tiny_pe_model).predict(text="truck")


def test_bf16_matches_fp32_roughly(tiny_pe_model, shared_data):
    image = load_image(shared_data / "images" / "groceries.jpg")
    results = {}
    for dtype in ("fp32", "bf16"):
        predictor = Sam3ImagePredictor(tiny_pe_model, dtype=dtype, threshold=0.0)
        predictor.set_image(image)
        results[dtype] = predictor.predict(text="bag")
    assert len(results["bf16"]) == len(results["fp32"])
    np.testing.assert_allclose(
        np.sort(results["bf16"].confidence), np.sort(results["fp32"].confidence), atol=0.03
    )


def test_one_pixel_image(tiny_pe_model):
    predictor = Sam3ImagePredictor(tiny_pe_model, threshold=0.0)
    predictor.set_image(Image.new("RGB", (1, 1), (120, 40, 10)))
    detections = predictor.predict(text="dot")
    assert detections.mask.shape[1:] == (1, 1)


def test_ten_thousand_pixel_square_image(tiny_pe_model, tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (10000, 10000), (30, 90, 200)).save(path, compress_level=1)
    predictor = Sam3ImagePredictor(tiny_pe_model, threshold=0.0)
    predictor.set_image(load_image(path))
    detections = predictor.predict_boxes([[1000, 1000, 4000, 5000]])
    assert detections.mask.shape == (1, 10000, 10000)


def test_numpy_image_input(tiny_pe_model):
    predictor = Sam3ImagePredictor(tiny_pe_model)
    predictor.set_image(np.zeros((30, 40, 3), dtype=np.uint8))
    assert predictor.image_size == (40, 30)
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        predictor.set_image(np.zeros((30, 40), dtype=np.uint8))


def test_interactive_runs_under_bf16(tiny_pe_model, shared_data):
    predictor = Sam3ImagePredictor(tiny_pe_model, dtype="bf16")
    predictor.set_image(load_image(shared_data / "images" / "groceries.jpg"))
    detections = predictor.predict_boxes([[300, 150, 650, 500]])
    assert detections.mask.shape == (1, 534, 800)
    assert np.isfinite(detections.confidence).all()


def test_predict_texts_equals_one_at_a_time(truck_predictor):
    texts = ["truck", "wheel", "sky", "person"]
    batched = truck_predictor.predict_texts(texts, boxes=[[100, 300, 900, 1100]])
    for index, text in enumerate(texts):
        single = truck_predictor.predict(text=text, boxes=[[100, 300, 900, 1100]])
        assert len(batched[index]) == len(single), text
        np.testing.assert_allclose(batched[index].confidence, single.confidence, atol=1e-5)
        np.testing.assert_allclose(batched[index].xyxy, single.xyxy, atol=1e-2)
        assert (batched[index].mask != single.mask).mean() < 1e-4
        assert set(batched[index].class_id) <= {index}


def test_predict_texts_rejects_string(truck_predictor):
    with pytest.raises(TypeError, match="list of strings"):
        truck_predictor.predict_texts("truck")


def test_predict_texts_rejects_empty_list(truck_predictor):
    with pytest.raises(ValueError, match="texts is empty"):
        truck_predictor.predict_texts([])
