"""Landmark detection, cache, transforms and map (datasets/landmarks.py)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from datasets import landmarks as L
from datasets.landmarks import (MISSING, NUM_LANDMARKS, FaceMeshDetector, LandmarkCache,
                                crop_landmarks, default_cache_file, flip_landmarks,
                                landmark_map_to_rgb, list_images, read_image_rgb,
                                render_landmark_map, resize_landmarks, to_uint8_rgb,
                                transform_landmarks)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = (REPO / "../shared/fixtures").resolve()
FFHQ_PHOTOS = FIXTURES / "ffhq-mini" / "photos"
needs_fixtures = pytest.mark.skipif(not FFHQ_PHOTOS.is_dir(),
                                    reason=f"shared fixtures not found at {FFHQ_PHOTOS}")


@pytest.fixture(scope="module")
def detector():
    with FaceMeshDetector() as det:
        yield det


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()          # 512x512 RGB uint8, one face


@pytest.fixture(scope="module")
def astronaut_points(detector, astronaut):
    pts = detector.detect(astronaut)
    assert pts is not None
    return pts


def iod(pts):
    return float(np.linalg.norm(pts[L.RIGHT_EYE_OUTER] - pts[L.LEFT_EYE_OUTER]))


def mean_dist(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=1).mean())


# --- import and boundary ----------------------------------------------------------------------
def test_import_and_render_do_not_import_mediapipe():
    code = ("import sys, numpy as np; from datasets.landmarks import render_landmark_map, "
            "LandmarkCache; render_landmark_map(np.random.rand(468, 2).astype('float32') * 64, "
            "64, 64); assert 'mediapipe' not in sys.modules; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_connection_sets_equal_mediapipe():
    from mediapipe.python.solutions import face_mesh_connections as mpc

    for name in ("FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYEBROW",
                 "FACEMESH_RIGHT_EYEBROW", "FACEMESH_LIPS", "FACEMESH_NOSE",
                 "FACEMESH_FACE_OVAL"):
        assert set(getattr(L, name)) == set(getattr(mpc, name)), name


def test_to_uint8_rgb_conversions():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert to_uint8_rgb(rgb) is not None and np.array_equal(to_uint8_rgb(rgb), rgb)
    gray = rgb[:, :, 0]
    for g in (gray, gray[:, :, None]):
        out = to_uint8_rgb(g)
        assert out.shape == (5, 7, 3) and np.array_equal(out[:, :, 2], gray)
    rgba = np.dstack([rgb, np.zeros((5, 7), np.uint8)])
    assert np.array_equal(to_uint8_rgb(rgba), rgb)
    v16 = np.array([[0x0000, 0x00FF, 0x1234, 0xFFFF]], dtype=np.uint16)
    # rint(v * 255 / 65535), the rule of every 16-bit reader (datasets.images.sixteen_to_eight)
    assert to_uint8_rgb(v16)[0, :, 0].tolist() == [0, 1, 18, 255]
    f = np.array([[0.0, 0.5, 1.0, 2.0, -1.0]], dtype=np.float64)
    assert to_uint8_rgb(f)[0, :, 1].tolist() == [0, 128, 255, 255, 0]
    assert to_uint8_rgb(np.array([[True, False]]))[0, :, 0].tolist() == [255, 0]
    out = to_uint8_rgb(rgb[:, ::-1])              # a negative-stride view
    assert out.flags["C_CONTIGUOUS"] and out.dtype == np.uint8
    with pytest.raises(ValueError):
        to_uint8_rgb(np.zeros((4, 4, 5), np.uint8))


def test_read_image_applies_exif_orientation(tmp_path):
    img = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6                              # rotate 90 degrees on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    out = read_image_rgb(tmp_path / "rot.jpg")
    assert out.shape == (40, 20, 3) and out.flags.writeable


def test_read_image_16bit_gray_png(tmp_path):
    a = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    out = read_image_rgb(tmp_path / "g16.png")
    want = np.rint(a.astype(np.float64) / 257.0).astype(np.uint8)  # 65535 / 255 = 257
    assert out.shape == (32, 32, 3) and np.array_equal(out[:, :, 0], want)


# --- detection --------------------------------------------------------------------------------
def test_astronaut_detected(astronaut_points):
    p = astronaut_points
    assert p.shape == (NUM_LANDMARKS, 2) and p.dtype == np.float32
    assert np.isfinite(p).all() and (p >= 0).all() and (p < 512).all()
    # subject's right eye (33) is on the image's left; the eyes lie above the mouth (13)
    assert p[L.RIGHT_EYE_OUTER, 0] < p[L.LEFT_EYE_OUTER, 0]
    assert max(p[33, 1], p[263, 1]) < p[13, 1]
    assert 20 < iod(p) < 200


def test_non_square_images_use_pixel_frame(detector, astronaut, astronaut_points):
    pad = np.zeros((512, 768, 3), np.uint8)
    pad[:, 100:612] = astronaut
    q = detector.detect(pad)
    assert mean_dist(q, astronaut_points + [100, 0]) < 0.05 * iod(astronaut_points)


@pytest.mark.parametrize("kind", ["gray2d", "gray1", "rgba", "rgb16", "float"])
def test_converted_inputs_are_detected(detector, astronaut, astronaut_points, kind):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    img = {
        "gray2d": gray,
        "gray1": gray[:, :, None],
        "rgba": np.dstack([astronaut, np.full(gray.shape, 255, np.uint8)]),
        "rgb16": astronaut.astype(np.uint16) * 257,
        "float": astronaut.astype(np.float32) / 255.0,
    }[kind]
    p = detector.detect(img)
    assert p is not None and p.shape == (NUM_LANDMARKS, 2)
    assert mean_dist(p, astronaut_points) < 0.05 * iod(astronaut_points)


def test_no_face_on_flat_image(detector):
    assert detector.detect(np.full((128, 128, 3), 120, np.uint8)) is None


def test_detector_is_not_picklable_and_close_is_final():
    det = FaceMeshDetector()
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(det)
    det.close()
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(np.zeros((8, 8, 3), np.uint8))


@needs_fixtures
def test_every_fixture_photo_has_a_face(detector):
    paths = sorted(FFHQ_PHOTOS.glob("*.jpg"))
    assert len(paths) >= 40
    missing = [p.name for p in paths if detector.detect(read_image_rgb(p)) is None]
    assert missing == []


# --- cache ------------------------------------------------------------------------------------
class CountingDetector:
    """Fake detector: a face (fixed points scaled to the image) unless the image is flat."""

    def __init__(self):
        self.calls = 0

    def detect(self, rgb):
        self.calls += 1
        if rgb.std() == 0:
            return None
        h, w = rgb.shape[:2]
        grid = np.linspace(0.2, 0.8, NUM_LANDMARKS, dtype=np.float32)
        return np.stack([grid * w, grid[::-1] * h], axis=1) + float(rgb.mean()) / 255.0


def _folder(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "sub/b.png"):
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(root / name)
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(root / "flat.png")
    (root / "empty.jpg").write_bytes(b"")
    (root / "corrupt.webp").write_bytes(b"not an image at all" * 10)
    (root / "notes.txt").write_text("ignored")
    return root


def test_cache_round_trip_hits_without_detection(tmp_path):
    root = _folder(tmp_path)
    det = CountingDetector()
    cache = LandmarkCache(root).load()
    assert cache.cache_file == root / L.CACHE_FILE_NAME
    s = cache.fill(detector=det, progress=False)
    assert (s["total"], s["found"], s["not_found"], s["detected"], s["cached"]) == (5, 2, 1, 5, 0)
    assert sorted(s["unreadable"]) == ["corrupt.webp", "empty.jpg"]
    assert det.calls == 3                          # unreadable files never reach the detector

    again = LandmarkCache(root).load()
    assert again.load_error is None and len(again) == 5
    pts = again.lookup("sub/b.png")
    assert pts.shape == (NUM_LANDMARKS, 2) and pts.dtype == np.float32
    np.testing.assert_array_equal(pts, cache.lookup(root / "sub" / "b.png"))
    assert again.lookup("flat.png") is None and again.status("flat.png") == "no_face"
    assert again.lookup("empty.jpg") is None and again.status("empty.jpg") == "unreadable"
    assert again.lookup("never.jpg") is MISSING
    det2 = CountingDetector()
    s2 = again.fill(detector=det2, progress=False)
    assert det2.calls == 0 and (s2["cached"], s2["detected"], s2["found"]) == (5, 0, 2)


def test_truncated_cache_file_is_rebuilt(tmp_path):
    root = _folder(tmp_path)
    LandmarkCache(root).fill(detector=CountingDetector(), progress=False)
    f = root / L.CACHE_FILE_NAME
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    cache = LandmarkCache(root).load()            # no exception
    assert cache.load_error is not None and cache.lookup("a.jpg") is MISSING
    det = CountingDetector()
    s = cache.fill(detector=det, progress=False)
    assert s["detected"] == 5 and det.calls == 3
    assert LandmarkCache(root).load().load_error is None


def test_garbage_cache_file_is_rebuilt(tmp_path):
    root = _folder(tmp_path)
    (root / L.CACHE_FILE_NAME).write_bytes(b"\x00" * 100)
    cache = LandmarkCache(root).load()
    assert cache.load_error and len(cache) == 0


def test_stale_entry_is_recomputed(tmp_path):
    root = _folder(tmp_path)
    LandmarkCache(root).fill(detector=CountingDetector(), progress=False)
    cache = LandmarkCache(root).load()
    old = cache.lookup("a.jpg")
    Image.fromarray(np.full((32, 48, 3), 200, np.uint8)).save(root / "a.jpg")   # now flat
    st = os.stat(root / "a.jpg")
    os.utime(root / "a.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert old is not None and cache.lookup("a.jpg") is MISSING
    det = CountingDetector()
    s = cache.fill(detector=det, progress=False)
    assert det.calls == 1 and s["detected"] == 1 and cache.lookup("a.jpg") is None
    # a touch alone (same bytes, new mtime) is a miss too
    os.utime(root / "sub" / "b.png", ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    assert cache.lookup("sub/b.png") is MISSING


def test_removed_files_are_dropped_and_paths_subset(tmp_path):
    root = _folder(tmp_path)
    cache = LandmarkCache(root)
    s = cache.fill(detector=CountingDetector(), paths=["a.jpg"], progress=False)
    assert s["total"] == 1 and len(cache) == 1
    cache.fill(detector=CountingDetector(), progress=False)
    (root / "a.jpg").unlink()
    s = cache.fill(detector=CountingDetector(), paths=["flat.png"], progress=False)
    assert s["total"] == 1 and cache.status("a.jpg") == "missing"
    assert len(cache) == 4 and len(LandmarkCache(root).load()) == 4


def test_list_images_recursive_and_hidden(tmp_path):
    root = _folder(tmp_path)
    (root / ".hidden.jpg").write_bytes(b"x")
    (root / "UPPER.JPG").write_bytes(b"x")
    names = [p.relative_to(root).as_posix() for p in list_images(root)]
    assert names == sorted(["UPPER.JPG", "a.jpg", "corrupt.webp", "empty.jpg", "flat.png",
                            "sub/b.png"])
    assert "sub/b.png" not in [p.name for p in list_images(root, recursive=False)]


def test_folder_marked_read_only_gets_no_cache_file_even_for_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = _folder(tmp_path)
    root.chmod(0o555)  # root may still write there; the cache must not
    try:
        cache = LandmarkCache(root)
        assert cache.cache_file.parent == tmp_path / "xdg" / "toonface" / "landmarks"
        cache.fill(detector=CountingDetector(), progress=False)
        assert not (root / L.CACHE_FILE_NAME).exists() and cache.cache_file.is_file()
    finally:
        root.chmod(0o755)


def test_default_cache_file_for_read_only_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(L.os, "access", lambda path, mode: False)
    f = default_cache_file(tmp_path / "photos")
    assert f.parent == tmp_path / "xdg" / "toonface" / "landmarks" and f.suffix == ".npz"
    assert f != default_cache_file(tmp_path / "other")


# --- transforms vs an image warped by cv2 ----------------------------------------------------
BLOB_SIGMA = 1.5


def _blob_image(points, h, w):
    """Gaussian blobs centred at continuous coordinates (pixel i's centre is i + 0.5)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    img = np.zeros((h, w), np.float64)
    for x, y in points:
        img += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * BLOB_SIGMA ** 2))
    return img.astype(np.float32)


def _centroids(img, guesses, radius):
    """Intensity centroid (continuous coordinates) in a window around each guess."""
    out = []
    for gx, gy in guesses:
        x0, x1 = int(max(gx - radius, 0)), int(min(gx + radius, img.shape[1]))
        y0, y1 = int(max(gy - radius, 0)), int(min(gy + radius, img.shape[0]))
        win = img[y0:y1, x0:x1].astype(np.float64)
        ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
        out.append((float((win * xs).sum() / win.sum()), float((win * ys).sum() / win.sum())))
    return np.array(out)


POINTS = np.array([[20.3, 15.7], [60.0, 40.5], [95.6, 70.2], [40.25, 60.75]], np.float32)
H0, W0 = 90, 120


@pytest.mark.parametrize("new_w,new_h,interp", [(180, 135, cv2.INTER_LINEAR),
                                                (150, 99, cv2.INTER_LINEAR),
                                                (72, 54, cv2.INTER_AREA)])
def test_resize_matches_cv2(new_w, new_h, interp):
    img = cv2.resize(_blob_image(POINTS, H0, W0), (new_w, new_h), interpolation=interp)
    pred = resize_landmarks(POINTS, new_w / W0, new_h / H0)
    got = _centroids(img, pred, radius=5 * BLOB_SIGMA * new_w / W0)
    np.testing.assert_allclose(got, pred, atol=0.05)


def test_crop_and_flip_match_image_ops():
    img = _blob_image(POINTS, H0, W0)
    x0, y0, cw, ch = 11, 7, 100, 75
    crop = img[y0:y0 + ch, x0:x0 + cw]
    pred = crop_landmarks(POINTS, x0, y0)
    np.testing.assert_allclose(_centroids(crop, pred, 6), pred, atol=0.02)
    flipped = cv2.flip(crop, 1)
    pred_f = flip_landmarks(pred, cw)
    np.testing.assert_allclose(_centroids(flipped, pred_f, 6), pred_f, atol=0.02)


def test_transform_landmarks_mirrors_resize_crop_flip_pipeline():
    sx, sy = 1.4, 1.3
    rw, rh = round(W0 * sx), round(H0 * sy)
    x0, y0, cw, ch = 9, 12, 150, 100
    img = cv2.resize(_blob_image(POINTS, H0, W0), (rw, rh), interpolation=cv2.INTER_LINEAR)
    img = cv2.flip(img[y0:y0 + ch, x0:x0 + cw], 1)
    before = POINTS.copy()
    pred = transform_landmarks(POINTS, (rw / W0, rh / H0), (x0, y0), flip=True, out_width=cw)
    np.testing.assert_array_equal(POINTS, before)                  # input untouched
    np.testing.assert_allclose(_centroids(img, pred, 8), pred, atol=0.05)
    assert transform_landmarks(None, (2, 2), (1, 1), True, 10) is None
    with pytest.raises(ValueError):
        transform_landmarks(POINTS, flip=True)


# --- landmark map ----------------------------------------------------------------------------
def test_render_landmark_map(astronaut_points):
    p = astronaut_points
    m = render_landmark_map(p, 512, 512)
    assert m.shape == (2, 512, 512) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1 and m[0].max() == pytest.approx(1.0)
    for i in (L.RIGHT_EYE_OUTER, L.LEFT_EYE_OUTER, 152, 10):       # eye corners, chin, forehead
        x, y = p[i].astype(int)
        assert m[0, y, x] > 0.3, i
    for eye in (L.FACEMESH_LEFT_EYE, L.FACEMESH_RIGHT_EYE):
        cx, cy = p[list({a for e in eye for a in e})].mean(axis=0).astype(int)
        assert m[1, cy, cx] > 0.9
    assert m[:, :20, :20].max() == 0 and m[:, -20:, -20:].max() == 0  # far from the face
    np.testing.assert_array_equal(render_landmark_map(None, 64, 32), np.zeros((2, 64, 32)))


def test_render_is_resolution_consistent(astronaut_points):
    p = astronaut_points
    hi = render_landmark_map(p, 512, 512)
    lo = render_landmark_map(p * 0.5, 256, 256)
    down = np.stack([cv2.resize(c, (256, 256), interpolation=cv2.INTER_AREA) for c in hi])
    for c in range(2):
        corr = np.corrcoef(down[c].ravel(), lo[c].ravel())[0, 1]
        assert corr > 0.9, (c, corr)


def test_landmark_map_to_rgb(astronaut_points):
    import torch

    maps = torch.from_numpy(np.stack([render_landmark_map(astronaut_points * 0.25, 128, 128),
                                      render_landmark_map(None, 128, 128)]))
    rgb = landmark_map_to_rgb(maps)
    assert rgb.shape == (2, 3, 128, 128) and rgb.min() >= -1 and rgb.max() <= 1
    assert (rgb[1] == -1).all() and rgb[0].max() > 0.5


def test_cache_is_picklable_for_spawned_workers_and_keys_follow_symlinks(tmp_path):
    root = _folder(tmp_path)
    cache = LandmarkCache(root)
    cache.fill(detector=CountingDetector(), progress=False)
    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.lookup("a.jpg"), cache.lookup("a.jpg"))
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    link = tmp_path / "link"
    link.symlink_to(root)
    via_link = LandmarkCache(link, cache.cache_file).load()
    assert via_link.relpath(root.resolve() / "sub" / "b.png") == "sub/b.png"
    assert via_link.lookup(link / "sub" / "b.png") is not MISSING
