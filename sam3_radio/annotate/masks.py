"""Convert masks between COCO segmentations (RLE, polygons) and bool arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from supervision.dataset.utils import approximate_mask_with_polygons

from sam3_radio.predict.export import decode_rle


def segmentation_to_mask(segmentation: Any, width: int, height: int) -> np.ndarray | None:
    """Decode a COCO segmentation (polygons, RLE or uncompressed RLE) to a bool [H, W] mask.

    Returns None when the annotation has no usable segmentation.
    """
    if isinstance(segmentation, list):
        polygons = [
            polygon for polygon in segmentation if isinstance(polygon, list) and len(polygon) >= 6
        ]
        if not polygons:
            return None
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        return mask_utils.decode(rle).astype(bool)
    if isinstance(segmentation, dict) and segmentation.get("counts"):
        if isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
            return mask_utils.decode(rle).astype(bool)
        return decode_rle(segmentation)
    return None


def mask_to_polygons(mask: np.ndarray, simplification: float) -> list[list[float]] | None:
    """Return COCO polygons (flat [x0, y0, x1, y1, ...] lists), one per connected component.

    Holes are joined to their outer contour by a zero-width seam, because COCO
    fills the union of an annotation's polygons. Returns None when no seam can
    be found, so the caller can keep the exact RLE instead.
    """
    if not mask.any():
        return []
    try:
        polygons = approximate_mask_with_polygons(
            mask, approximation_percentage=simplification, bridge_holes=True
        )
    except ValueError:
        return None
    return [
        [float(value) for value in polygon.reshape(-1)] for polygon in polygons if len(polygon) >= 3
    ]
