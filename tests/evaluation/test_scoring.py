"""The score step shared by both test.py modes (evaluation/scoring.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from evaluation.pairs import Pair
from evaluation.scoring import (CONTRACT_KEYS, PER_IMAGE_COLUMNS, Reference, prepare_reference,
                                score)
from evaluation.style import image_style
from tests.conftest import requires_mediapipe
from utils.errors import ToonFaceError


@pytest.fixture(scope="module")
def face():
    return np.ascontiguousarray(data.astronaut()[20:276, 100:356])    # 256x256, dlib finds it


@pytest.fixture(scope="module")
def faceless():
    return np.ascontiguousarray(data.coffee()[:256, :256])


def pairs(face, faceless):
    blur = cv2.GaussianBlur(face, (0, 0), 1.0)
    return [Pair("self", None, None, face, face.copy()),
            Pair("blur", None, None, face, blur),
            Pair("nophoto", None, None, faceless, faceless.copy()),
            Pair("broken", None, None, error="unreadable output x.png: truncated")]


def test_contract_counts_and_per_pair_rows(face_analyser, face, faceless):
    r = score(pairs(face, faceless), analyser=face_analyser, landmarks=None,
              landmark_detector="dlib")
    s = r["summary"]
    assert tuple(s) == CONTRACT_KEYS
    assert (s["pairs"], s["pairs_scored"], s["pairs_without_photo_face"], s["pairs_failed"]) \
        == (4, 2, 1, 1)
    rows = {row["name"]: row for row in r["per_image"]}
    assert all(tuple(row) == PER_IMAGE_COLUMNS for row in rows.values())
    assert rows["self"]["nme68"] == 0.0 and rows["self"]["identity_distance"] == 0.0
    assert rows["self"]["same_person"] is True and rows["blur"]["same_person"] is True
    assert 0 < rows["blur"]["nme68"] < 0.05
    assert s["nme68_mean"] == pytest.approx(rows["blur"]["nme68"] / 2)
    assert rows["nophoto"]["status"] == "no_photo_face" and rows["nophoto"]["nme68"] is None
    assert rows["broken"]["status"] == "error" and "truncated" in rows["broken"]["error"]
    # style: of every pair whose images were read (3), faces or not; the broken one has none
    expected = np.mean([image_style(o)["smooth_share"]
                        for o in (face, cv2.GaussianBlur(face, (0, 0), 1.0), faceless)])
    assert s["smooth_share"] == pytest.approx(expected) and r["style"]["output"]["n"] == 3
    assert rows["broken"]["smooth_share"] is None
    # dlib as the training detector: no second NME, said so
    assert s["nme_mediapipe_mean"] is None and s["face_found_rate_mediapipe"] is None
    assert any("nme_mediapipe_mean" in n for n in r["notes"])
    assert any("1 pair(s) skipped: broken" in n for n in r["notes"])
    assert any(n.startswith("1 pair(s) not in the face metrics: dlib finds no face in the photo")
               and n.endswith(": nophoto") for n in r["notes"])
    assert all(s[k] is None for k in ("fid_cartoon", "kid_cartoon", "fid_photo", "kid_photo"))


@requires_mediapipe
def test_mediapipe_nme_of_an_identical_output_is_zero(face_analyser, face, faceless):
    from faces import resolve_detector

    with resolve_detector("mediapipe").build() as det:
        r = score(pairs(face, faceless)[:3], analyser=face_analyser, landmarks=det,
                  landmark_detector="mediapipe")
    rows = {row["name"]: row for row in r["per_image"]}
    assert rows["self"]["nme_mediapipe"] == 0.0 and rows["self"]["face_found_mediapipe"] is True
    assert rows["nophoto"]["face_found_mediapipe"] is None     # no face in the photo: excluded
    assert r["summary"]["face_found_rate_mediapipe"] == 1.0
    assert r["summary"]["nme_mediapipe_mean"] == pytest.approx(rows["blur"]["nme_mediapipe"] / 2)
    assert r["landmark"]["photo_found"] == 2


def test_fid_and_cartoon_style_with_a_reference(face_analyser, face, faceless, tmp_path):
    from tests.evaluation.test_fid import write_tiny_inception

    cartoons = tmp_path / "cartoons"
    cartoons.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(face, 20 * i, axis=1)).save(cartoons / f"c{i}.png")
    ref = prepare_reference(str(cartoons), write_tiny_inception(tmp_path / "inc.pt"), "none",
                            "cpu")
    r = score(pairs(face, faceless), analyser=face_analyser, landmark_detector="dlib",
              reference=ref, reference_size=64)
    s = r["summary"]
    assert s["fid_photo"] is not None and s["fid_cartoon"] is not None
    assert r["fid"]["photo"]["n_fake"] == 3 and r["fid"]["cartoon"]["n_real"] == 3
    assert r["style"]["cartoon"]["n"] == 3   # 4 per pair, at most what is there


def test_no_pairs_is_an_error(face_analyser):
    with pytest.raises(ToonFaceError, match="no .* pairs"):
        score([], analyser=face_analyser, reference=Reference())


def test_worker_processes_give_the_same_records(face_analyser, face, faceless):
    from faces.dlib_analyser import DlibFaceAnalyser

    here = score(pairs(face, faceless), analyser=face_analyser, landmark_detector="dlib")
    # an analyser that is never loaded here: the two spawned workers load their own
    there = score(pairs(face, faceless), analyser=DlibFaceAnalyser(), landmark_detector="dlib",
                  workers=2)
    assert there["per_image"] == here["per_image"] and there["summary"] == here["summary"]
