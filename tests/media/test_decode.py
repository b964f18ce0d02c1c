"""The one decoding path (media.decode): every mode gives the same RGB through training,
evaluation and inference; EXIF orientation, 16-bit scaling, invisible pixels, colour profiles,
frames and pixel limits, each against an independent oracle."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from media.colour import to_uint8_rgb
from media.decode import read_image_rgb
from media.folders import list_images

from tests import hostile, icc
from tests.imagefiles import CUTOUT_KINDS, big_png, cutout_alpha, cutout_files, write_png16

S = 16  # square test images: the evaluation crop of an S x S image at size S is the image


# ------------------------------------------------------------------------------ helpers
def picture(seed: int = 0, h: int = S, w: int = S) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def ramp16(seed: int = 0, c: int = 3) -> np.ndarray:
    a = np.random.default_rng(seed).integers(0, 65536, (S, S, c), dtype=np.uint16)
    a[0, 0] = 0
    a[0, 1] = 65535
    a[0, 2] = 128       # rint(128 / 257) = 0, but 128 >> 8 = 0 too; 200 tells the rules apart:
    a[0, 3] = 200       # rint(200 / 257) = 1, 200 >> 8 = 0
    a[0, 4] = 33024     # rint(33024 / 257) = 128, 33024 >> 8 = 129
    return a


def eight(a16: np.ndarray) -> np.ndarray:
    return np.rint(a16.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)


def nearest_visible(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Brute-force oracle of the fill: every alpha == 0 pixel takes its nearest visible colour."""
    out = rgb.copy()
    vy, vx = np.nonzero(alpha > 0)
    for y, x in zip(*np.nonzero(alpha == 0)):
        k = np.argmin((vy - y) ** 2 + (vx - x) ** 2)
        out[y, x] = rgb[vy[k], vx[k]]
    return out


def gray3(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, axis=2)


def left_column_transparent() -> np.ndarray:
    """Alpha with x = 0 invisible (each invisible pixel has one unique nearest visible pixel),
    x = 1 barely visible and the rest semi-transparent to opaque."""
    alpha = np.random.default_rng(5).integers(1, 256, (S, S), dtype=np.uint8)
    alpha[:, 0] = 0
    alpha[:, 1] = 1
    return alpha


# One file of every kind, written by an independent writer, and the RGB it must decode to.
def _case(kind: str, d: Path) -> tuple[Path, np.ndarray]:
    rgb = picture(1)
    g = rgb[..., 0]
    alpha = left_column_transparent()
    if kind == "1":
        bits = g > 127
        Image.fromarray(bits).save(d / "b.png")
        return d / "b.png", gray3(np.where(bits, 255, 0).astype(np.uint8))
    if kind == "L":
        Image.fromarray(g, "L").save(d / "l.png")
        return d / "l.png", gray3(g)
    if kind == "LA":
        Image.fromarray(np.dstack([g, alpha]), "LA").save(d / "la.png")
        return d / "la.png", nearest_visible(gray3(g), alpha)
    if kind == "P":
        pal = picture(2, 1, 256)[0]
        idx = np.random.default_rng(3).integers(0, 256, (S, S), dtype=np.uint8)
        im = Image.fromarray(idx, "P")
        im.putpalette(pal.tobytes())
        im.save(d / "p.png")
        return d / "p.png", pal[idx]
    if kind == "P+transparency":
        pal = picture(2, 1, 256)[0]
        idx = np.random.default_rng(3).integers(1, 256, (S, S), dtype=np.uint8)
        idx[:, 0] = 0
        im = Image.fromarray(idx, "P")
        im.putpalette(pal.tobytes())
        im.save(d / "pt.png", transparency=0)
        return d / "pt.png", nearest_visible(pal[idx], np.where(idx == 0, 0, 255))
    if kind == "RGB":
        Image.fromarray(rgb).save(d / "rgb.png")
        return d / "rgb.png", rgb
    if kind == "RGB+transparency":
        key = rgb.copy()
        key[:, 0] = (7, 8, 9)
        key[1:, 1:][(key[1:, 1:] == (7, 8, 9)).all(-1)] = (7, 8, 10)
        Image.fromarray(key).save(d / "rgbt.png", transparency=(7, 8, 9))
        return d / "rgbt.png", nearest_visible(key, np.where((key == (7, 8, 9)).all(-1), 0, 255))
    if kind == "RGBA":
        Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(d / "rgba.png")
        return d / "rgba.png", nearest_visible(rgb, alpha)
    if kind == "CMYK":
        cmyk = np.random.default_rng(4).integers(0, 256, (S, S, 4), dtype=np.uint8)
        Image.fromarray(cmyk, "CMYK").save(d / "cmyk.tif")
        # no profile: Pillow's naive CMYK -> RGB, R = (255 - C)(255 - K) / 255 rounded
        ink, k = cmyk[..., :3].astype(np.float64), cmyk[..., 3:].astype(np.float64)
        return d / "cmyk.tif", np.rint((255 - ink) * (255 - k) / 255).astype(np.uint8)
    if kind == "I;16 png":
        a = ramp16(c=1)[..., 0]
        Image.fromarray(a).save(d / "g16.png")
        return d / "g16.png", gray3(eight(a))
    if kind == "I;16B tiff":
        a = ramp16(c=1)[..., 0]
        Image.frombytes("I;16B", (S, S), a.astype(">u2").tobytes()).save(d / "g16b.tif")
        assert Image.open(d / "g16b.tif").mode == "I;16B"
        return d / "g16b.tif", gray3(eight(a))
    if kind == "I 32-bit":
        a = ramp16(c=1)[..., 0].astype(np.int32)
        Image.fromarray(a, "I").save(d / "i32.tif")
        return d / "i32.tif", gray3(eight(a))
    if kind == "F":
        f = np.random.default_rng(6).random((S, S)).astype(np.float32)
        Image.fromarray(f, "F").save(d / "f.tif")
        return d / "f.tif", gray3(np.rint(f.astype(np.float64) * 255).astype(np.uint8))
    if kind == "RGB 16-bit png":
        a = ramp16()
        return write_png16(d / "c16.png", a), eight(a)
    if kind == "RGBA 16-bit png":
        a = ramp16(c=4)
        a[..., 3] = 65535
        a[:, 0, 3] = 0
        return write_png16(d / "c16a.png", a), nearest_visible(eight(a[..., :3]), eight(a[..., 3]))
    if kind == "LA 16-bit png":
        a = ramp16(c=2)
        a[..., 1] = 65535
        a[:, 0, 1] = 0
        return write_png16(d / "la16.png", a), nearest_visible(gray3(eight(a[..., 0])), eight(a[..., 1]))
    if kind == "RGB 16-bit tiff":
        import cv2

        a = ramp16()
        cv2.imwrite(str(d / "c16.tif"), a[..., ::-1])
        return d / "c16.tif", eight(a)
    raise AssertionError(kind)


KINDS = ["1", "L", "LA", "P", "P+transparency", "RGB", "RGB+transparency", "RGBA", "CMYK",
         "I;16 png", "I;16B tiff", "I 32-bit", "F", "RGB 16-bit png", "RGBA 16-bit png",
         "LA 16-bit png", "RGB 16-bit tiff"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_gives_one_rgb_through_training_evaluation_and_inference(tmp_path, kind):
    from datasets.folders import ImageFolderDataset
    from media.decode import read_image_rgb
    from media.tensors import to_uint8
    from evaluation.evaluate import load_crops
    from inference.files import read_image

    path, want = _case(kind, tmp_path)
    training = to_uint8(ImageFolderDataset([path], image_size=S, augment=False)[(0, 0)]["image"])
    views = {"training dataset": training,
             "landmark cache / read_image_rgb": read_image_rgb(path),
             "evaluation load_crops": load_crops([path], S)[0],
             "inference read_image": read_image(path).rgb}
    for where, got in views.items():
        assert got.dtype == np.uint8 and got.shape == (S, S, 3), where
        np.testing.assert_array_equal(got, want, err_msg=f"{kind} through {where}")


def test_gray_and_alpha_are_reported_as_stored(tmp_path):
    from media.decode import decode_image

    alpha = left_column_transparent()
    Image.fromarray(np.dstack([picture()[..., 0], alpha]), "LA").save(tmp_path / "la.png")
    d = decode_image(tmp_path / "la.png")
    assert d.gray and d.bit_depth == 8 and d.frames == 1
    np.testing.assert_array_equal(d.alpha, alpha)
    d16 = decode_image(write_png16(tmp_path / "c16.png", ramp16()))
    assert not d16.gray and d16.alpha is None and d16.bit_depth == 16


# ---------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    from media.decode import read_image_rgb
    from inference.files import read_image

    im = Image.fromarray(picture(7, 12, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.png", exif=exif)
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"))
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "o.png"), want)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").rgb, want)


# ----------------------------------------------------------------------- invisible pixels
def test_fill_invisible_takes_the_nearest_visible_colour():
    from media.colour import TRANSPARENT_FILL, fill_invisible

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 31, 3), dtype=np.uint8)
    alpha = np.zeros((24, 31), np.uint8)
    # a few visible points at distinct distances from everything (no ties: odd offsets)
    for y, x in ((2, 3), (20, 28), (11, 17), (21, 4)):
        alpha[y, x] = 200
    out = fill_invisible(rgb, alpha)
    ys, xs = np.mgrid[0:24, 0:31]
    pts = np.argwhere(alpha > 0)
    d2 = (ys[..., None] - pts[:, 0]) ** 2 + (xs[..., None] - pts[:, 1]) ** 2
    unique = (np.sort(d2, axis=-1)[..., 0] < np.sort(d2, axis=-1)[..., 1])
    nearest = pts[np.argmin(d2, axis=-1)]
    want = rgb[nearest[..., 0], nearest[..., 1]]
    np.testing.assert_array_equal(out[unique], want[unique])
    np.testing.assert_array_equal(out[alpha > 0], rgb[alpha > 0])
    assert np.array_equal(fill_invisible(rgb, np.zeros_like(alpha)), np.full_like(rgb, TRANSPARENT_FILL))
    assert np.array_equal(fill_invisible(rgb, np.full_like(alpha, 1)), rgb)


@pytest.mark.parametrize("kind", CUTOUT_KINDS)
def test_colour_under_alpha_zero_does_not_reach_the_rgb(tmp_path, kind):
    """The same visible pixels stored over white, black and noise decode to one RGB array,
    for training and for inference alike; alpha comes back as stored."""
    from media.decode import read_image_rgb
    from inference.files import read_image

    rgb, alpha = picture(3, 32, 32), cutout_alpha(32, 32)
    outs = []
    for path in cutout_files(kind, rgb, alpha, tmp_path):
        loaded = read_image(path)
        outs.append(loaded.rgb)
        np.testing.assert_array_equal(read_image_rgb(path), loaded.rgb)
        assert loaded.alpha is not None and np.array_equal(loaded.alpha == 0, alpha == 0)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


# ------------------------------------------------------------------------ colour profiles
def test_adobe_rgb_profile_is_converted_to_srgb_everywhere(tmp_path):
    from media.decode import read_image_rgb
    from inference.files import read_image

    rgb = picture(11, 24, 24)
    rgb[0, :4] = [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0)]
    Image.fromarray(rgb).save(tmp_path / "adobe.png", icc_profile=icc.matrix_rgb_profile())
    Image.fromarray(rgb).save(tmp_path / "adobe.jpg", icc_profile=icc.matrix_rgb_profile(), quality=100)
    want = icc.adobe_rgb8_to_srgb8(rgb)  # hand computation from the standards' matrices
    got = read_image_rgb(tmp_path / "adobe.png")
    assert np.abs(got.astype(int) - want).max() <= 1
    assert np.abs(got.astype(int) - rgb).max() >= 25  # what ignoring the profile got wrong
    np.testing.assert_array_equal(read_image(tmp_path / "adobe.png").rgb, got)
    # the same conversion on the decoded JPEG samples
    jpeg = np.asarray(Image.open(tmp_path / "adobe.jpg").convert("RGB"))
    assert np.abs(read_image_rgb(tmp_path / "adobe.jpg").astype(int) - icc.adobe_rgb8_to_srgb8(jpeg)).max() <= 1


def test_gray_profile_is_converted_and_stays_gray(tmp_path):
    from media.decode import decode_image

    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(g, "L").save(tmp_path / "g.png", icc_profile=icc.gray_profile(1.8))
    d = decode_image(tmp_path / "g.png")
    want = np.rint(icc.srgb_encode((g / 255.0) ** 1.8) * 255)
    assert d.gray and np.abs(d.rgb[..., 0] - want).max() <= 1
    assert np.array_equal(d.rgb[..., 0], d.rgb[..., 1]) and np.array_equal(d.rgb[..., 0], d.rgb[..., 2])


def test_cmyk_profile_is_converted(tmp_path):
    from media.decode import read_image_rgb

    # coverage up to 60%: inside the sRGB gamut, where the oracle needs no clipping
    cmyk = np.random.default_rng(12).integers(0, 154, (20, 20, 4), dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif", icc_profile=icc.cmyk_profile())
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", icc_profile=icc.cmyk_profile(), quality=100)
    want = icc.xyz_d50_to_srgb8(icc.cmyk_to_xyz(cmyk / 255.0))
    assert np.abs(read_image_rgb(tmp_path / "c.tif").astype(int) - want).max() <= 2
    jpeg = np.asarray(Image.open(tmp_path / "c.jpg"))  # what the JPEG decoder gives (CMYK)
    want_jpeg = icc.xyz_d50_to_srgb8(icc.cmyk_to_xyz(jpeg / 255.0))
    assert np.abs(read_image_rgb(tmp_path / "c.jpg").astype(int) - want_jpeg).max() <= 2


@pytest.mark.parametrize("profile,why", [(b"garbage" * 40, "unreadable"),
                                          (icc.cmyk_profile(), "for CMYK data")])
def test_unusable_profile_is_a_note_and_pixels_read_as_srgb(tmp_path, profile, why, caplog):
    from datasets.folders import collect_images
    from media.decode import decode_image

    rgb = picture(13)
    Image.fromarray(rgb).save(tmp_path / "x.png", icc_profile=profile)
    d = decode_image(tmp_path / "x.png")
    np.testing.assert_array_equal(d.rgb, rgb)
    assert len(d.notes) == 1 and why in d.notes[0] and "read as sRGB" in d.notes[0]
    with caplog.at_level("WARNING"):
        assert collect_images(tmp_path, "photo") == [tmp_path / "x.png"]
    assert any("x.png" in r.getMessage() and why in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------- frames
def _animation(path: Path, fmt: str, n: int = 4, durations=(40, 80, 120, 160), **kw) -> list[np.ndarray]:
    frames = [picture(20 + i, 12, 14) for i in range(n)]
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, format=fmt, save_all=True, append_images=ims[1:], duration=list(durations[:n]), **kw)
    return frames


@pytest.mark.parametrize("fmt,ext,kw,plays", [("WEBP", ".webp", {"loop": 3, "lossless": True}, 3),
                                              ("PNG", ".png", {"loop": 2}, 2),
                                              ("GIF", ".gif", {"loop": 0}, 0),
                                              ("GIF", ".gif", {}, 1),
                                              ("GIF", ".gif", {"loop": 2}, 3)])
def test_decode_frames_keeps_every_frame_its_time_and_the_loop(tmp_path, fmt, ext, kw, plays):
    from media.decode import decode_frames, decode_image

    path = tmp_path / f"a{ext}"
    frames = _animation(path, fmt, **kw)
    d = decode_frames(path)
    assert len(d.frames) == 4 and d.durations_ms == [40, 80, 120, 160] and d.loop == plays
    assert decode_image(path).frames == 4
    with Image.open(path) as im:  # each frame as Pillow composes it
        for i, f in enumerate(d.frames):
            im.seek(i)
            np.testing.assert_array_equal(f.rgb, np.asarray(im.convert("RGB")))
    if fmt != "GIF":  # GIF quantises to 256 colours
        np.testing.assert_array_equal(d.frames[2].rgb, frames[2])


def test_pages_that_are_not_an_animation_are_refused_and_thumbnails_not_counted(tmp_path):
    from media.decode import decode_frames, decode_image
    from media.errors import MultiFrameImage

    pages = [Image.fromarray(picture(i)) for i in range(3)]
    pages[0].save(tmp_path / "doc.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(MultiFrameImage, match="3 pages"):
        decode_frames(tmp_path / "doc.tif")
    assert decode_image(tmp_path / "doc.tif").frames == 3  # training takes the first, with a note

    thumb = Image.fromarray(picture(5, 4, 4))
    thumb.encoderinfo = {"tiffinfo": {254: 1}}  # NewSubfileType: reduced-resolution image
    pages[0].save(tmp_path / "thumb.tif", save_all=True, append_images=[thumb])
    d = decode_frames(tmp_path / "thumb.tif")
    assert len(d.frames) == 1 and d.frames[0].frames == 1
    np.testing.assert_array_equal(d.frames[0].rgb, picture(0))

    pages[0].save(tmp_path / "stereo.mpo", format="MPO", save_all=True, append_images=[pages[1]])
    assert Image.open(tmp_path / "stereo.mpo").n_frames == 2
    assert len(decode_frames(tmp_path / "stereo.mpo").frames) == 1


def test_folder_scan_says_which_files_have_several_pictures(tmp_path, caplog):
    from datasets.folders import collect_images

    _animation(tmp_path / "anim.webp", "WEBP", lossless=True)
    Image.fromarray(picture()).save(tmp_path / "still.png")
    with caplog.at_level("WARNING"):
        assert [p.name for p in collect_images(tmp_path, "photo")] == ["anim.webp", "still.png"]
    msgs = [r.getMessage() for r in caplog.records]
    assert any("anim.webp (holds 4 pictures; the first is used)" in m for m in msgs), msgs


# --------------------------------------------------------------------------------- limits
def test_oversize_image_is_named_as_such_not_corrupt(tmp_path):
    from media.decode import decode_image
    from media.errors import ImageTooLarge

    path = big_png(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(ImageTooLarge) as info:
        decode_image(path)  # default: Pillow's MAX_IMAGE_PIXELS
    msg = str(info.value)
    assert "20000x20000 = 400,000,000 pixels" in msg and f"{Image.MAX_IMAGE_PIXELS:,}" in msg
    assert "corrupt" not in msg and "MAX_IMAGE_PIXELS" in msg
    with pytest.raises(ImageTooLarge, match="over the limit of 1,000,000 pixels"):
        decode_image(path, max_pixels=1_000_000)


def test_our_limit_governs_pillows_within_the_call_only(tmp_path, monkeypatch):
    from media.decode import decode_image
    from media.errors import ImageTooLarge

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow errors above 2000 pixels
    Image.fromarray(picture(0, 60, 50)).save(tmp_path / "p.png")  # 3000 pixels
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "p.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "p.png", max_pixels=3000).rgb, picture(0, 60, 50))
    with pytest.raises(ImageTooLarge, match="3,000 pixels, over the limit of 2,999"):
        decode_image(tmp_path / "p.png", max_pixels=2999)
    with pytest.raises(ImageTooLarge, match="limit of 1,000 pixels"):
        decode_image(tmp_path / "p.png")
    # nothing leaked: Pillow's global and its own check are as before
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "p.png")


def test_a_lifted_limit_does_not_leak_into_other_threads(tmp_path, monkeypatch):
    """While decodes with a lifted limit run in pool threads, a plain Image.open in another
    thread still gets Pillow's own check."""
    from concurrent.futures import ThreadPoolExecutor

    from media.decode import decode_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.fromarray(picture(0, 60, 50)).save(tmp_path / "p.png")
    stop = threading.Event()
    outcomes: list[str] = []

    def plain_opens():
        while not stop.is_set():
            try:
                Image.open(tmp_path / "p.png").close()
                outcomes.append("opened")
            except Image.DecompressionBombError:
                outcomes.append("refused")

    watcher = threading.Thread(target=plain_opens)
    watcher.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: decode_image(tmp_path / "p.png", max_pixels=10**6).rgb.shape,
                                    range(200)))
    finally:
        stop.set()
        watcher.join()
    assert set(results) == {(60, 50, 3)}
    assert outcomes and set(outcomes) == {"refused"}


def test_byte_limit_and_bad_files(tmp_path):
    from media.decode import decode_image
    from media.errors import ImageTooLarge, UnreadableImage

    Image.fromarray(picture()).save(tmp_path / "p.png")
    with pytest.raises(ImageTooLarge, match="MB, over the limit"):
        decode_image(tmp_path / "p.png", max_bytes=100)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not an image" * 20)
    data = (tmp_path / "p.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for name, match in (("empty.png", "empty"), ("junk.png", "not a readable image"),
                        ("cut.png", "corrupt or truncated"), ("missing.png", "cannot read")):
        with pytest.raises(UnreadableImage, match=match):
            decode_image(tmp_path / name)


# ------------------------------------------------- work bounds before decoding (issue 26)
HOSTILE_ANIMATIONS = {"APNG": ("a.png", hostile.delta_apng), "GIF": ("a.gif", hostile.delta_gif),
                      "WebP": ("a.webp", hostile.delta_webp)}


@pytest.mark.parametrize("kind", sorted(HOSTILE_ANIMATIONS))
def test_an_animation_over_its_budget_is_refused_before_a_frame_is_decoded(tmp_path, kind):
    """Issue 26: 300 one-pixel frames on a 1500x1500 canvas (26 KB as APNG) ask for 675 M
    composed pixels; decoding them all before counting took the server to 2.9 GB."""
    from media.decode import decode_frames, open_frames
    from media.errors import ImageTooLarge

    name, make = HOSTILE_ANIMATIONS[kind]
    path = make(tmp_path / name)
    with hostile.decode_guard():
        with pytest.raises(ImageTooLarge) as info:
            decode_frames(path, max_pixels=3000 * 3000, max_total_pixels=100_000_000)
        assert info.value.what == "animation-pixels"
        assert "300 frames of 1500x1500 = 675,000,000 pixels" in str(info.value)
        with pytest.raises(ImageTooLarge, match="300 frames, over the limit of 299 frames"):
            open_frames(path, max_frames=299)
        with pytest.raises(ImageTooLarge, match="1500x1500, over the limit of 1,499 px per side"):
            open_frames(path, max_side=1499)
        with open_frames(path, max_total_pixels=675_000_000) as reader:  # at the budget: opens
            assert reader.frames == reader.count == 300 and reader.canvas == (1500, 1500)


def test_a_gif_frame_beyond_the_screen_is_budgeted_at_the_canvas_it_grows_to(tmp_path):
    """Pillow grows a GIF's canvas to every frame's extent: a 1x1 screen with frames at
    (2999, 2999) is decoded on a 3000x3000 canvas."""
    from media.decode import decode_frames
    from media.errors import ImageTooLarge

    path = hostile.delta_gif(tmp_path / "g.gif", canvas=(1, 1), frames=3, offset=(2999, 2999))
    with hostile.decode_guard():
        with pytest.raises(ImageTooLarge, match="3 frames of 3000x3000 = 27,000,000 pixels"):
            decode_frames(path, max_total_pixels=20_000_000)
    with Image.open(path) as im:  # Pillow's own composition agrees on the canvas
        im.seek(2)
        im.load()
        assert im.size == (3000, 3000)


def test_open_frames_holds_one_frame_at_a_time(tmp_path):
    """Iterating an animation decodes frame by frame: memory holds about one frame, not all of
    them; each frame is Pillow's composition (the oracle), with its time."""
    import tracemalloc

    from media.decode import open_frames

    n, h, w = 48, 200, 300
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(n)]
    ims[0].save(tmp_path / "a.png", save_all=True, append_images=ims[1:], duration=30, loop=0)
    frame_bytes = h * w * 3
    tracemalloc.start()
    try:
        with open_frames(tmp_path / "a.png") as reader, Image.open(tmp_path / "a.png") as oracle:
            assert (reader.frames, reader.canvas, reader.has_alpha, reader.gray) == (n, (w, h), False, False)
            for i, frame in enumerate(reader):
                oracle.seek(i)
                assert np.array_equal(frame.rgb, np.asarray(oracle.convert("RGB")))
                assert frame.duration_ms == 30 and frame.frames == (n if i == 0 else 1)
            assert i == n - 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * frame_bytes < n * frame_bytes, (peak, frame_bytes)


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding(tmp_path):
    """Issue 26: a 513 KB progressive JPEG (2990x2990, its last scan repeated to 20,000 scans)
    kept the decoder busy for over 100 s; it is refused from its marker segments."""
    from media.decode import decode_image
    from media.errors import ImageTooLarge
    from media.limits import MAX_JPEG_SCANS

    bomb = hostile.scan_bomb_jpeg(tmp_path / "bomb.jpg")
    assert bomb.stat().st_size < 600_000
    with hostile.decode_guard():
        with pytest.raises(ImageTooLarge, match=f"over {MAX_JPEG_SCANS} scans") as info:
            decode_image(bomb)
    assert info.value.what == "scans"


def test_the_scan_limit_counts_scans_as_a_decoder_reads_them(tmp_path):
    """Exactly MAX_JPEG_SCANS scans decode (as Pillow decodes them); one more is refused; SOS
    bytes inside another segment (an APP15 payload, as in an EXIF thumbnail) are not scans."""
    from media.decode import decode_image
    from media.errors import ImageTooLarge
    from media.limits import MAX_JPEG_SCANS

    ok = tmp_path / "ok.jpg"
    ok.write_bytes(hostile.progressive_jpeg(64, MAX_JPEG_SCANS))
    with Image.open(ok) as im:
        np.testing.assert_array_equal(decode_image(ok).rgb, np.asarray(im.convert("RGB")))
    over = tmp_path / "over.jpg"
    over.write_bytes(hostile.progressive_jpeg(64, MAX_JPEG_SCANS + 1))
    with hostile.decode_guard(), pytest.raises(ImageTooLarge, match="scans"):
        decode_image(over)
    assert decode_image(over, max_scans=None).rgb.shape == (64, 64, 3)
    data = hostile.progressive_jpeg(64, 10)
    payload = b"\xff\xda" * (2 * MAX_JPEG_SCANS)
    app = b"\xff\xef" + (2 + len(payload)).to_bytes(2, "big") + payload
    (tmp_path / "app.jpg").write_bytes(data[:2] + app + data[2:])
    np.testing.assert_array_equal(decode_image(tmp_path / "app.jpg").rgb, decode_image(ok).rgb)


def _tiff_of_pages(path: Path, pages: int) -> Path:
    """A little-endian TIFF of ``pages`` 1x1 gray pages sharing one strip (TIFF 6.0 section 2)."""
    import struct

    tags = lambda strip: [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1),
                          (262, 3, 1, 1), (273, 4, 1, strip), (278, 3, 1, 1), (279, 4, 1, 1)]
    ifd_size = 2 + 12 * 8 + 4
    strip = 8
    out = [b"II*\0" + struct.pack("<I", 9), b"\x80"]  # header, then the strip at offset 8
    for i in range(pages):
        start = 9 + i * ifd_size
        nxt = start + ifd_size if i + 1 < pages else 0
        out.append(struct.pack("<H", 8) + b"".join(struct.pack("<HHII", *t) for t in tags(strip))
                   + struct.pack("<I", nxt))
    path.write_bytes(b"".join(out))
    return path


def test_counting_tiff_pages_stops_at_a_bound(tmp_path, monkeypatch):
    """Pillow's n_frames reads every page of a TIFF (20,000 pages of 102 bytes: seconds): the
    count stops at 1000 pages, and decoding the first page reads no more."""
    from PIL import TiffImagePlugin

    from media.decode import decode_frames, decode_image
    from media.errors import MultiFrameImage

    path = _tiff_of_pages(tmp_path / "pages.tif", 20_000)
    seeks = []
    original = TiffImagePlugin.TiffImageFile._seek
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_seek",
                        lambda self, frame: (seeks.append(frame), original(self, frame))[1])
    d = decode_image(path)
    assert d.frames == 1000 and d.rgb.shape == (1, 1, 3) and d.rgb[0, 0, 0] == 0x80
    assert len(seeks) < 2100, len(seeks)
    with pytest.raises(MultiFrameImage, match="holds 1000\\+ pages"):
        decode_frames(path)


# ----------------------------------------------------- conversions and folder listing


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
    # rint(v * 255 / 65535), the rule of every 16-bit reader (media.colour.sixteen_to_eight)
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


def test_list_images_recursive_and_hidden(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.png", ".hidden.jpg", "UPPER.JPG", "notes.txt"):
        (root / name).write_bytes(b"x")
    names = [p.relative_to(root).as_posix() for p in list_images(root)]
    assert names == ["UPPER.JPG", "a.jpg", "sub/b.png"]
    assert [p.name for p in list_images(root, recursive=False)] == ["UPPER.JPG", "a.jpg"]
