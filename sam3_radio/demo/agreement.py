"""Agreement between two backbones' masks: mean IoU after Hungarian matching.

The masks of the two backbones are paired one to one so that the sum of mask
IoUs is maximal (`scipy.optimize.linear_sum_assignment`). A pair counts as a
match only when its IoU is above zero. Every mask left without a match, on
either side, counts as one entry with IoU 0. The agreement score is therefore

    sum(IoU of matched pairs) / (matched pairs + unmatched first + unmatched second)

which is 1.0 only when both backbones find the same number of masks and every
pair is identical, and 0.0 when no mask overlaps any mask of the other side.
When neither backbone finds a mask the score is 1.0, because both agree that
the prompt matches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class MaskMatch:
    """One matched pair: mask `first` of the first backbone, mask `second` of the second."""

    first: int
    second: int
    iou: float


@dataclass(frozen=True)
class Agreement:
    """Matching of two mask sets and the score derived from it (see the module docstring)."""

    score: float
    matches: list[MaskMatch]
    unmatched_first: list[int]
    unmatched_second: list[int]

    @property
    def num_entries(self) -> int:
        """Matched pairs plus unmatched masks: the denominator of the score."""
        return len(self.matches) + len(self.unmatched_first) + len(self.unmatched_second)


def _check_masks(masks: np.ndarray | None, name: str) -> np.ndarray:
    if masks is None:
        return np.zeros((0, 0, 0), dtype=bool)
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"{name} masks must have shape [N, H, W], got {masks.shape}")
    return masks.astype(bool, copy=False)


def mask_iou_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Return the IoU of every mask pair as a float64 [N, M] matrix.

    Args:
        first: bool masks [N, H, W].
        second: bool masks [M, H, W] of the same H and W.

    IoUs are computed exactly on COCO run-length encodings (pycocotools), so
    full-resolution masks cost little memory. Two empty masks have IoU 0.
    """
    first = _check_masks(first, "first")
    second = _check_masks(second, "second")
    if len(first) == 0 or len(second) == 0:
        return np.zeros((len(first), len(second)), dtype=np.float64)
    if first.shape[1:] != second.shape[1:]:
        raise ValueError(
            f"mask sizes differ: first {first.shape[1:]} and second {second.shape[1:]} "
            "(H, W); both backbones must segment the same image"
        )
    first_rles = mask_utils.encode(np.asfortranarray(first.transpose(1, 2, 0).astype(np.uint8)))
    second_rles = mask_utils.encode(np.asfortranarray(second.transpose(1, 2, 0).astype(np.uint8)))
    ious = mask_utils.iou(first_rles, second_rles, [0] * len(second_rles))
    return np.asarray(ious, dtype=np.float64).reshape(len(first), len(second))


def match_masks(first: np.ndarray | None, second: np.ndarray | None) -> Agreement:
    """Match two mask sets by Hungarian matching on mask IoU and score the agreement.

    Args:
        first: bool masks [N, H, W] of the first backbone, or None for none.
        second: bool masks [M, H, W] of the second backbone, or None for none.

    Returns:
        The matched pairs (IoU > 0) in order of the first backbone's masks,
        the unmatched mask indices of each side, and the agreement score
        defined in the module docstring.
    """
    first = _check_masks(first, "first")
    second = _check_masks(second, "second")
    if len(first) == 0 and len(second) == 0:
        return Agreement(score=1.0, matches=[], unmatched_first=[], unmatched_second=[])

    ious = mask_iou_matrix(first, second)
    rows, columns = linear_sum_assignment(ious, maximize=True)
    matches = [
        MaskMatch(first=int(row), second=int(column), iou=float(ious[row, column]))
        for row, column in zip(rows, columns)
        if ious[row, column] > 0.0
    ]
    matched_first = {match.first for match in matches}
    matched_second = {match.second for match in matches}
    unmatched_first = [index for index in range(len(first)) if index not in matched_first]
    unmatched_second = [index for index in range(len(second)) if index not in matched_second]

    entries = len(matches) + len(unmatched_first) + len(unmatched_second)
    score = sum(match.iou for match in matches) / entries
    return Agreement(
        score=score,
        matches=matches,
        unmatched_first=unmatched_first,
        unmatched_second=unmatched_second,
    )
