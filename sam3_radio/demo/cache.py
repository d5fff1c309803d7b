"""A bounded LRU cache of encoded images, shared by every session of the demo.

The key is the SHA-256 of the decoded RGB pixels (with the image size) plus
the backbone's name, so the same picture uploaded twice, or re-sent by the
browser with a new prompt, hits the cache whatever its file encoding was.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from PIL import Image

from sam3_radio.predict.image import EncodedImage

logger = logging.getLogger(__name__)


def image_digest(image: Image.Image) -> str:
    """Return the SHA-256 hex digest of an image's mode, size and pixel bytes."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode} {image.size[0]}x{image.size[1]}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class FeatureCache:
    """Thread-safe LRU mapping of (image digest, backbone name) to `EncodedImage`.

    Args:
        max_entries: entries kept; the least recently used one is dropped
            when a new one would exceed this. Each entry contains one image's
            features on the model's device.
    """

    def __init__(self, max_entries: int):
        if max_entries < 1:
            raise ValueError(f"cache max_entries={max_entries} must be 1 or more")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str], EncodedImage] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: tuple[str, str]) -> EncodedImage | None:
        """Return the entry for `key` and mark it most recently used, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: tuple[str, str], entry: EncodedImage) -> None:
        """Store `entry` under `key`, dropping least recently used entries beyond the limit."""
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                (digest, backbone), _ = self._entries.popitem(last=False)
                logger.debug("dropped cached features of image %s for %s", digest[:12], backbone)
