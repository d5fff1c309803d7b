import io

import numpy as np
import pytest
from PIL import Image

from sam3_radio.demo.cache import EncodedImage, FeatureCache, image_digest


def entry(value: int) -> EncodedImage:
    return EncodedImage(features={"value": value}, image_size=(4, 4))


def test_cache_drops_least_recently_used():
    cache = FeatureCache(max_entries=2)
    cache.put(("a", "pe"), entry(1))
    cache.put(("b", "pe"), entry(2))
    cache.get(("a", "pe"))

    cache.put(("c", "pe"), entry(3))

    assert ("a", "pe") in cache
    assert ("b", "pe") not in cache
    assert ("c", "pe") in cache
    assert len(cache) == 2


def test_cache_keys_include_backbone():
    cache = FeatureCache(max_entries=4)
    cache.put(("a", "pe"), entry(1))

    assert cache.get(("a", "radio")) is None
    assert cache.get(("a", "pe")).features == {"value": 1}


def test_cache_counts_hits_and_misses():
    cache = FeatureCache(max_entries=4)
    cache.put(("a", "pe"), entry(1))

    cache.get(("a", "pe"))
    cache.get(("b", "pe"))

    assert cache.hits == 1
    assert cache.misses == 1


def test_cache_rejects_zero_entries():
    with pytest.raises(ValueError, match="max_entries=0"):
        FeatureCache(max_entries=0)


def test_image_digest_ignores_file_encoding():
    pixels = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    digests = []
    for file_format in ("PNG", "BMP"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=file_format)
        digests.append(image_digest(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))

    assert digests[0] == digests[1]


def test_image_digest_changes_with_one_pixel():
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    changed = pixels.copy()
    changed[5, 5, 0] = 1

    assert image_digest(Image.fromarray(pixels)) != image_digest(Image.fromarray(changed))


def test_image_digest_changes_with_shape():
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)

    transposed = pixels.reshape(40, 30, 3)

    assert image_digest(Image.fromarray(pixels)) != image_digest(Image.fromarray(transposed))
