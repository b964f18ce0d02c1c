"""Pairing a photo folder with a folder of outputs (evaluation/pairs.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from evaluation.pairs import pair_folders, read_pair
from utils.errors import ToonFaceError


def gradient(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image (resizing it changes little), with a seeded tint."""
    y, x = np.mgrid[0:h, 0:w]
    tint = np.random.default_rng(seed).integers(0, 60, 3)
    im = np.stack([x * 200 // max(w - 1, 1), y * 200 // max(h - 1, 1),
                   (x + y) * 100 // max(h + w - 2, 1)], -1) + tint
    return np.clip(im, 0, 255).astype(np.uint8)


def save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def test_pairs_by_name_without_extension_and_reports_the_unpaired(tmp_path):
    ph, out = tmp_path / "photos", tmp_path / "outs"
    for n in ("00049.jpg", "00050.png", "sub/00051.JPG", "only_photo.png", "Case.png"):
        save(ph / n, gradient(16, 16))
    for n in ("00049.png", "00050.webp", "sub/00051.png", "only_output.png", "case.png"):
        save(out / n, gradient(16, 16))
    (out / "notes.txt").write_text("not an image")
    p = pair_folders(ph, out)
    assert [fp.name for fp in p.pairs] == ["00049", "00050", "sub/00051"]
    assert p.pairs[0].photo.name == "00049.jpg" and p.pairs[0].output.name == "00049.png"
    # names are case-sensitive: Case.png and case.png are two different images
    assert sorted(f.name for f in p.photos_only) == ["Case.png", "only_photo.png"]
    assert sorted(f.name for f in p.outputs_only) == ["case.png", "only_output.png"]


def test_a_folder_inside_the_other_is_not_part_of_it(tmp_path):
    ph = tmp_path / "photos"
    save(ph / "a.jpg", gradient(16, 16))
    save(ph / "toon" / "a.png", gradient(16, 16))
    p = pair_folders(ph, ph / "toon")
    assert [(fp.photo.name, fp.output.name) for fp in p.pairs] == [("a.jpg", "a.png")]
    assert p.photos_only == [] and p.outputs_only == []


@pytest.mark.parametrize("case, match", [
    ("no_common", "no output in .* has the name of a photo"),
    ("empty", "outputs folder .* holds no images"),
    ("missing", "outputs folder not found"),
    ("duplicate", r"outputs folder .*: 1 name\(s\) with several files.*a\.jpg, a\.png"),
    ("same", "are the same folder"),
])
def test_refusals_before_any_work(tmp_path, case, match):
    ph, out = tmp_path / "photos", tmp_path / "outs"
    save(ph / "a.jpg", gradient(16, 16))
    out.mkdir()
    if case == "no_common":
        save(out / "b.png", gradient(16, 16))
    elif case == "duplicate":
        save(out / "a.jpg", gradient(16, 16))
        save(out / "a.png", gradient(16, 16))
    elif case == "missing":
        out = tmp_path / "nowhere"
    elif case == "same":
        out = ph
    with pytest.raises(ToonFaceError, match=match) as err:
        pair_folders(ph, out)
    assert "\n" not in str(err.value)


def test_read_pair_resizes_same_aspect_and_skips_the_rest(tmp_path):
    ph, out = tmp_path / "photos", tmp_path / "outs"
    photo = gradient(60, 80)
    save(ph / "same.png", photo)
    save(ph / "big.png", photo)
    save(ph / "small.png", photo)
    save(ph / "round.png", photo)
    save(ph / "wide.png", photo)
    save(ph / "broken.png", photo)
    save(ph / "badphoto.png", photo)
    save(out / "same.png", photo)
    save(out / "big.png", cv2.resize(photo, (160, 120), interpolation=cv2.INTER_CUBIC))
    small = cv2.resize(photo, (40, 30), interpolation=cv2.INTER_AREA)
    save(out / "small.png", small)
    save(out / "round.png", cv2.resize(photo, (41, 30)))          # 41x30: 80x60 up to rounding
    save(out / "wide.png", cv2.resize(photo, (80, 40)))           # 2:1, not 4:3
    (out / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    save(out / "badphoto.png", photo)
    (ph / "badphoto.png").write_bytes(b"")
    pairs = {fp.name: read_pair(fp) for fp in pair_folders(ph, out).pairs}
    assert np.array_equal(pairs["same"].output, photo) and pairs["same"].error is None
    # shrinking: INTER_AREA (the oracle: OpenCV itself); growing: INTER_CUBIC
    assert np.array_equal(pairs["big"].output, cv2.resize(
        cv2.resize(photo, (160, 120), interpolation=cv2.INTER_CUBIC), (80, 60),
        interpolation=cv2.INTER_AREA))
    assert np.array_equal(pairs["small"].output,
                          cv2.resize(small, (80, 60), interpolation=cv2.INTER_CUBIC))
    assert pairs["round"].output.shape == (60, 80, 3) and pairs["round"].error is None
    for name, reason in (("wide", "another aspect ratio"), ("broken", "unreadable output"),
                         ("badphoto", "unreadable photo")):
        assert pairs[name].output is None and reason in pairs[name].error, pairs[name].error
        assert "\n" not in pairs[name].error
