"""Read images from disk as 8-bit RGB, the form every predictor takes.

Handling of unusual files:
- EXIF orientation is applied, so the image is upright as viewers show it.
- Grayscale and palette images are converted to RGB.
- RGBA and LA images are composited on black: SAM 3 has no alpha input.
- 16-bit images (PNG modes I;16 and I) are scaled to 8 bits by their full
  range (value / 257), not clipped.
- Images over `MAX_PIXELS` are rejected before decoding.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 16384 x 16384. Larger images need tens of GB for full-size masks.
MAX_PIXELS = 16384 * 16384


class ImageReadError(ValueError):
    """Raised when a file is not a readable image."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image mode to 8-bit RGB (see the module docstring)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if array.max(initial=0) <= 65535 else float(array.max())
        array = np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array).convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min(initial=0)), float(array.max(initial=1))
        array = (array - low) / max(high - low, 1e-12) * 255.0
        return Image.fromarray(array.astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Read `path` as an upright 8-bit RGB PIL image.

    Raises:
        ImageReadError: the file is missing, not an image, truncated, or too large.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image {str(path)!r} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ImageReadError(
                        f"image {str(path)!r} is {width}x{height} "
                        f"({width * height} pixels, max {MAX_PIXELS}): downscale it first"
                    )
                image.load()
                upright = ImageOps.exif_transpose(image)
                return to_rgb(upright)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(
            f"cannot read image {str(path)!r}: {error}. Pass a JPEG, PNG, BMP, TIFF or WebP file"
        ) from error
