"""Landmark NME (evaluation/nme.py): the per-pair NME that evaluation/scoring.py aggregates."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from faces import resolve_detector
from evaluation.nme import nme_of_points, pair_nme
from media.decode import read_image_rgb

FIXTURES = (Path(__file__).resolve().parents[2] / "../shared/fixtures").resolve()
FFHQ = FIXTURES / "ffhq-mini"


@pytest.fixture(scope="module")
def detector():
    """The default detector: mediapipe FaceMesh where installed, else dlib (the metric's
    properties below hold for both)."""
    with resolve_detector().build() as det:
        yield det


@pytest.fixture(scope="module")
def face():
    return np.ascontiguousarray(data.astronaut()[20:276, 100:356])    # 256x256 face crop


def sheared(img, amount):
    """Affine shear about the image centre (an independent geometric warp)."""
    h, w = img.shape[:2]
    m = np.array([[1.0, amount, -amount * h / 2], [0.0, 1.0, 0.0]])
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("n,corners", [(468, (33, 263)), (68, (36, 45))])
def test_nme_of_points_hand_value(n, corners):
    p = np.zeros((n, 2))
    p[corners[0]], p[corners[1]] = (0, 0), (10, 0)  # inter-ocular distance 10
    assert nme_of_points(p, p + [3, 4]) == pytest.approx(0.5)   # every point moved by 5


def test_identical_is_zero_and_warps_grow_monotonically(detector, face):
    pairs = [pair_nme(face, sheared(face, a), detector) for a in (0.0, 0.05, 0.1, 0.2)]
    assert all(p[:2] == (True, True) for p in pairs)
    per = [p[2] for p in pairs]
    assert per[0] == pytest.approx(0.0, abs=1e-6)
    assert all(v is not None for v in per) and per[0] < per[1] < per[2] < per[3], per


def test_no_face_is_none_never_nan(detector, face):
    flat = np.full_like(face, 128)
    assert pair_nme(face, flat, detector) == (True, False, None)   # the face did not survive
    assert pair_nme(flat, face, detector) == (False, None, None)   # no face to keep: not counted
    assert pair_nme(flat, flat, detector) == (False, None, None)
    found, kept, v = pair_nme(face, face, detector)
    assert found and kept and math.isfinite(v)


def test_output_of_another_size_is_rescaled(detector, face):
    up = cv2.resize(face, (384, 384), interpolation=cv2.INTER_CUBIC)
    assert pair_nme(face, up, detector)[2] < 0.05


@pytest.mark.skipif(not (FFHQ / "cartoons").is_dir(), reason=f"fixtures absent at {FFHQ}")
def test_reference_cartoons_keep_the_face(detector):
    names = sorted(p.name for p in (FFHQ / "photos").glob("*.jpg"))[:8]
    pairs = [pair_nme(read_image_rgb(FFHQ / "photos" / n), read_image_rgb(FFHQ / "cartoons" / n), detector)
             for n in names]
    assert all(p[0] for p in pairs) and sum(bool(p[1]) for p in pairs) >= 0.75 * len(names)
    values = [p[2] for p in pairs if p[2] is not None]
    assert np.mean(values) < 0.1                     # the white-box authors' model keeps geometry
