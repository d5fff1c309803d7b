import gradio as gr
import numpy as np
import pytest
import supervision as sv
from PIL import Image

from sam3_radio.demo.comparison import BackboneResult, Prompt, compare_backbones, detection_rows
from sam3_radio.demo.editor import POSITIVE_COLOR
from sam3_radio.demo.ui import _image_handler, compare_image
from sam3_radio.predict.io import load_image

NO_BOXES = np.zeros((0, 4), np.float32)


@pytest.fixture(scope="module")
def small_truck(shared_data) -> Image.Image:
    return load_image(shared_data / "images" / "truck.jpg").resize((300, 200))


def editor_value(image: Image.Image, strokes: np.ndarray | None = None) -> dict:
    background = np.asarray(image.convert("RGBA"))
    layers = [] if strokes is None else [strokes]
    return {"background": background, "layers": layers, "composite": background}


def test_comparison_cache_hit_skips_encoder(make_runners, trunk_counters, small_truck):
    runners = make_runners()
    before = {name: counter.calls for name, counter in trunk_counters.items()}
    prompt = Prompt(text="truck", boxes=NO_BOXES, negative_boxes=NO_BOXES)

    first = compare_backbones(runners, small_truck, prompt, threshold=0.0)
    second = compare_backbones(runners, small_truck, prompt, threshold=0.0)

    calls = {name: counter.calls - before[name] for name, counter in trunk_counters.items()}
    assert calls == {"tiny-pe": 1, "tiny-radio": 1}
    assert [result.cached for result in first.results] == [False, False]
    assert all(result.encoder_seconds > 0.0 for result in first.results)
    assert all(result.overlay.shape == (200, 300, 3) for result in first.results)
    assert [result.cached for result in second.results] == [True, True]
    assert [result.encoder_seconds for result in second.results] == [0.0, 0.0]
    for fresh, cached in zip(first.results, second.results):
        assert len(fresh.detections) > 0
        np.testing.assert_array_equal(fresh.detections.mask, cached.detections.mask)
        np.testing.assert_allclose(fresh.detections.confidence, cached.detections.confidence)
    assert second.agreement.score == pytest.approx(first.agreement.score)


class FakeRunner:
    """A runner that returns one fixed square mask, or raises `error`."""

    random_weights = True

    def __init__(self, label: str, error: Exception | None = None):
        self.label = label
        self.error = error
        self.requests = []

    def run(self, image, digest, prompt, threshold):
        if self.error is not None:
            raise self.error
        self.requests.append((digest, prompt.text, prompt.boxes.tolist(), threshold))
        width, height = image.size
        mask = np.zeros((1, height, width), dtype=bool)
        mask[0, : height // 2, : width // 2] = True
        detections = sv.Detections(
            xyxy=np.array([[0, 0, width // 2, height // 2]], np.float32),
            mask=mask,
            confidence=np.array([0.9], np.float32),
            class_id=np.zeros(1, int),
            data={"class_name": np.array([prompt.text or "visual"])},
        )
        return BackboneResult(self.label, detections, np.asarray(image), 0.1, 0.2, False)


def run_handler(runners, value, text="truck", threshold=0.5, history=None):
    return _image_handler(runners, max_image_side=2048)(value, text, threshold, history or [])


def test_handler_returns_both_overlays_and_agreement(small_truck):
    outputs = run_handler([FakeRunner("a"), FakeRunner("b")], editor_value(small_truck))

    overlay_a, rows_a, timing_a, overlay_b, rows_b, timing_b, agreement, table, state = outputs
    assert overlay_a.shape == overlay_b.shape == (200, 300, 3)
    assert rows_a == rows_b == [[0, "truck", 0.9, "0, 0, 150, 100"]]
    assert "encoder" in timing_a
    assert "total" in timing_b
    assert "Agreement: 1.000" in agreement
    assert table == state == [[1, "truck", 0, 0, 1.0]]


def test_handler_reads_boxes_from_strokes(small_truck):
    runners = [FakeRunner("a"), FakeRunner("b")]
    strokes = np.zeros((200, 300, 4), np.uint8)
    strokes[20:60, 30:90, :3] = POSITIVE_COLOR
    strokes[20:60, 30:90, 3] = 255

    run_handler(runners, editor_value(small_truck, strokes), text="")

    assert runners[0].requests[0][1:3] == (None, [[30.0, 20.0, 90.0, 60.0]])


def test_handler_sessions_keep_separate_history(small_truck):
    runners = [FakeRunner("a"), FakeRunner("b")]
    first_session, second_session = [], []

    first_after = run_handler(runners, editor_value(small_truck), "truck", 0.5, first_session)[-1]
    first_after = run_handler(runners, editor_value(small_truck), "wheel", 0.5, first_after)[-1]
    second_after = run_handler(runners, editor_value(small_truck), "car", 0.5, second_session)[-1]

    assert [row[1] for row in first_after] == ["truck", "wheel"]
    assert [row[1] for row in second_after] == ["car"]
    assert first_session == second_session == []


def test_handler_downscales_large_image():
    runners = [FakeRunner("a"), FakeRunner("b")]
    notices = []
    image = Image.new("RGB", (400, 100))

    comparison, _ = compare_image(
        runners, editor_value(image), "truck", 0.5, [], 200, notices.append
    )

    assert comparison.results[0].overlay.shape == (50, 200, 3)
    assert notices == ["The image was downscaled to 200x50 for segmentation."]


# (case, editor value, text, threshold, fragment of the error message)
REJECTED_CASES = [
    ("no image", None, "truck", 0.5, "no image"),
    ("no prompt", "image", "  ", 0.5, "missing prompt"),
    ("negative boxes only", "negative", "", 0.5, "negative boxes need"),
    ("threshold above range", "image", "truck", 1.5, "threshold"),
    ("threshold below range", "image", "truck", -0.1, "threshold"),
]


@pytest.mark.parametrize(
    "value, text, threshold, message",
    [case[1:] for case in REJECTED_CASES],
    ids=[case[0] for case in REJECTED_CASES],
)
def test_handler_rejects_bad_request_with_gr_error(small_truck, value, text, threshold, message):
    runners = [FakeRunner("a"), FakeRunner("b")]
    if value == "image":
        value = editor_value(small_truck)
    elif value == "negative":
        strokes = np.zeros((200, 300, 4), np.uint8)
        strokes[20:60, 30:90] = (239, 68, 68, 255)
        value = editor_value(small_truck, strokes)

    with pytest.raises(gr.Error, match=message):
        run_handler(runners, value, text, threshold)
    assert runners[0].requests == []


def test_handler_turns_failure_into_gr_error(small_truck):
    runners = [FakeRunner("a", error=RuntimeError("out of memory")), FakeRunner("b")]

    with pytest.raises(gr.Error, match="RuntimeError: out of memory"):
        run_handler(runners, editor_value(small_truck))




def test_detection_rows_of_empty_detections():
    assert detection_rows(sv.Detections.empty()) == []
