"""prepare.py: fill the landmark cache of a photo folder from the command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

import prepare
from faces import LandmarkCache, default_cache_file, resolve_detector
from faces import landmark_detectors as D
from tests.conftest import requires_dlib

REPO = Path(__file__).resolve().parents[1]


def _photo_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    face = np.ascontiguousarray(data.astronaut()[20:276, 100:356])
    Image.fromarray(face).save(root / "face.jpg")
    (root / "nested").mkdir()
    Image.fromarray(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)).save(root / "nested" / "gray.png")
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(root / "flat.bmp")   # no face
    (root / "zero.jpg").write_bytes(b"")
    good = (root / "face.jpg").read_bytes()
    (root / "corrupt.jpg").write_bytes(b"\x00\x11garbage" + good[5000:6000])
    return root


def test_prepare_summary_and_second_run_from_cache(tmp_path):
    root = _photo_folder(tmp_path / "photos")
    runner = CliRunner()
    res = runner.invoke(prepare.main, [str(root), "--quiet"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("landmarks: 2 found, 1 not found, 2 unreadable of 5 images "
                               "(5 detected, 0 from cache)")
    assert lines[1] == "unreadable files (2):"
    assert sorted(l.strip() for l in lines[2:]) == ["corrupt.jpg", "zero.jpg"]
    cache = LandmarkCache(root).load()
    assert cache.cache_file == default_cache_file(root, resolve_detector())
    assert cache.cache_file.parent == root
    assert cache.status("nested/gray.png") == "found" and cache.status("flat.bmp") == "no_face"

    res2 = runner.invoke(prepare.main, [str(root), "--quiet", "--no-recursive"])
    assert res2.exit_code == 0, res2.output
    assert "1 found, 1 not found, 2 unreadable of 4 images (0 detected, 4 from cache)" in res2.stdout


def test_prepare_explicit_cache_file(tmp_path):
    root = _photo_folder(tmp_path / "photos")
    target = tmp_path / "elsewhere" / "lm.npz"
    res = CliRunner().invoke(prepare.main, [str(root), "--cache-file", str(target), "--quiet"])
    assert res.exit_code == 0, res.output
    assert target.is_file() and not list(root.glob(".toonface_landmarks*"))


def test_missing_and_empty_folder_exit_2_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "missing", tmp_path / "empty"):
        res = CliRunner().invoke(prepare.main, [str(folder), "--quiet"])
        assert res.exit_code == 2
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), res.output


def test_script_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "prepare.py", str(tmp_path / "nope")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: photo folder not found: {tmp_path / 'nope'}"


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_bad_detector_choices_exit_2_before_any_work(tmp_path):
    root = _photo_folder(tmp_path / "photos")
    runner = CliRunner()
    assert "unknown landmark detector 'nope'" in _one_error_line(
        runner.invoke(prepare.main, [str(root), "--quiet", "--landmark-detector", "nope"]))
    line = _one_error_line(runner.invoke(prepare.main, [
        str(root), "--quiet", "--landmark-detector", "mediapipe-tasks",
        "--landmark-model", str(tmp_path / "face_landmarker.task")]))
    assert "landmark model not found" in line or "needs mediapipe" in line
    (tmp_path / "junk.task").write_bytes(b"junk")
    line = _one_error_line(runner.invoke(prepare.main, [
        str(root), "--quiet", "--landmark-detector", "mediapipe-tasks",
        "--landmark-model", str(tmp_path / "junk.task")]))
    assert "not a mediapipe face landmarker model" in line or "needs mediapipe" in line
    assert not list(root.glob(".toonface_landmarks*"))


@requires_dlib
def test_without_mediapipe_dlib_is_used_and_said_once(tmp_path, monkeypatch):
    real = D._package_dir
    monkeypatch.setattr(D, "_package_dir", lambda name: None if name == "mediapipe" else real(name))
    root = _photo_folder(tmp_path / "photos")
    res = CliRunner().invoke(prepare.main, [str(root), "--quiet"])
    assert res.exit_code == 0, res.output
    notes = [l for l in res.stderr.splitlines() if l.startswith("note:")]
    assert len(notes) == 1 and "mediapipe is not installed" in notes[0] and "dlib" in notes[0]
    assert res.stdout.startswith("landmarks: 2 found, 1 not found, 2 unreadable of 5 images")
    assert res.stdout.splitlines()[0].endswith("[dlib]")
    line = _one_error_line(CliRunner().invoke(prepare.main, [str(root), "--landmark-detector",
                                                             "mediapipe"]))
    assert "mediapipe==0.10.21" in line and "--landmark-detector dlib" in line


@requires_dlib
def test_cache_of_another_detector_is_rebuilt_with_a_note(tmp_path):
    root = _photo_folder(tmp_path / "photos")
    target = tmp_path / "lm.npz"
    first = resolve_detector().name
    other = "dlib" if first != "dlib" else None
    runner = CliRunner()
    assert runner.invoke(prepare.main, [str(root), "--quiet", "--cache-file", str(target)]).exit_code == 0
    if other is None:
        pytest.skip("only dlib is installed: there is no second detector to switch to")
    res = runner.invoke(prepare.main, [str(root), "--quiet", "--cache-file", str(target),
                                       "--landmark-detector", other])
    assert res.exit_code == 0, res.output
    notes = [l for l in res.stderr.splitlines() if l.startswith("note:")]
    assert len(notes) == 1 and f"of the {first} detector; rebuilding it with {other}" in notes[0]
    assert "(5 detected, 0 from cache)" in res.stdout


def test_unwritable_cache_file_fails_before_detection(tmp_path, monkeypatch):
    root = _photo_folder(tmp_path / "photos")
    (tmp_path / "a_file").write_text("x")

    def no_detection(*args, **kwargs):
        raise AssertionError("a detector was built before the cache file was checked")

    monkeypatch.setattr(D.DetectorSpec, "build", no_detection)
    line = _one_error_line(CliRunner().invoke(prepare.main, [
        str(root), "--quiet", "--cache-file", str(tmp_path / "a_file" / "lm.npz")]))
    assert line.startswith("error: cannot write the landmark cache")


def test_prepare_a_folder_named_relative_to_the_current_directory(tmp_path, monkeypatch):
    """`prepare.py ../photos` from another folder finds what the absolute name finds (every
    photo used to be 'unreadable', read at a doubled path)."""
    _photo_folder(tmp_path / "photos")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = CliRunner().invoke(prepare.main, ["../photos", "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].startswith("landmarks: 2 found, 1 not found, 2 unreadable of 5")
    assert sorted(l.strip() for l in res.stdout.splitlines()[2:]) == ["corrupt.jpg", "zero.jpg"]
