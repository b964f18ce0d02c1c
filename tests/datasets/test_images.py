"""Image conversion and reading (datasets/images.py)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datasets.images import list_images, read_image_rgb, to_uint8_rgb


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
    assert to_uint8_rgb(v16)[0, :, 0].tolist() == [0x00, 0x00, 0x12, 0xFF]
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
    assert out.shape == (32, 32, 3) and np.array_equal(out[:, :, 0], (a >> 8).astype(np.uint8))


def test_list_images_recursive_and_hidden(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.png", ".hidden.jpg", "UPPER.JPG", "notes.txt"):
        (root / name).write_bytes(b"x")
    names = [p.relative_to(root).as_posix() for p in list_images(root)]
    assert names == ["UPPER.JPG", "a.jpg", "sub/b.png"]
    assert [p.name for p in list_images(root, recursive=False)] == ["UPPER.JPG", "a.jpg"]
