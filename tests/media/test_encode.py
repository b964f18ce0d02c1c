"""media.encode: sRGB-tagged PNG, APNG (whole and streamed) and JPEG, read back by Pillow."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.inference import make_picture


def test_outputs_are_srgb_tagged_and_animations_round_trip(tmp_path):
    from PIL import ImageCms

    from media.encode import encode_apng, encode_png

    rgb = make_picture(12, 10)
    alpha = np.tile(np.arange(10, dtype=np.uint8) * 25, (12, 1))
    im = Image.open(io.BytesIO(encode_png(rgb, alpha)))
    desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"])))
    assert im.mode == "RGBA" and "sRGB" in desc
    assert np.array_equal(np.asarray(im)[..., :3], rgb) and np.array_equal(np.asarray(im)[..., 3], alpha)
    g = Image.open(io.BytesIO(encode_png(rgb, alpha, gray=True)))
    assert g.mode == "LA" and "srgb" in g.info and "icc_profile" not in g.info

    frames = [make_picture(12, 10, seed=i) for i in range(3)]
    alphas = [alpha, None, alpha]  # a frame without alpha is opaque, not the previous frame
    anim = Image.open(io.BytesIO(encode_apng(frames, alphas, [30, 60, 90.0], loop=5)))
    assert anim.n_frames == 3 and anim.info["loop"] == 5 and anim.mode == "RGBA"
    for i in range(3):
        anim.seek(i)
        a = np.asarray(anim.convert("RGBA"))
        assert anim.info["duration"] == 30 * (i + 1)
        np.testing.assert_array_equal(a[..., 3], 255 if alphas[i] is None else alpha)
        visible = a[..., 3] > 0
        np.testing.assert_array_equal(a[..., :3][visible], frames[i][visible])
    with pytest.raises(ValueError):
        encode_apng(frames, alphas[:2], [30, 60, 90], loop=0)


def test_apng_writer_stores_changed_rectangles_and_merges_repeats(tmp_path):
    """The streaming writer (memory: two frames) against Pillow's reading: frames that change
    in a corner, a repeated frame (merged, times added), gray with alpha, a 70 s frame."""
    from media.encode import ApngWriter

    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    corner = base.copy()
    corner[20:25, 30:33] = 7
    frames, durations = [base, corner, corner, base], [40, 50, 60, 70_000]
    buf = io.BytesIO()
    w = ApngWriter(buf, alpha=False, gray=False, loop=2)
    for f, d in zip(frames, durations):
        w.add(f, None, d)
    assert w.close() == 3
    anim = Image.open(io.BytesIO(buf.getvalue()))
    assert anim.n_frames == 3 and anim.info["loop"] == 2
    for i, (want, d) in enumerate([(base, 40), (corner, 110), (base, 70_000)]):
        anim.seek(i)
        assert anim.info["duration"] == d and anim.info["bbox"] == ((0, 0, 40, 30) if i == 0 else (30, 20, 33, 25))
        np.testing.assert_array_equal(np.asarray(anim.convert("RGB")), want)

    g = base[..., :1].repeat(3, axis=2)
    alpha = np.full((30, 40), 255, np.uint8)
    alpha[:, :5] = 0
    buf = io.BytesIO()
    w = ApngWriter(buf, alpha=True, gray=True, loop=0)
    w.add(g, alpha, 30)
    w.add(255 - g, None, 30)  # no alpha given: opaque
    w.close()
    anim = Image.open(io.BytesIO(buf.getvalue()))
    assert anim.mode == "LA" and "srgb" in anim.info
    anim.seek(1)
    la = np.asarray(anim)
    np.testing.assert_array_equal(la[..., 0], 255 - g[..., 0])
    assert (la[..., 1] == 255).all()


def test_jpeg_is_srgb_tagged_and_gray_is_l():
    from PIL import ImageCms

    from media.encode import encode_jpeg

    rgb = make_picture(16, 12)
    im = Image.open(io.BytesIO(encode_jpeg(rgb)))
    desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"])))
    assert im.format == "JPEG" and im.mode == "RGB" and im.size == (12, 16) and "sRGB" in desc
    assert np.abs(np.asarray(im).astype(int) - rgb).mean() < 12  # lossy, but the same picture
    g = Image.open(io.BytesIO(encode_jpeg(rgb, gray=True)))
    assert g.mode == "L" and "icc_profile" not in g.info
