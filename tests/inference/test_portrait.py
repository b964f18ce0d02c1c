"""Portrait mode: faces found on the scenes fixtures, scale logic, sizes kept, no-face notice."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from inference.cartoonizer import Cartoonizer
from inference.portrait import (FFHQ_INTEROCULAR_PER_WIDTH, Face, LandmarkFaceDetector,
                                PortraitProcessor, default_face_size,
                                face_detector_for, soft_mask)
from tests.conftest import fixtures_dir, requires_dlib, requires_mediapipe
from tests.inference import make_generator, make_picture, make_trained_like_generator


@pytest.fixture(scope="module", params=[pytest.param("mediapipe", marks=requires_mediapipe),
                                        pytest.param("dlib", marks=requires_dlib)])
def detector(request):
    d = face_detector_for(request.param)
    yield d
    d.close()


def load(name: str) -> np.ndarray:
    path = fixtures_dir("scenes", name)
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


@pytest.mark.parametrize("name,low,high", [
    ("wb_actress2.jpg", 1, 1), ("wb_liuyifei4.jpg", 1, 1), ("dct_input.png", 1, 1),
    ("wb_party5.jpg", 1, 1),  # a small face in a room
    # a group of five: mediapipe finds 4 of them, dlib's HOG 3 (the others are turned away)
    ("wb_party7.jpg", 3, 5),
    ("wb_london1.jpg", 0, 0), ("wb_mountain4.jpg", 0, 0), ("wb_food6.jpg", 0, 0),
])
def test_faces_found_on_scenes(detector, name, low, high):
    faces = detector.detect(load(name))
    assert low <= len(faces) <= high, [(f.box, f.score) for f in faces]
    assert all(f.interocular > 0 for f in faces)


def test_party5_small_face_has_small_interocular(detector):
    (face,) = detector.detect(load("wb_party5.jpg"))
    assert 20 < face.interocular < 80  # a face well under a tenth of the image width


class FixedDetector:
    """Stands in for mediapipe: returns given faces."""

    def __init__(self, faces):
        self.faces = faces

    def detect(self, rgb):
        return list(self.faces)


def test_scale_and_face_regions_without_mediapipe():
    """Largest face sets the global scale; a face at another scale gets its own region pass."""
    toon = Cartoonizer(make_generator(), tile=0)
    calls = []
    stylize = toon.stylize
    toon.stylize = lambda rgb: (calls.append(rgb.shape[:2]), stylize(rgb))[1]
    faces = [Face((20, 20, 60, 60), 40.0, 0.9), Face((100, 30, 120, 50), 10.0, 0.9)]
    proc = PortraitProcessor(toon, face_size=20.0, detector=FixedDetector(faces))
    img = make_picture(80, 160)
    out = proc(img)
    assert out.shape == img.shape
    assert calls[0] == (40, 80)          # whole image at 20/40 = 0.5
    assert len(calls) == 2 and calls[1][0] > 40  # second face upscaled x2 in its crop
    notices = []
    toon.notice = notices.append
    proc.detector = FixedDetector([])
    assert proc(img).shape == img.shape and notices and "no face" in notices[0]


def test_face_crop_takes_its_context_from_the_image():
    """A face re-done at the scale the image already has must give back the image's own cartoon:
    the crop's border gets the real picture around it as context, not padding (without it the
    generator's border frame showed through the feathered mask)."""
    toon = Cartoonizer(make_trained_like_generator(1), tile=0)
    proc = PortraitProcessor(toon, face_size=20.0, detector=FixedDetector([]))
    img = make_picture(200, 240, seed=2)
    out = toon.stylize(img)
    # crop 68..156 x 60..148; with 48 px of context it starts on the stride-4 grid, as the image
    mixed = proc._blend_face(img, out, Face((92, 84, 132, 124), 20.0, 0.9), 1.0)
    assert np.abs(mixed.astype(int) - out).max() <= 1


def test_missing_face_size_falls_back_to_ffhq_constant():
    assert default_face_size(128) == pytest.approx(FFHQ_INTEROCULAR_PER_WIDTH * 128)
    notes = []
    toon = Cartoonizer(make_generator(), tile=0, notice=notes.append)
    proc = PortraitProcessor(toon, face_size=None, image_size=256, detector=FixedDetector([]))
    assert proc.face_size == pytest.approx(0.3525 * 256) and notes


def test_soft_mask_feathers_inner_edges_only():
    m = soft_mask(20, 30, 5, (True, False, True, True))
    assert m[0, 15] < 0.05 and m[-1, 15] == 1.0 and m[10, 0] < 0.05 and m[10, 15] == 1.0


def test_portrait_on_group_photo_keeps_size():
    img = load("wb_party7.jpg")
    notes = []
    toon = Cartoonizer(make_generator(), tile=512, overlap=128, face_size=35.0, portrait=True,
                       notice=notes.append)
    out = toon(img)
    assert out.shape == img.shape and len(toon.portrait.last_faces) >= 3
    assert not [n for n in notes if "dlib's 68-point detector is used" not in n]


def test_portrait_without_face_is_whole_image_with_notice():
    notes = []
    toon = Cartoonizer(make_generator(), tile=0, face_size=35.0, portrait=True, notice=notes.append)
    img = make_picture(60, 84)
    out = toon(img)
    np.testing.assert_array_equal(out, toon.stylize(img))
    assert any("no face" in n for n in notes)


@requires_dlib
def test_dlib_and_mediapipe_agree_on_face_scale():
    """The dlib face's inter-ocular estimate (corners 36/45 in FaceMesh units, Topology.face_size) is
    within 10% of mediapipe FaceMesh's outer-corner distance on the same portrait."""
    from datasets.landmarks import resolve_detector

    img = load("wb_actress2.jpg")
    d = face_detector_for("dlib")
    (face,) = d.detect(img)
    d.close()
    if resolve_detector().name != "mediapipe":
        pytest.skip("needs mediapipe FaceMesh as the reference")
    with resolve_detector("mediapipe").build() as mesh:
        ref = mesh.topology.inter_ocular_distance(mesh.detect(img))
    assert abs(face.interocular / ref - 1) < 0.1


def test_portrait_detector_follows_the_landmark_detector(monkeypatch):
    from datasets.landmarks import detectors as D
    from utils.errors import ToonFaceError

    real = D._package_dir
    monkeypatch.setattr(D, "_package_dir", lambda name: None if name == "mediapipe" else real(name))
    with pytest.raises(ToonFaceError, match="mediapipe is not installed") as e:
        face_detector_for("mediapipe")
    assert "\n" not in str(e.value)
    if D.dlib_problem() is None:
        notes = []
        toon = Cartoonizer(make_generator(), tile=0, portrait=True, face_size=35.0,
                           notice=notes.append)
        assert isinstance(toon.portrait.detector, LandmarkFaceDetector)
        assert len(notes) == 1 and "dlib" in notes[0]
    with pytest.raises(ToonFaceError, match="unknown landmark detector"):
        Cartoonizer(make_generator(), tile=0, portrait=True, landmark_detector="opencv")
