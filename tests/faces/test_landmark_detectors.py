"""Landmark detectors (faces/landmark_detectors.py): the three backends on real faces,
cross-checked against each other, and the one-line errors of every bad choice."""
from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest

from media.decode import read_image_rgb
from faces import landmark_detectors as D
from faces import (IBUG_68, MEDIAPIPE_468, DetectorSpec, DetectorUnavailable,
                   FaceMeshDetector, check_tasks_model, dlib_model_file,
                   inter_ocular_distance, resolve_detector)
from tests.conftest import ROOT, requires_dlib, requires_mediapipe
from tests.faces.conftest import FFHQ_PHOTOS
from tests.faces.tasks_bundle import build_face_landmarker_task, wheel_models
from utils.errors import ToonFaceError

# Corresponding points of the two topologies (mediapipe index, iBUG index): outer and inner
# eye corners, mouth corners, chin, nose tip.
CORRESPONDING = [(33, 36), (133, 39), (362, 42), (263, 45), (61, 48), (291, 54), (152, 8), (4, 30)]


def mean_dist(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=1).mean())


def test_import_does_not_import_backends_or_torch():
    code = ("import sys, numpy as np; from faces import render_landmark_map, "
            "LandmarkCache, resolve_detector; resolve_detector('dlib'); "
            "render_landmark_map(np.random.rand(68, 2).astype('float32') * 64, 64, 64); "
            "bad = [m for m in ('mediapipe', 'dlib', 'torch', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# --- mediapipe FaceMesh -------------------------------------------------------------------------
@requires_mediapipe
def test_facemesh_astronaut(facemesh_points):
    p = facemesh_points
    assert p.shape == (468, 2) and p.dtype == np.float32
    assert np.isfinite(p).all() and (p >= 0).all() and (p < 512).all()
    # subject's right eye (33) is on the image's left; the eyes lie above the mouth (13)
    assert p[33, 0] < p[263, 0] and max(p[33, 1], p[263, 1]) < p[13, 1]
    assert 20 < inter_ocular_distance(p) < 200


@requires_mediapipe
def test_facemesh_non_square_images_use_pixel_frame(facemesh, astronaut, facemesh_points):
    pad = np.zeros((512, 768, 3), np.uint8)
    pad[:, 100:612] = astronaut
    q = facemesh.detect(pad)
    assert mean_dist(q, facemesh_points + [100, 0]) < 0.05 * inter_ocular_distance(facemesh_points)


@requires_mediapipe
@pytest.mark.parametrize("kind", ["gray2d", "gray1", "rgba", "rgb16", "float"])
def test_facemesh_converted_inputs(facemesh, astronaut, facemesh_points, kind):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    img = {
        "gray2d": gray,
        "gray1": gray[:, :, None],
        "rgba": np.dstack([astronaut, np.full(gray.shape, 255, np.uint8)]),
        "rgb16": astronaut.astype(np.uint16) * 257,
        "float": astronaut.astype(np.float32) / 255.0,
    }[kind]
    p = facemesh.detect(img)
    assert p is not None and p.shape == (468, 2)
    assert mean_dist(p, facemesh_points) < 0.05 * inter_ocular_distance(facemesh_points)


@requires_mediapipe
def test_facemesh_no_face_on_flat_image(facemesh):
    assert facemesh.detect(np.full((128, 128, 3), 120, np.uint8)) is None


@requires_mediapipe
def test_facemesh_is_not_picklable_and_close_is_final():
    det = FaceMeshDetector()
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(det)
    det.close()
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(np.zeros((8, 8, 3), np.uint8))


@requires_mediapipe
def test_every_fixture_photo_has_a_facemesh_face(facemesh):
    if not FFHQ_PHOTOS.is_dir():
        pytest.skip(f"{FFHQ_PHOTOS} absent: the shared fixtures are not beside this checkout")
    paths = sorted(FFHQ_PHOTOS.glob("*.jpg"))
    assert len(paths) >= 40
    assert [p.name for p in paths if facemesh.detect(read_image_rgb(p)) is None] == []


# --- dlib -----------------------------------------------------------------------------------
@requires_dlib
def test_dlib_astronaut(dlib_points):
    p = dlib_points
    assert p.shape == (68, 2) and p.dtype == np.float32 and np.isfinite(p).all()
    assert p[36, 0] < p[45, 0]                       # subject's right eye on the image's left
    assert max(p[36, 1], p[45, 1]) < p[51, 1] < p[8, 1]   # eyes above the upper lip above the chin
    assert 20 < inter_ocular_distance(p) < 200


@requires_dlib
@requires_mediapipe
def test_dlib_agrees_with_facemesh_on_corresponding_points(facemesh_points, dlib_points):
    """Two independent models: corresponding points within 10% of the inter-ocular distance."""
    mp_idx, ib_idx = zip(*CORRESPONDING)
    d = np.linalg.norm(facemesh_points[list(mp_idx)] - dlib_points[list(ib_idx)], axis=1)
    assert d.max() < 0.1 * inter_ocular_distance(facemesh_points), d


@requires_dlib
def test_dlib_frames_and_inputs(dlib68, astronaut, dlib_points):
    iod = inter_ocular_distance(dlib_points)
    pad = np.zeros((512, 768, 3), np.uint8)
    pad[:, 100:612] = astronaut
    assert mean_dist(dlib68.detect(pad), dlib_points + [100, 0]) < 0.05 * iod
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    assert mean_dist(dlib68.detect(gray), dlib_points) < 0.05 * iod
    # a half-size image: points halve in continuous coordinates (the +0.5 convention)
    half = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    assert mean_dist(dlib68.detect(half), dlib_points * 0.5) < 0.05 * iod
    assert dlib68.detect(np.full((128, 128, 3), 120, np.uint8)) is None
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(dlib68)


@requires_dlib
def test_dlib_upsampling_finds_small_training_faces(dlib68, astronaut):
    face = astronaut[20:276, 100:356]
    for side in (64, 128):
        small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        assert dlib68.detect(small) is not None, side
    assert [D.dlib_upsample(s) for s in (64, 128, 256, 1024, 1025)] == [2, 1, 1, 1, 0]


@requires_dlib
def test_every_fixture_photo_has_a_dlib_face(dlib68):
    if not FFHQ_PHOTOS.is_dir():
        pytest.skip(f"{FFHQ_PHOTOS} absent: the shared fixtures are not beside this checkout")
    paths = sorted(FFHQ_PHOTOS.glob("*.jpg"))
    assert [p.name for p in paths if dlib68.detect(read_image_rgb(p)) is None] == []


@requires_dlib
def test_dlib_model_file_lookup(monkeypatch):
    path = dlib_model_file(D.DLIB_PREDICTOR_68)
    assert path.is_file() and path.stat().st_size > 50_000_000
    with pytest.raises(ToonFaceError, match="is missing"):
        dlib_model_file("no_such_model.dat")
    monkeypatch.setattr(D, "_package_dir", lambda name: None)
    with pytest.raises(ToonFaceError, match="pip install dlib-bin"):
        dlib_model_file(D.DLIB_PREDICTOR_68)


# --- mediapipe Tasks ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tasks_model(tmp_path_factory):
    if D.mediapipe_tasks_problem() or wheel_models() is None:
        pytest.skip("needs mediapipe 0.10.21's bundled models to build a face_landmarker.task")
    return build_face_landmarker_task(tmp_path_factory.mktemp("tasks") / "face_landmarker.task")


@requires_mediapipe
def test_tasks_backend_end_to_end_equals_facemesh(tasks_model, astronaut, facemesh_points):
    """The Tasks graph on a bundle of the wheel's own FaceMesh models gives FaceMesh's points:
    the Tasks code path (model loading, image wrapping, point conversion) is exact."""
    spec = resolve_detector("mediapipe-tasks", tasks_model)
    assert spec.topology is MEDIAPIPE_468 and spec.key.startswith("mediapipe-tasks:sha256=")
    with spec.build() as det:
        p = det.detect(astronaut)
        assert p.shape == (468, 2) and p.dtype == np.float32
        assert mean_dist(p, facemesh_points) < 0.01
        assert det.detect(np.full((128, 128, 3), 120, np.uint8)) is None
        with pytest.raises(TypeError, match="pickled"):
            pickle.dumps(det)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_tasks_model_checks_are_one_line(tmp_path):
    def message(path):
        with pytest.raises(ToonFaceError) as e:
            check_tasks_model(path)
        msg = str(e.value)
        assert "\n" not in msg and "face_landmarker.task" in msg
        return msg

    assert message(tmp_path / "missing.task").startswith("landmark model not found")
    assert "not a file" in message(tmp_path)
    (tmp_path / "text.task").write_text("hello")
    assert "is not a mediapipe face landmarker model" in message(tmp_path / "text.task")
    other = _zip(tmp_path / "other.task", {"hand_detector.tflite": b"1234TFL3xx"})
    assert "is not a mediapipe face landmarker model" in message(other)
    not_tflite = _zip(tmp_path / "bad.task", {m: b"12345678" for m in D.TASKS_BUNDLE_MEMBERS})
    assert "is not a mediapipe face landmarker model" in message(not_tflite)
    looks_ok = _zip(tmp_path / "ok.task", {m: b"1234TFL3" + bytes(64) for m in D.TASKS_BUNDLE_MEMBERS})
    assert len(check_tasks_model(looks_ok)) == 64       # SHA-256 hex of a plausible bundle


def test_tasks_model_that_mediapipe_cannot_load_is_one_line(tmp_path):
    if D.mediapipe_tasks_problem():
        pytest.skip(f"needs mediapipe's Tasks API ({D.mediapipe_tasks_problem()})")
    fake = _zip(tmp_path / "fake.task", {m: b"1234TFL3" + bytes(64) for m in D.TASKS_BUNDLE_MEMBERS})
    spec = resolve_detector("mediapipe-tasks", fake)      # passes the cheap checks
    with pytest.raises(ToonFaceError, match="mediapipe cannot load the landmark model") as e:
        spec.build()
    assert "\n" not in str(e.value)


def _flag_members(path, flag_bits=None, method=None):
    """Rewrite the zip's local and central headers of every member: its general-purpose flag
    bits and/or its compression method (what zipfile will not write)."""
    import struct

    data = bytearray(path.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = data.find(sig)
        while i >= 0:
            if flag_bits is not None:
                struct.pack_into("<H", data, i + flag_at, flag_bits)
            if method is not None:
                struct.pack_into("<H", data, i + method_at, method)
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))
    return path


def test_encrypted_or_compressed_bundles_are_one_line(tmp_path):
    """zipfile raises RuntimeError for an encrypted member and NotImplementedError for an
    unknown compression method; mediapipe reads neither, nor deflated members."""
    members = {m: b"1234TFL3" + bytes(64) for m in D.TASKS_BUNDLE_MEMBERS}
    cases = {
        "encrypted": (_flag_members(_zip(tmp_path / "enc.task", members), flag_bits=1), "is encrypted"),
        "unknown": (_flag_members(_zip(tmp_path / "unk.task", members), method=99),
                    "is compressed (zip method 99)"),
    }
    with zipfile.ZipFile(tmp_path / "defl.task", "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    cases["deflated"] = (tmp_path / "defl.task", "is compressed (zip method 8)")
    for case, (path, want) in cases.items():
        with pytest.raises(ToonFaceError) as e:
            check_tasks_model(path)
        msg = str(e.value)
        assert want in msg and "\n" not in msg and "face_landmarker.task" in msg, (case, msg)


def test_a_model_is_checked_on_a_reference_face_before_use(tmp_path, tasks_model):
    """A bundle of the raw FaceMesh model (no 478-point head) loads in mediapipe but puts every
    point about one eye distance off: refused when built, one line; the right model passes."""
    from tests.faces.tasks_bundle import build_face_landmarker_task

    raw = build_face_landmarker_task(tmp_path / "raw.task", head=False)
    spec = resolve_detector("mediapipe-tasks", raw)       # passes the file checks
    with pytest.raises(ToonFaceError, match=r"reference face's landmarks 1\.\d\d eye distances") as e:
        spec.build()
    assert "\n" not in str(e.value) and str(raw) in str(e.value)
    with resolve_detector("mediapipe-tasks", tasks_model).build(num_faces=2) as det:
        assert det.detect(np.full((64, 64, 3), 90, np.uint8)) is None


@requires_mediapipe
def test_reference_points_are_facemesh_on_the_reference_photo(facemesh):
    """The stored reference is what legacy FaceMesh gives today (within its 0.1 px rounding)."""
    from faces.reference_face import reference_image, reference_points

    assert mean_dist(facemesh.detect(reference_image()), reference_points()) < 0.1


# --- choosing a detector ---------------------------------------------------------------------------
def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ToonFaceError) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.fixture
def no_mediapipe(monkeypatch):
    """Pretend mediapipe is not installed (its file checks find nothing)."""
    real = D._package_dir
    monkeypatch.setattr(D, "_package_dir", lambda name: None if name == "mediapipe" else real(name))


def test_bad_choices_are_one_line_errors(tmp_path, no_mediapipe):
    assert "unknown landmark detector 'dlb'" in _one_line_error(resolve_detector, "dlb")
    msg = _one_line_error(resolve_detector, "mediapipe")
    assert "mediapipe==0.10.21" in msg and "not installed" in msg and "dlib" in msg
    assert "needs mediapipe" in _one_line_error(resolve_detector, "mediapipe-tasks", tmp_path / "x.task")
    assert "only by --landmark-detector mediapipe-tasks" in _one_line_error(
        resolve_detector, "dlib", tmp_path / "x.task")


def test_mediapipe_without_legacy_api_names_cause_and_fix(tmp_path, monkeypatch):
    """mediapipe >= 0.10.30 is installed but has no mp.solutions: say so, before any import."""
    fake = tmp_path / "mediapipe"
    (fake / "tasks" / "python" / "vision").mkdir(parents=True)
    (fake / "tasks" / "python" / "vision" / "face_landmarker.py").write_text("")
    real = D._package_dir
    monkeypatch.setattr(D, "_package_dir", lambda name: fake if name == "mediapipe" else real(name))
    monkeypatch.setattr(D, "_version", lambda dist: "0.10.31")
    msg = _one_line_error(resolve_detector, "mediapipe")
    assert "mediapipe 0.10.31 has no legacy FaceMesh API" in msg and "removed in mediapipe 0.10.30" in msg
    assert D.mediapipe_tasks_problem() is None
    with pytest.raises(ToonFaceError, match="0.10.31 has no legacy FaceMesh API"):
        FaceMeshDetector()
    msg = _one_line_error(resolve_detector, "mediapipe-tasks")
    assert "needs --landmark-model PATH" in msg and D.TASKS_MODEL_URL in msg


@requires_dlib
def test_default_is_dlib_without_mediapipe_and_says_so_once(no_mediapipe, caplog):
    with caplog.at_level(logging.INFO, logger="faces"):
        spec = resolve_detector()
    assert spec.name == "dlib" and spec.topology is IBUG_68
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "mediapipe is not installed" in lines[0] and spec.note == lines[0]
    assert resolve_detector(spec) is spec          # passing the spec on does not log again
    assert len(caplog.records) == 1


@requires_mediapipe
def test_default_is_mediapipe_where_installed(caplog):
    with caplog.at_level(logging.INFO, logger="faces"):
        spec = resolve_detector()
    assert spec.name == "mediapipe" and spec.note is None and not caplog.records


def test_spec_keys_separate_detectors_and_models():
    a = DetectorSpec("mediapipe-tasks", None, "a" * 64)
    b = DetectorSpec("mediapipe-tasks", None, "b" * 64)
    keys = {DetectorSpec("mediapipe").key, DetectorSpec("dlib").key, a.key, b.key}
    assert len(keys) == 4
    assert pickle.loads(pickle.dumps(a)) == a


def test_missing_backends_are_import_errors_too(no_mediapipe):
    """So a caller that can do without landmarks (training with --w5 0) catches them as the
    missing import they are, while a CLI still prints one line and exits 2."""
    with pytest.raises(ImportError) as e:
        resolve_detector("mediapipe")
    assert isinstance(e.value, DetectorUnavailable) and e.value.exit_code == 2


@requires_mediapipe
def test_mediapipe_installed_without_solutions_is_one_line(monkeypatch):
    import importlib.util
    import types

    fake = types.ModuleType("mediapipe")     # the files of mediapipe, a module without the API
    fake.__spec__ = importlib.util.find_spec("mediapipe")
    monkeypatch.setitem(sys.modules, "mediapipe", fake)
    msg = _one_line_error(FaceMeshDetector)
    assert "has no mp.solutions" in msg and "--landmark-detector dlib" in msg
    from faces.face_detectors import FaceDetector
    assert "has no mp.solutions" in _one_line_error(FaceDetector)
