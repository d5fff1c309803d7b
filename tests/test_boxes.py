import numpy as np
import pytest

from sam3_radio.predict.boxes import (
    normalized_cxcywh_to_xyxy,
    parse_box,
    validate_boxes_xyxy,
    xyxy_to_normalized_cxcywh,
    xyxy_to_normalized_xywh,
    xyxy_to_xywh,
)


@pytest.mark.parametrize(
    "text, message",
    [("1,2,3", "four numbers"), ("a,b,c,d", "four numbers"), ("", "four numbers")],
)
def test_parse_box_invalid(text, message):
    with pytest.raises(ValueError, match=message):
        parse_box(text)


def test_parse_box_valid():
    assert parse_box(" 1, 2.5,3,4 ") == (1.0, 2.5, 3.0, 4.0)


def test_validate_inverted_box():
    with pytest.raises(ValueError, match="x1 < x0"):
        validate_boxes_xyxy([[50, 10, 20, 40]], 100, 100)


def test_validate_box_outside_image():
    with pytest.raises(ValueError, match="outside the 100x80 image"):
        validate_boxes_xyxy([[150, 10, 190, 40]], 100, 80)


def test_validate_box_partly_outside_is_clipped():
    clipped = validate_boxes_xyxy([[-10, 5, 120, 90]], 100, 80)
    assert clipped.tolist() == [[0, 5, 100, 80]]


def test_validate_non_finite_box():
    with pytest.raises(ValueError, match="non-finite"):
        validate_boxes_xyxy([[0, 0, np.nan, 4]], 10, 10)


def test_validate_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        validate_boxes_xyxy([[0, 0, 4]], 10, 10)


def test_normalized_cxcywh_round_trip():
    boxes = np.array([[10, 20, 50, 60]], dtype=np.float32)
    cxcywh = xyxy_to_normalized_cxcywh(boxes, 100, 200)
    np.testing.assert_allclose(cxcywh, [[0.3, 0.2, 0.4, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(normalized_cxcywh_to_xyxy(cxcywh, 100, 200), boxes, rtol=1e-5)


def test_normalized_xywh():
    np.testing.assert_allclose(
        xyxy_to_normalized_xywh(np.array([[10, 20, 50, 60]]), 100, 200), [[0.1, 0.1, 0.4, 0.2]]
    )


def test_xyxy_to_xywh():
    assert xyxy_to_xywh(np.array([[10, 20, 50, 60]])).tolist() == [[10, 20, 40, 40]]
