"""Find image files and read their size without decoding them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sam3_radio.predict.io import ImageReadError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# EXIF orientations 5 to 8 rotate by 90 or 270 degrees, which swaps width and height.
EXIF_ORIENTATION_TAG = 0x0112
SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


def list_images(folder: Path) -> list[Path]:
    """Return the image files under `folder` (recursively), sorted by relative path."""
    if not folder.is_dir():
        raise ImageReadError(f"image folder {folder} not found")
    paths = [
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    return sorted(paths, key=lambda path: path.relative_to(folder).as_posix())


def upright_size(path: Path) -> tuple[int, int]:
    """Return (width, height) of `path` as `load_image` returns it, after EXIF rotation.

    Raises:
        ImageReadError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except FileNotFoundError as error:
        raise ImageReadError(f"image {str(path)!r} not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"cannot read image {str(path)!r}: {error}") from error
    if orientation in SWAPPING_ORIENTATIONS:
        return height, width
    return width, height
