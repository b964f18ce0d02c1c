"""Portrait mode: faces found on the scenes fixtures, scale logic, the picture's own sharpness
outside the faces, sizes kept, notices."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from inference.cartoonizer import Cartoonizer
from faces.boxes import Face
from faces.face_detectors import LandmarkFaceDetector, face_detector_for
from inference.portrait import (FACE_CONTEXT, FFHQ_INTEROCULAR_PER_WIDTH, PortraitProcessor,
                                default_face_size, face_mask)
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


def recording(toon):
    """Make ``toon.stylize`` record (input, output) of every call."""
    calls = []
    stylize = toon.stylize
    toon.stylize = lambda rgb: (calls.append((rgb, stylize(rgb))), calls[-1][1])[1]
    return calls


def test_scale_and_face_regions_without_mediapipe():
    """The picture is stylized at its own size; each face whose scale is off is re-done in its
    crop at its own training scale (down for the large face, up for the small one)."""
    toon = Cartoonizer(make_generator(), tile=0)
    calls = recording(toon)
    faces = [Face((20, 20, 60, 60), 40.0, 0.9), Face((100, 30, 120, 50), 10.0, 0.9)]
    proc = PortraitProcessor(toon, face_size=20.0, detector=FixedDetector(faces))
    img = make_picture(80, 160)
    out = proc(img)
    assert out.shape == img.shape
    assert [c[0].shape[:2] for c in calls] == [(80, 160), (40, 80), (160, 184)]
    # the whole picture at its own scale; the crops with their context (the stylizer's 48 px at
    # the crop's scale, taken from the picture) clipped to it: all of it at 20/40 = 0.5, and
    # x 64..156 (face 2's crop 88..132 plus 48/2) at 20/10 = 2
    assert [s for _, s in proc.last_renders] == [0.5, 2.0]
    notices = []
    toon.notice = notices.append
    proc.detector = FixedDetector([])
    assert proc(img).shape == img.shape and notices and "no face" in notices[0]


def laplacian_variance(rgb, keep):
    """Variance of the Laplacian of the gray image over the pixels where ``keep`` is true."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(gray, cv2.CV_64F)[keep].var())


def outside_crops(shape, faces, margin=3):
    """True outside every face's crop (FACE_CONTEXT x its box, grown by ``margin`` px)."""
    keep = np.ones(shape[:2], bool)
    for f in faces:
        x0, y0, x1, y1 = f.box
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, FACE_CONTEXT * max(x1 - x0, y1 - y0) / 2 + margin
        keep[max(0, int(cy - half)):int(np.ceil(cy + half)), max(0, int(cx - half)):int(np.ceil(cx + half))] = False
    return keep


def test_background_keeps_the_plain_results_sharpness_and_the_face_its_trained_scale():
    """A style trained on small faces (face size 12 px) and a large face (60 px between the eye
    corners): the face is rendered 5x smaller, in its crop, and pasted back; the rest of the
    picture is the plain cartoon, as sharp as it (within 10%; it is the same pixels). Before,
    the whole picture was rendered at 1/5 of its size and blown up."""
    toon = Cartoonizer(make_trained_like_generator(3), tile=0)
    calls = recording(toon)
    notes = []
    toon.notice = notes.append
    img = make_picture(240, 320, seed=4)
    face = Face((140.0, 60.0, 200.0, 120.0), 60.0, 0.9)
    proc = PortraitProcessor(toon, face_size=12.0, image_size=32, detector=FixedDetector([face]))
    out = proc(img)
    plain = toon.stylize(img)
    keep = outside_crops(img.shape, [face])
    ratio = laplacian_variance(out, keep) / laplacian_variance(plain, keep)
    assert 0.9 <= ratio <= 1.1, ratio
    # the face: stylized 5x smaller (its crop plus context is the whole picture here) ...
    assert [s for _, s in proc.last_renders] == [pytest.approx(0.2)]
    assert calls[1][0].shape[:2] == (48, 64)
    # ... and pasted back where the mask is 1: its centre is that render, blown up
    import cv2

    back = cv2.resize(calls[1][1], (320, 240), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out[80:100, 160:180], back[80:100, 160:180])
    assert np.abs(out[80:100, 160:180].astype(int) - plain[80:100, 160:180]).mean() > 2
    assert len(notes) == 1 and "scaled back up 5.0x" in notes[0] and "32 px crops" in notes[0]


def test_a_face_at_the_trained_scale_is_the_plain_result_and_no_notice():
    toon = Cartoonizer(make_generator(), tile=0)
    notes = []
    toon.notice = notes.append
    img = make_picture(120, 160)
    proc = PortraitProcessor(toon, face_size=20.0, detector=FixedDetector([Face((40, 30, 90, 80), 21.0, 0.9)]))
    np.testing.assert_array_equal(proc(img), toon.stylize(img))
    assert proc.last_renders == [] and notes == []


@pytest.mark.parametrize("name", ["wb_actress2.jpg", "wb_party7.jpg"])
def test_scene_background_is_as_sharp_as_the_plain_result(detector, name):
    """The issue's case: a style trained on 64 px crops (face size 22.6 px) on real scenes. The
    face is re-done about 4x smaller; outside the face crops the picture keeps the plain
    result's sharpness (within 10%)."""
    img = load(name)
    toon = Cartoonizer(make_generator(), tile=1120, image_size=64, face_size=default_face_size(64))
    proc = PortraitProcessor(toon, face_size=default_face_size(64), image_size=64, detector=detector)
    out = proc(img)
    plain = toon.stylize(img)
    assert proc.last_renders and all(s < 0.5 for _, s in proc.last_renders)
    keep = outside_crops(img.shape, [f for f, _ in proc.last_renders])
    assert keep.mean() > 0.3
    ratio = laplacian_variance(out, keep) / laplacian_variance(plain, keep)
    assert 0.9 <= ratio <= 1.1, ratio


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


def test_face_mask_is_one_over_the_face_and_zero_at_the_crop_edge():
    # box 40 px wide at (50, 50); crop half side FACE_CONTEXT x 20 = 44 px
    m = face_mask((6, 6, 94, 94), (30, 30, 70, 70), 44.0)
    assert m.shape == (88, 88) and m.dtype == np.float32
    assert (m[44 - 20:44 + 20, 44] == 1).all()                # the face box, across
    assert m[0, :].max() == 0 and m[:, 0].max() == 0 and m[-1, :].max() == 0  # crop edges
    assert m[0, 0] == 0 and 0 < m[44, 44 - 32] < 1            # corners 0, a ramp in between
    np.testing.assert_allclose(m, m[::-1, ::-1], atol=1e-6)   # symmetric about the face
    # a crop cut by the picture's border is the same mask, cut
    np.testing.assert_array_equal(face_mask((6, 30, 94, 94), (30, 30, 70, 70), 44.0), m[24:])


def test_portrait_on_group_photo_keeps_size():
    img = load("wb_party7.jpg")
    notes = []
    toon = Cartoonizer(make_generator(), tile=512, overlap=128, face_size=35.0, portrait=True,
                       notice=notes.append)
    out = toon(img)
    assert out.shape == img.shape and len(toon.portrait.last_faces) >= 3
    # faces of 50-80 px under a 35 px face size: rendered smaller, said once
    assert len([n for n in notes if "scaled back up" in n]) == 1
    assert not [n for n in notes if "dlib's 68-point detector is used" not in n and "scaled back up" not in n]


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
    from faces import resolve_detector

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
    from faces import landmark_detectors as D
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
