"""`compile=True` builds give the eager model's detections."""

import numpy as np
import pytest
from PIL import Image

from sam3_radio.model.builder import build_sam3_image_model
from sam3_radio.predict.image import Sam3ImagePredictor


def _detections(backbone: str, compile: bool, image: Image.Image):
    model = build_sam3_image_model(
        backbone, weights="random", device="cpu", interactive=False, compile=compile
    )
    # Threshold 0 keeps every query, so the comparison covers all of them.
    predictor = Sam3ImagePredictor(model, threshold=0.0)
    predictor.set_image(image)
    return predictor.predict(text="truck")


# The PE path compiles with `sam3`'s own compile_mode; the RADIO trunk is compiled here.
@pytest.mark.parametrize("backbone", ["tiny-radio"])
def test_compiled_model_matches_eager(backbone, shared_data):
    image = Image.open(shared_data / "images" / "truck.jpg").convert("RGB")
    eager = _detections(backbone, False, image)
    compiled = _detections(backbone, True, image)
    assert len(compiled) == len(eager) > 0
    np.testing.assert_allclose(compiled.confidence, eager.confidence, rtol=0, atol=1e-5)
    np.testing.assert_allclose(compiled.xyxy, eager.xyxy, rtol=0, atol=0.5)
    # Pixels on the 0.5 probability boundary may flip between compiled and eager kernels.
    assert (compiled.mask != eager.mask).mean() < 1e-4
