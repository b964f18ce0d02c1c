"""Faces across frames (faces/tracking.py): the One-Euro filter and the tracker on scripted
detections of a face at rest and in motion."""
from __future__ import annotations

import math

import numpy as np

from faces.tracking import FaceTracker, OneEuroFilter
from tests.faces import centre, noisy_faces


def test_one_euro_filter_smooths_a_still_value_and_follows_a_moving_one():
    """Units of a face side: detector noise of 4% at rest is cut to under 40%; a face moving
    a tenth of its side per frame is followed with a lag under 3 frames."""
    rng = np.random.default_rng(1)
    f = OneEuroFilter(np.zeros(1))
    still = [f(rng.normal(0, 0.04, 1))[0] for _ in range(400)]
    assert np.std(still[50:]) < 0.4 * 0.04
    f = OneEuroFilter(np.zeros(1))
    moving = [f(np.array([0.1 * t]))[0] for t in range(60)]
    assert 0 < 0.1 * 59 - moving[-1] < 3 * 0.1


def test_tracked_boxes_jitter_far_less_than_the_detections():
    faces = noisy_faces(80)
    tracker = FaceTracker()
    tracked = [tracker.update([f]) for f in faces]
    assert all(len(t) == 1 for t in tracked) and len({t[0].track for t in tracked}) == 1
    raw = np.std([centre(f) for f in faces[20:]], axis=0)
    smooth = np.std([centre(t[0]) for t in tracked[20:]], axis=0)
    assert (smooth < 0.5 * raw).all(), (smooth, raw)
    raw_iod = np.std([math.log(f.interocular) for f in faces[20:]])
    smooth_iod = np.std([math.log(t[0].interocular) for t in tracked[20:]])
    assert smooth_iod < 0.5 * raw_iod


def test_a_moving_face_is_followed():
    faces = noisy_faces(40, centre=(40.0, 60.0), step=(3.0, 0.0), jitter=0.01)
    tracker = FaceTracker()
    tracked = [tracker.update([f]) for f in faces]
    truth = np.array([40.0 + 3.0 * 39, 60.0])
    assert np.abs(centre(tracked[-1][0]) - truth).max() < 2 * 3.0  # within two frames of motion
