"""Face boxes (faces/boxes.py): the one IoU against hand-computed values, in the continuous
convention, and dlib's inclusive integer boxes through it; the one overlap suppression."""
from __future__ import annotations

import pytest

from faces.boxes import Face, box_iou, suppress_overlaps
from faces.dlib_analyser import FaceBox


def test_iou_hand_computed():
    # (0,0)-(10,10) and (5,0)-(15,10): overlap 5 x 10 = 50, union 100 + 100 - 50 = 150
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    # (0,0)-(4,4) inside (0,0)-(8,8): 16 / 64
    assert box_iou((0, 0, 4, 4), (0, 0, 8, 8)) == pytest.approx(0.25)
    # fractional boxes (mediapipe's): overlap 1.5 x 2 = 3, union 2*2 + 2*2 - 3 = 5
    assert box_iou((0.5, 0.0, 2.5, 2.0), (1.0, 0.0, 3.0, 2.0)) == pytest.approx(3 / 5)
    assert box_iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0


def test_iou_of_boxes_that_only_touch_or_are_empty_is_zero():
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0   # half-open: they share no pixel
    assert box_iou((0, 0, 10, 10), (30, 30, 40, 40)) == 0.0
    assert box_iou((3, 3, 3, 3), (3, 3, 3, 3)) == 0.0


def test_dlib_inclusive_boxes_keep_their_iou():
    """dlib's rectangles name inclusive pixels: left..right = 0..9 is 10 pixels wide. The
    inclusive formula (w = min(r) - max(l) + 1) gave 50 / 150 for these; the continuous box
    (left, top, right + 1, bottom + 1) gives the same."""
    a, b = FaceBox(0, 0, 9, 9), FaceBox(5, 0, 14, 9)
    assert a.continuous == (0.0, 0.0, 10.0, 10.0) and a.area == 100
    assert a.iou(b) == pytest.approx(1 / 3)
    # adjacent inclusive boxes share no pixel; one pixel of overlap is 1 / (4 + 4 - 1)
    assert FaceBox(0, 0, 1, 1).iou(FaceBox(2, 0, 3, 1)) == 0.0
    assert FaceBox(0, 0, 1, 1).iou(FaceBox(1, 1, 2, 2)) == pytest.approx(1 / 7)


def test_suppression_keeps_the_best_of_each_overlapping_group():
    big = Face((0, 0, 10, 10), 4.0, 0.9)
    shifted = Face((1, 0, 11, 10), 4.0, 0.95)      # IoU 90 / 110 with big
    apart = Face((50, 50, 60, 60), 4.0, 0.5)
    half = Face((5, 0, 15, 10), 4.0, 0.99)         # IoU 1/3 with big, 6/14 with shifted
    kept = suppress_overlaps([big, shifted, apart], iou=0.3)
    assert kept == [shifted, apart]
    assert suppress_overlaps([big, half], iou=0.3) == [half]
    assert suppress_overlaps([big, half], iou=0.5) == [half, big]
    assert suppress_overlaps([]) == []
