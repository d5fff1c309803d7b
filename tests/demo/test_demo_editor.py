import numpy as np
import pytest
from PIL import Image

from sam3_radio.demo.editor import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    EditorPrompt,
    limit_image_side,
    parse_editor_value,
    stroke_boxes,
)

WIDTH, HEIGHT = 120, 80


def background() -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    image[..., 0] = 90
    image[..., 3] = 255
    return image


def layer(shape=(HEIGHT, WIDTH)) -> np.ndarray:
    return np.zeros((*shape, 4), dtype=np.uint8)


def paint(target: np.ndarray, x0: int, y0: int, x1: int, y1: int, color, outline=True) -> None:
    """Paint the outline (or the filled rectangle) of pixel box x0..x1-1, y0..y1-1."""
    region = np.zeros(target.shape[:2], dtype=bool)
    region[y0:y1, x0:x1] = True
    if outline:
        region[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] = False
    target[region, :3] = color
    target[region, 3] = 255


def test_editor_green_outline_is_positive_box():
    strokes = layer()
    paint(strokes, 10, 20, 50, 60, POSITIVE_COLOR)

    prompt = parse_editor_value({"background": background(), "layers": [strokes]})

    np.testing.assert_array_equal(prompt.boxes, [[10, 20, 50, 60]])
    assert prompt.negative_boxes.shape == (0, 4)


def test_editor_red_scribble_is_negative_box():
    strokes = layer()
    paint(strokes, 70, 5, 100, 30, NEGATIVE_COLOR, outline=False)

    prompt = parse_editor_value({"background": background(), "layers": [strokes]})

    assert prompt.boxes.shape == (0, 4)
    np.testing.assert_array_equal(prompt.negative_boxes, [[70, 5, 100, 30]])


def test_editor_separate_strokes_are_separate_boxes():
    strokes = layer()
    paint(strokes, 60, 40, 90, 70, POSITIVE_COLOR)
    paint(strokes, 5, 5, 30, 30, POSITIVE_COLOR)

    prompt = parse_editor_value({"background": background(), "layers": [strokes]})

    np.testing.assert_array_equal(prompt.boxes, [[5, 5, 30, 30], [60, 40, 90, 70]])


def test_editor_touching_colours_split_by_colour():
    strokes = layer()
    paint(strokes, 10, 10, 40, 40, POSITIVE_COLOR, outline=False)
    paint(strokes, 40, 10, 70, 40, NEGATIVE_COLOR, outline=False)

    prompt = parse_editor_value({"background": background(), "layers": [strokes]})

    np.testing.assert_array_equal(prompt.boxes, [[10, 10, 40, 40]])
    np.testing.assert_array_equal(prompt.negative_boxes, [[40, 10, 70, 40]])


def test_editor_reads_every_layer():
    first, second = layer(), layer()
    paint(first, 10, 10, 40, 40, POSITIVE_COLOR)
    paint(second, 50, 10, 80, 40, NEGATIVE_COLOR)

    prompt = parse_editor_value({"background": background(), "layers": [first, None, second]})

    assert len(prompt.boxes) == 1
    assert len(prompt.negative_boxes) == 1


def test_editor_ignores_stray_clicks():
    strokes = layer()
    paint(strokes, 10, 10, 12, 12, POSITIVE_COLOR, outline=False)

    prompt = parse_editor_value({"background": background(), "layers": [strokes]})

    assert prompt.boxes.shape == (0, 4)


def test_editor_ignores_transparent_pixels():
    strokes = layer()
    strokes[..., :3] = POSITIVE_COLOR

    prompt = parse_editor_value({"background": background(), "layers": [strokes]})

    assert prompt.boxes.shape == (0, 4)


def test_editor_scales_boxes_of_smaller_layer():
    strokes = layer((HEIGHT // 2, WIDTH // 2))
    paint(strokes, 5, 10, 25, 30, POSITIVE_COLOR)

    prompt = parse_editor_value({"background": background(), "layers": [strokes]})

    np.testing.assert_allclose(prompt.boxes, [[10, 20, 50, 60]])


def test_editor_background_becomes_rgb_image():
    prompt = parse_editor_value({"background": background(), "layers": []})

    assert prompt.image.mode == "RGB"
    assert prompt.image.size == (WIDTH, HEIGHT)
    assert prompt.image.getpixel((0, 0)) == (90, 0, 0)


@pytest.mark.parametrize(
    "value",
    [None, {"background": None, "layers": [], "composite": None}],
    ids=["no value", "no background"],
)
def test_editor_without_image_raises(value):
    with pytest.raises(ValueError, match="no image"):
        parse_editor_value(value)


def test_editor_rejects_bad_layer_shape():
    with pytest.raises(ValueError, match="editor layer"):
        parse_editor_value({"background": background(), "layers": [np.zeros((4, 4, 2), np.uint8)]})


def test_stroke_boxes_of_empty_mask_is_empty():
    assert stroke_boxes(np.zeros((10, 10), bool)).shape == (0, 4)


def test_limit_image_side_scales_image_and_boxes():
    prompt = EditorPrompt(
        image=Image.new("RGB", (400, 200)),
        boxes=np.array([[40, 20, 200, 100]], np.float32),
        negative_boxes=np.array([[0, 0, 400, 200]], np.float32),
    )

    limited, scale = limit_image_side(prompt, 100)

    assert scale == 0.25
    assert limited.image.size == (100, 50)
    np.testing.assert_allclose(limited.boxes, [[10, 5, 50, 25]])
    np.testing.assert_allclose(limited.negative_boxes, [[0, 0, 100, 50]])


def test_limit_image_side_keeps_small_image():
    prompt = EditorPrompt(Image.new("RGB", (80, 60)), np.zeros((0, 4)), np.zeros((0, 4)))

    limited, scale = limit_image_side(prompt, 100)

    assert scale == 1.0
    assert limited is prompt
