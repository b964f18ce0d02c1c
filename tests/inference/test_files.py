"""inference.files, the batch file driver: reading with the options' limits, output names, input
collection (encoders: tests/media/test_encode.py; videos: tests/media/test_video.py)."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from inference.files import collect_jobs, read_image
from media.encode import write_image
from tests.inference import make_picture
from utils.errors import ToonFaceError


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(make_picture(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "r.jpg").rgb.shape == (40, 20, 3)


def test_alpha_and_gray_are_kept(tmp_path):
    rgb = make_picture(16, 24)
    alpha = np.tile(np.arange(24, dtype=np.uint8) * 10, (16, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    loaded = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(loaded.alpha, alpha)
    write_image(tmp_path / "o.png", loaded.rgb, loaded.alpha, loaded.gray)
    out = Image.open(tmp_path / "o.png")
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], alpha)

    Image.fromarray(rgb[..., 0], "L").save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.gray and g.rgb.shape == (16, 24, 3)
    write_image(tmp_path / "go.png", g.rgb, g.alpha, g.gray)
    assert Image.open(tmp_path / "go.png").mode == "L"


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    import cv2

    a = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (8, 1))
    cv2.imwrite(str(tmp_path / "g16.png"), a)
    g = read_image(tmp_path / "g16.png")
    assert g.bit_depth == 16 and g.gray
    np.testing.assert_allclose(g.rgb[..., 0], a / 257.0, atol=0.51)
    cv2.imwrite(str(tmp_path / "c16.png"), np.dstack([a, a // 2, a // 4]))
    c = read_image(tmp_path / "c16.png")
    assert c.rgb.shape == (8, 32, 3) and c.rgb[..., 2].max() >= 254  # red = full range


def test_limits_and_bad_files(tmp_path):
    Image.fromarray(make_picture(40, 50)).save(tmp_path / "p.png")
    with pytest.raises(ToonFaceError, match="--max-pixels"):
        read_image(tmp_path / "p.png", max_pixels=1999)
    read_image(tmp_path / "p.png", max_pixels=2000)
    with pytest.raises(ToonFaceError, match="--max-bytes"):
        read_image(tmp_path / "p.png", max_bytes=100)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ToonFaceError, match="empty"):
        read_image(tmp_path / "empty.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all" * 10)
    with pytest.raises(ToonFaceError, match="not a readable image"):
        read_image(tmp_path / "junk.jpg")
    data = (tmp_path / "p.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ToonFaceError):
        read_image(tmp_path / "cut.png")


def test_video_outputs_are_mp4_except_mov(tmp_path):
    """H.264 goes in MP4 or QuickTime: .avi/.webm/.mkv/.m4v become .mp4, .mov stays; two
    inputs that would share an output name keep apart (the second gets its full name)."""
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.avi", "a.mp4", "b.webm", "c.MOV", "d.mkv", "e.m4v"):
        (root / name).write_bytes(b"x")
    jobs, errors = collect_jobs([root], tmp_path / "out")
    assert not errors and {j.kind for j in jobs} == {"video"}
    by_src = {j.src.name: j.dst.name for j in jobs}
    assert by_src == {"a.avi": "a.mp4", "a.mp4": "a.mp4.mp4", "b.webm": "b.mp4", "c.MOV": "c.MOV",
                      "d.mkv": "d.mp4", "e.m4v": "e.mp4"}


def test_collect_jobs_layout_and_never_overwrite(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "a.png", "sub/b.jpeg"):
        Image.fromarray(make_picture(8, 8)).save(root / name, format="PNG")
    (root / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    jobs, errors = collect_jobs([root], out)
    dsts = sorted(str(j.dst.relative_to(out)) for j in jobs)
    assert dsts == ["a.png", "a.png.png", "sub/b.png"]  # a.jpg -> a.png came first
    assert not errors
    # --out is the input folder: a.png would be overwritten -> an error for that file only
    jobs, errors = collect_jobs([root / "a.png", root / "sub" / "b.jpeg"], root)
    assert [j.src.name for j in jobs] == ["b.jpeg"]
    assert len(errors) == 1 and "overwrite an input" in errors[0]
    # results of an earlier run inside an input folder are not inputs again
    (root / "toon").mkdir()
    Image.fromarray(make_picture(8, 8)).save(root / "toon" / "old.png")
    jobs, _ = collect_jobs([root], root / "toon")
    assert all("toon" not in j.src.parts for j in jobs)
    jobs, errors = collect_jobs([tmp_path / "missing", root / "notes.txt"], out)
    assert not jobs and len(errors) == 2
