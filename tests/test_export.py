import numpy as np
import supervision as sv

from sam3_radio.predict.export import decode_rle, detections_to_coco_results, encode_rle


def test_rle_round_trip_with_text_counts():
    mask = np.zeros((7, 5), dtype=bool)
    mask[1:4, 2:5] = True
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str)
    assert rle["size"] == [7, 5]
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_coco_results_use_pixel_xywh():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:5, 3:9] = True
    detections = sv.Detections(
        xyxy=np.array([[3.0, 2.0, 9.0, 5.0]]),
        mask=mask[None],
        confidence=np.array([0.75]),
        class_id=np.array([0]),
        data={"class_name": np.array(["cup"])},
    )
    (record,) = detections_to_coco_results(detections, image_id=4, category_ids={"cup": 2})
    assert record["bbox"] == [3.0, 2.0, 6.0, 3.0]
    assert record["category_id"] == 2
    assert record["image_id"] == 4
    assert record["area"] == 18
    assert record["score"] == 0.75
