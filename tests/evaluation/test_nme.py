"""Landmark NME (evaluation/nme.py)."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from media.decode import read_image_rgb
from datasets.landmarks import resolve_detector
from evaluation.nme import landmark_nme, nme_of_points

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
    amounts = (0.0, 0.05, 0.1, 0.2)
    r = landmark_nme([face] * len(amounts), [sheared(face, a) for a in amounts], detector)
    per = r["per_image"]
    assert per[0] == pytest.approx(0.0, abs=1e-6)
    assert all(v is not None for v in per) and per[0] < per[1] < per[2] < per[3], per
    assert r["found_rate"] == 1.0 and r["photo_found"] == 4 and r["both_found"] == 4
    assert r["nme"] == pytest.approx(float(np.mean(per)))


def test_no_face_counts_and_no_nan(detector, face):
    flat = np.full_like(face, 128)
    r = landmark_nme([face, face, flat], [face, flat, face], detector)
    assert r["per_image"][0] == pytest.approx(0.0, abs=1e-6)
    assert r["per_image"][1] is None and r["per_image"][2] is None
    assert r["photo_found"] == 2 and r["both_found"] == 1 and r["found_rate"] == 0.5
    assert r["nme"] is not None and math.isfinite(r["nme"])
    none = landmark_nme([flat], [flat], detector)
    assert none["nme"] is None and none["found_rate"] is None and none["photo_found"] == 0


def test_tensor_batches_match_arrays(detector, face):
    def t(img):
        return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1

    out = sheared(face, 0.1)
    r_t = landmark_nme(torch.stack([t(face)]), torch.stack([t(out)]), detector)
    r_a = landmark_nme([face], [out], detector)
    assert r_t["nme"] == pytest.approx(r_a["nme"], rel=1e-5)


def test_output_of_another_size_is_rescaled(detector, face):
    up = cv2.resize(face, (384, 384), interpolation=cv2.INTER_CUBIC)
    r = landmark_nme([face], [up], detector)
    assert r["nme"] < 0.05


@pytest.mark.skipif(not (FFHQ / "cartoons").is_dir(), reason=f"fixtures absent at {FFHQ}")
def test_reference_cartoons_keep_the_face(detector):
    names = sorted(p.name for p in (FFHQ / "photos").glob("*.jpg"))[:8]
    photos = [read_image_rgb(FFHQ / "photos" / n) for n in names]
    cartoons = [read_image_rgb(FFHQ / "cartoons" / n) for n in names]
    r = landmark_nme(photos, cartoons, detector)
    assert r["photo_found"] == len(names) and r["found_rate"] >= 0.75
    assert r["nme"] < 0.1                          # the white-box authors' model keeps geometry
