"""J&F on masks small enough to check by hand."""

import numpy as np
import pytest

from sam3_radio.metrics.jf import (
    ObjectScore,
    boundary_f_measure,
    boundary_map,
    boundary_radius,
    region_similarity,
    score_object,
    score_video_masks,
    summarize_jf,
)

from .conftest import rectangle


def test_region_similarity_overlap():
    a = rectangle(10, 10, 0, 0, 4, 4)  # 16 pixels
    b = rectangle(10, 10, 2, 0, 6, 4)  # 16 pixels, 8 shared
    assert region_similarity(a, b) == pytest.approx(8 / 24)


def test_region_similarity_both_empty():
    empty = np.zeros((5, 5), dtype=bool)
    assert region_similarity(empty, empty) == 1.0


def test_boundary_map_square():
    mask = rectangle(6, 6, 1, 1, 4, 4)  # rows and columns 1-3
    expected = np.zeros((6, 6), dtype=bool)
    expected[0, 0:4] = True  # above the square, and the pixel diagonal to its corner
    expected[1:3, [0, 3]] = True  # left of the square and its right column
    expected[3, 0:4] = True  # its last row and the pixel left of it
    np.testing.assert_array_equal(boundary_map(mask), expected)


def test_boundary_map_right_and_bottom_edges():
    # Last row compares only rightwards, last column only downwards.
    mask = rectangle(4, 4, 2, 2, 4, 4)
    boundary = boundary_map(mask)
    assert not boundary[3, 3]
    assert boundary[3, 1]
    assert boundary[1, 3]
    assert not boundary[2, 3]
    assert not boundary[3, 2]


def test_boundary_radius_davis_tolerance():
    assert boundary_radius(480, 854) == 8  # ceil(0.008 * 979.7)
    assert boundary_radius(100, 100) == 2  # ceil(1.13)


def test_boundary_f_identical_masks():
    mask = rectangle(50, 50, 10, 10, 30, 30)
    assert boundary_f_measure(mask, mask) == 1.0


def test_boundary_f_within_tolerance():
    # A shift of 1 pixel lies within the 1-pixel radius of a 50x50 frame.
    assert boundary_f_measure(rectangle(50, 50, 10, 10, 30, 30), rectangle(50, 50, 11, 10, 31, 30)) == 1.0


def test_boundary_f_far_apart():
    assert boundary_f_measure(rectangle(50, 50, 0, 0, 5, 5), rectangle(50, 50, 30, 30, 40, 40)) == 0.0


def test_boundary_f_half_matched():
    # Ground truth: two squares far apart; prediction: only the first one.
    # Precision 1, recall 1/2 -> F = 2/3.
    truth = rectangle(60, 60, 5, 5, 15, 15) | rectangle(60, 60, 40, 40, 50, 50)
    prediction = rectangle(60, 60, 5, 5, 15, 15)
    assert boundary_f_measure(prediction, truth) == pytest.approx(2 / 3)


def test_boundary_f_empty_cases():
    empty = np.zeros((20, 20), dtype=bool)
    mask = rectangle(20, 20, 5, 5, 10, 10)
    assert boundary_f_measure(empty, empty) == 1.0
    assert boundary_f_measure(empty, mask) == 0.0
    assert boundary_f_measure(mask, empty) == 0.0


def test_score_object_skips_first_and_last():
    truth = rectangle(20, 20, 5, 5, 10, 10)
    frames = [(None, truth), (truth, truth), (truth, truth), (None, truth)]
    score = score_object("v", "000", frames)
    assert score.num_frames == 2
    assert score.j == 100.0
    assert score.f == 100.0


def test_score_object_hand_mix():
    truth = rectangle(20, 20, 0, 0, 4, 4)
    half = rectangle(20, 20, 0, 0, 2, 4)  # J = 1/2
    frames = [(truth, truth), (truth, truth), (half, truth), (truth, truth)]
    score = score_object("v", "000", frames)
    assert score.j == pytest.approx(100 * (1 + 0.5) / 2)


def test_score_object_too_few_frames_rejected():
    truth = rectangle(10, 10, 0, 0, 4, 4)
    with pytest.raises(ValueError, match="at least 3 annotated frames"):
        score_object("v", "000", [(truth, truth), (truth, truth)])


def test_score_video_perfect_and_empty():
    truth = {"000": {i: rectangle(20, 20, i, 2, i + 5, 8) for i in range(4)}}
    perfect = score_video_masks("v", truth, truth)
    empty = score_video_masks("v", {}, truth)
    assert perfect[0].jf == 100.0
    assert empty[0].j == 0.0
    assert empty[0].f == 0.0


def test_summarize_means_over_objects():
    objects = [
        ObjectScore("a", "1", 80.0, 60.0, 3),
        ObjectScore("a", "2", 40.0, 20.0, 3),
        ObjectScore("b", "1", 90.0, 100.0, 3),
    ]
    summary = summarize_jf(objects)
    assert summary.j == pytest.approx(70.0)
    assert summary.f == pytest.approx(60.0)
    assert summary.jf == pytest.approx(65.0)
    assert summary.videos["a"]["J&F"] == pytest.approx(50.0)
    assert summary.videos["b"]["J&F"] == pytest.approx(95.0)
