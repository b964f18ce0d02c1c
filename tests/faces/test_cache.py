"""The landmark cache (faces/cache.py): round trip, staleness, corrupt files, the
detector key, where files go, and unwritable places found before any detection."""
from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faces import cache as C
from faces import (MISSING, DetectorSpec, LandmarkCache, check_writable,
                   default_cache_file, user_cache_file)
from utils.errors import ToonFaceError

MEDIAPIPE = DetectorSpec("mediapipe")      # specs built directly: no backend needs installing
DLIB = DetectorSpec("dlib")


class CountingDetector:
    """Fake detector: a face (fixed points scaled to the image) unless the image is flat."""

    def __init__(self, n: int = 468):
        self.n = n
        self.calls = 0

    def detect(self, rgb):
        self.calls += 1
        if rgb.std() == 0:
            return None
        h, w = rgb.shape[:2]
        grid = np.linspace(0.2, 0.8, self.n, dtype=np.float32)
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
    cache = LandmarkCache(root, detector=MEDIAPIPE).load()
    assert cache.cache_file == root / ".toonface_landmarks.mediapipe.npz"
    s = cache.fill(detector=det, progress=False)
    assert (s["total"], s["found"], s["not_found"], s["detected"], s["cached"]) == (5, 2, 1, 5, 0)
    assert sorted(s["unreadable"]) == ["corrupt.webp", "empty.jpg"]
    assert det.calls == 3                          # unreadable files never reach the detector

    again = LandmarkCache(root, detector=MEDIAPIPE).load()
    assert again.load_error is None and again.other_detector is None and len(again) == 5
    pts = again.lookup("sub/b.png")
    assert pts.shape == (468, 2) and pts.dtype == np.float32
    np.testing.assert_array_equal(pts, cache.lookup(root / "sub" / "b.png"))
    assert again.lookup("flat.png") is None and again.status("flat.png") == "no_face"
    assert again.lookup("empty.jpg") is None and again.status("empty.jpg") == "unreadable"
    assert again.lookup("never.jpg") is MISSING
    det2 = CountingDetector()
    s2 = again.fill(detector=det2, progress=False)
    assert det2.calls == 0 and (s2["cached"], s2["detected"], s2["found"]) == (5, 0, 2)


def test_68_point_cache_round_trip(tmp_path):
    root = _folder(tmp_path)
    LandmarkCache(root, detector=DLIB).fill(detector=CountingDetector(68), progress=False)
    cache = LandmarkCache(root, detector=DLIB).load()
    assert cache.cache_file.name == ".toonface_landmarks.dlib.npz"
    assert cache.lookup("a.jpg").shape == (68, 2)
    with pytest.raises(ValueError, match=r"expected \(68, 2\)"):
        LandmarkCache(tmp_path / "photos", tmp_path / "x.npz", DLIB).fill(
            detector=CountingDetector(468), progress=False)


def test_cache_of_another_detector_is_rebuilt_with_one_line(tmp_path, caplog):
    root = _folder(tmp_path)
    shared = tmp_path / "lm.npz"
    LandmarkCache(root, shared, MEDIAPIPE).fill(detector=CountingDetector(468), progress=False)
    with caplog.at_level(logging.INFO, logger="faces"):
        cache = LandmarkCache(root, shared, DLIB).load()
    assert cache.other_detector == "mediapipe" and len(cache) == 0 and cache.lookup("a.jpg") is MISSING
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "built with the mediapipe detector; rebuilding it with dlib" in lines[0]
    det = CountingDetector(68)
    s = cache.fill(detector=det, progress=False)
    assert s["detected"] == 5 and det.calls == 3
    back = LandmarkCache(root, shared, DLIB).load()
    assert back.other_detector is None and back.lookup("a.jpg").shape == (68, 2)
    # another Tasks model is another detector too
    t1 = DetectorSpec("mediapipe-tasks", None, "1" * 64)
    t2 = DetectorSpec("mediapipe-tasks", None, "2" * 64)
    LandmarkCache(root, shared, t1).fill(detector=CountingDetector(468), progress=False)
    assert LandmarkCache(root, shared, t1).load().other_detector is None
    assert LandmarkCache(root, shared, t2).load().other_detector == t1.key


def test_default_files_of_two_detectors_live_side_by_side(tmp_path):
    root = _folder(tmp_path)
    LandmarkCache(root, detector=MEDIAPIPE).fill(detector=CountingDetector(468), progress=False)
    LandmarkCache(root, detector=DLIB).fill(detector=CountingDetector(68), progress=False)
    assert LandmarkCache(root, detector=MEDIAPIPE).load().lookup("a.jpg").shape == (468, 2)
    assert LandmarkCache(root, detector=DLIB).load().lookup("a.jpg").shape == (68, 2)


def test_truncated_cache_file_is_rebuilt(tmp_path):
    root = _folder(tmp_path)
    LandmarkCache(root, detector=MEDIAPIPE).fill(detector=CountingDetector(), progress=False)
    f = default_cache_file(root, MEDIAPIPE)
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    cache = LandmarkCache(root, detector=MEDIAPIPE).load()            # no exception
    assert cache.load_error is not None and cache.lookup("a.jpg") is MISSING
    det = CountingDetector()
    s = cache.fill(detector=det, progress=False)
    assert s["detected"] == 5 and det.calls == 3
    assert LandmarkCache(root, detector=MEDIAPIPE).load().load_error is None


def test_garbage_and_old_format_cache_files_are_rebuilt(tmp_path):
    root = _folder(tmp_path)
    f = default_cache_file(root, MEDIAPIPE)
    f.write_bytes(b"\x00" * 100)
    cache = LandmarkCache(root, detector=MEDIAPIPE).load()
    assert cache.load_error and len(cache) == 0
    np.savez(f, format_version=np.int64(1), paths=np.zeros(0, "<U1"))  # the format before detectors
    assert "format version 1" in LandmarkCache(root, detector=MEDIAPIPE).load().load_error


def test_stale_entry_is_recomputed(tmp_path):
    root = _folder(tmp_path)
    LandmarkCache(root, detector=MEDIAPIPE).fill(detector=CountingDetector(), progress=False)
    cache = LandmarkCache(root, detector=MEDIAPIPE).load()
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
    cache = LandmarkCache(root, detector=MEDIAPIPE)
    s = cache.fill(detector=CountingDetector(), paths=["a.jpg"], progress=False)
    assert s["total"] == 1 and len(cache) == 1
    cache.fill(detector=CountingDetector(), progress=False)
    (root / "a.jpg").unlink()
    s = cache.fill(detector=CountingDetector(), paths=["flat.png"], progress=False)
    assert s["total"] == 1 and cache.status("a.jpg") == "missing"
    assert len(cache) == 4 and len(LandmarkCache(root, detector=MEDIAPIPE).load()) == 4


def test_folder_marked_read_only_gets_no_cache_file_even_for_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = _folder(tmp_path)
    root.chmod(0o555)  # root may still write there; the cache must not
    try:
        cache = LandmarkCache(root, detector=DLIB)
        assert cache.cache_file == user_cache_file(root, DLIB)
        assert cache.cache_file.parent == tmp_path / "xdg" / "toonface" / "landmarks"
        assert cache.cache_file.name.endswith(".dlib.npz")
        cache.fill(detector=CountingDetector(68), progress=False)
        assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []
        assert cache.cache_file.is_file()
    finally:
        root.chmod(0o755)


def test_default_cache_file_for_unwritable_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(C.os, "access", lambda path, mode: False)
    f = default_cache_file(tmp_path / "photos", "dlib")
    assert f.parent == tmp_path / "xdg" / "toonface" / "landmarks" and f.suffix == ".npz"
    assert f != default_cache_file(tmp_path / "other", "dlib")
    assert f != default_cache_file(tmp_path / "photos", "mediapipe")


@pytest.mark.parametrize("case", ["folder", "under_a_file", "read_only"])
def test_unwritable_cache_file_fails_before_any_detection(tmp_path, case):
    root = _folder(tmp_path)
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    target = {"folder": tmp_path, "under_a_file": tmp_path / "a_file" / "sub" / "lm.npz",
              "read_only": tmp_path / "ro" / "new" / "lm.npz"}[case]
    det = CountingDetector()
    try:
        with pytest.raises(ToonFaceError) as e:
            LandmarkCache(root, target, MEDIAPIPE).fill(detector=det, progress=False)
        assert str(e.value).startswith("cannot write the landmark cache") and "\n" not in str(e.value)
        assert det.calls == 0
        assert not (tmp_path / "ro" / "new").exists()
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_check_writable_leaves_no_file(tmp_path):
    target = tmp_path / "deep" / "er" / "lm.npz"
    check_writable(target)
    assert target.parent.is_dir() and list(target.parent.iterdir()) == []


def test_cache_is_picklable_for_spawned_workers_and_keys_follow_symlinks(tmp_path):
    root = _folder(tmp_path)
    cache = LandmarkCache(root, detector=MEDIAPIPE)
    cache.fill(detector=CountingDetector(), progress=False)
    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.lookup("a.jpg"), cache.lookup("a.jpg"))
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    link = tmp_path / "link"
    link.symlink_to(root)
    via_link = LandmarkCache(link, cache.cache_file, MEDIAPIPE).load()
    assert via_link.relpath(root.resolve() / "sub" / "b.png") == "sub/b.png"
    assert via_link.lookup(link / "sub" / "b.png") is not MISSING


@pytest.mark.parametrize("spelling", ["photos", "./photos", "work/../photos"])
def test_relatively_named_folder_reads_every_photo_once(tmp_path, monkeypatch, spelling):
    """A folder named relative to the current directory (as the README's commands and the
    study files name it): the paths list_images gives are read, not doubled (photos/photos/..),
    and keys relative to the folder keep working."""
    root = _folder(tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path)
    det = CountingDetector()
    cache = LandmarkCache(spelling, detector=MEDIAPIPE).load()
    listed = C.list_images(spelling)
    assert all(not p.is_absolute() for p in listed)
    s = cache.fill(detector=det, paths=listed, progress=False)
    assert (s["found"], s["not_found"], sorted(s["unreadable"])) == (2, 1, ["corrupt.webp", "empty.jpg"])
    assert cache.relpath(Path(spelling) / "sub" / "b.png") == "sub/b.png"
    assert cache.lookup(Path(spelling) / "sub" / "b.png").shape == (468, 2)
    np.testing.assert_array_equal(cache.lookup("sub/b.png"), cache.lookup(root / "sub" / "b.png"))
    # the same cache seen from elsewhere, by its absolute name
    monkeypatch.chdir(tmp_path / "work")
    again = LandmarkCache(root, detector=MEDIAPIPE).load()
    assert again.status("a.jpg") == "found" and again.status("flat.png") == "no_face"


def test_a_cache_written_by_main_at_87a7d00_still_loads(tmp_path):
    """tests/data/legacy/landmarks: the file users have on disk, read by today's code."""
    import json
    import shutil

    legacy = Path(__file__).resolve().parents[1] / "data" / "legacy" / "landmarks"
    photos = tmp_path / "photos"
    shutil.copytree(legacy / "photos", photos)
    for name, ns in json.loads((legacy / "mtimes.json").read_text())["mtime_ns"].items():
        os.utime(photos / name, ns=(ns, ns))
    cache = LandmarkCache(photos, cache_file=legacy / "cache.dlib.npz", detector=DLIB).load()
    assert cache.load_error is None and cache.other_detector is None and len(cache) == 2
    want = np.arange(136, dtype=np.float32).reshape(68, 2) * 0.25 + 0.125
    np.testing.assert_array_equal(cache.lookup("face.png"), want)
    assert cache.lookup("empty.png") is None
    assert cache.status("face.png") == "found" and cache.status("empty.png") == "no_face"
