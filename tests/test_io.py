import numpy as np
import pytest
from PIL import Image

from sam3_radio.predict.io import ImageReadError, load_image


def test_load_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        load_image(tmp_path / "absent.jpg")


def test_load_non_image_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is text")
    with pytest.raises(ImageReadError, match="cannot read image"):
        load_image(path)


def test_load_truncated_jpeg(tmp_path, shared_data):
    data = (shared_data / "images" / "truck.jpg").read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="truncated.jpg"):
        load_image(path)


def test_load_grayscale_as_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.full((5, 7), 90, dtype=np.uint8), mode="L").save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    assert np.asarray(image)[0, 0].tolist() == [90, 90, 90]


def test_load_rgba_composites_on_black(tmp_path):
    array = np.zeros((4, 4, 4), dtype=np.uint8)
    array[..., 0] = 200
    array[..., 3] = 128
    path = tmp_path / "rgba.png"
    Image.fromarray(array, mode="RGBA").save(path)
    pixel = np.asarray(load_image(path))[0, 0]
    assert pixel.tolist() == [100, 0, 0]


def test_load_16bit_png_scales_full_range(tmp_path):
    array = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode.startswith("I")
    values = np.asarray(load_image(path))[0, :, 0].tolist()
    assert values == [0, 128, 255]


def test_load_exif_rotated_jpeg_is_upright(tmp_path):
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(array).save(path, exif=exif.tobytes(), quality=100)
    image = load_image(path)
    assert image.size == (20, 40)
    assert np.asarray(image)[5, 10].mean() > 200
    assert np.asarray(image)[35, 10].mean() < 50


def test_load_one_pixel_image(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    assert load_image(path).size == (1, 1)


def test_load_rejects_oversized_header(tmp_path, monkeypatch):
    import sam3_radio.predict.io as io_module

    monkeypatch.setattr(io_module, "MAX_PIXELS", 99)
    path = tmp_path / "big.png"
    Image.new("RGB", (10, 10)).save(path)
    with pytest.raises(ImageReadError, match="10x10 .*downscale it first"):
        load_image(path)
