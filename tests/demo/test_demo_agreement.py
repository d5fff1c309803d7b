import itertools

import numpy as np
import pytest

from sam3_radio.demo.agreement import mask_iou_matrix, match_masks


def square(top: int, left: int, size: int, shape=(20, 20)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def stack(*masks) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, 20, 20), dtype=bool)


# (case, first masks, second masks, expected score, expected number of matches)
SCORE_CASES = [
    ("identical", stack(square(0, 0, 4)), stack(square(0, 0, 4)), 1.0, 1),
    ("disjoint", stack(square(0, 0, 4)), stack(square(10, 10, 4)), 0.0, 0),
    # Two 4x4 squares shifted by 2 columns: 8 shared pixels of 24.
    ("half shifted", stack(square(0, 0, 4)), stack(square(0, 2, 4)), 8 / 24, 1),
    # One perfect pair and one mask of the first side alone: (1 + 0) / 2.
    ("extra first", stack(square(0, 0, 4), square(10, 10, 4)), stack(square(0, 0, 4)), 0.5, 1),
    ("extra second", stack(square(0, 0, 4)), stack(square(0, 0, 4), square(10, 10, 4)), 0.5, 1),
    # A zero-IoU pair counts as two unmatched masks: 1 / (1 pair + 2 unmatched).
    (
        "pair and disjoint pair",
        stack(square(0, 0, 4), square(10, 10, 2)),
        stack(square(0, 0, 4), square(15, 0, 2)),
        1 / 3,
        1,
    ),
    ("both empty", stack(), stack(), 1.0, 0),
    ("first empty", stack(), stack(square(0, 0, 4)), 0.0, 0),
    ("second empty", stack(square(0, 0, 4)), stack(), 0.0, 0),
]


@pytest.mark.parametrize(
    "first, second, score, num_matches",
    [case[1:] for case in SCORE_CASES],
    ids=[case[0] for case in SCORE_CASES],
)
def test_agreement_score_hand_made(first, second, score, num_matches):
    agreement = match_masks(first, second)

    assert agreement.score == pytest.approx(score)
    assert len(agreement.matches) == num_matches


def test_agreement_lists_unmatched_indices():
    first = stack(square(10, 10, 4), square(0, 0, 4))
    second = stack(square(15, 0, 3), square(0, 0, 4))

    agreement = match_masks(first, second)

    assert [(match.first, match.second) for match in agreement.matches] == [(1, 1)]
    assert agreement.unmatched_first == [0]
    assert agreement.unmatched_second == [0]
    assert agreement.num_entries == 3


def test_agreement_none_means_no_masks():
    assert match_masks(None, None).score == 1.0
    assert match_masks(stack(square(0, 0, 4)), None).score == 0.0


def test_agreement_matching_beats_greedy():
    # Greedy matching takes the highest IoU first, first[0] with second[0] (0.67), and
    # leaves first[1] no overlapping partner. Hungarian matching pairs them crosswise
    # (0.64 + 0.07) for a higher total.
    first = stack(square(0, 0, 10), square(0, 10, 4))
    second = stack(square(0, 2, 10), square(0, 0, 8))

    ious = mask_iou_matrix(first, second)
    agreement = match_masks(first, second)

    pairs = {(match.first, match.second) for match in agreement.matches}
    assert pairs == {(0, 1), (1, 0)}
    assert agreement.score == pytest.approx((ious[0, 1] + ious[1, 0]) / 2)


def test_agreement_matching_is_optimal_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(10):
        first = rng.random((4, 12, 12)) < 0.3
        second = rng.random((3, 12, 12)) < 0.3
        ious = mask_iou_matrix(first, second)
        best = max(
            sum(ious[row, column] for row, column in zip(rows, range(3)))
            for rows in itertools.permutations(range(4), 3)
        )

        agreement = match_masks(first, second)

        assert sum(match.iou for match in agreement.matches) == pytest.approx(best)


def test_mask_iou_matrix_matches_numpy():
    rng = np.random.default_rng(1)
    first = rng.random((3, 16, 24)) < 0.4
    second = rng.random((2, 16, 24)) < 0.4
    expected = np.array(
        [[(a & b).sum() / (a | b).sum() for b in second] for a in first], dtype=np.float64
    )

    np.testing.assert_allclose(mask_iou_matrix(first, second), expected)


def test_mask_iou_matrix_rejects_size_mismatch():
    with pytest.raises(ValueError, match="mask sizes differ"):
        mask_iou_matrix(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 5), bool))


def test_mask_iou_matrix_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        match_masks(np.zeros((4, 4), bool), None)
