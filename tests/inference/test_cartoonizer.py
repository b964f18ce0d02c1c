"""Cartoonizer: size kept, oracle match, tiling agreement, strength, checkpoint resolution."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.images import to_tensor
from inference.cartoonizer import Cartoonizer, feather_1d, tile_starts
from models import guided_filter
from tests.inference import make_checkpoint, make_generator, make_picture
from utils.errors import ToonFaceError
from utils.run_dir import resolve_generator


@pytest.fixture(scope="module")
def toon():
    return Cartoonizer(make_generator(), tile=0)


@pytest.mark.parametrize("h,w", [(1, 1), (3, 5), (37, 53), (64, 64), (30, 90)])
def test_output_size_equals_input_size(toon, h, w):
    out = toon(make_picture(h, w))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_matches_generator_plus_guided_filter(toon):
    """Oracle: white-box inference written out by hand, for a size that needs no padding."""
    img = make_picture(48, 64)
    x = to_tensor(img)[None]
    with torch.no_grad():
        ref = guided_filter(x, toon.generator(x), 1, 5e-3).clamp(-1, 1)
    ref = ((ref[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.int16)
    assert np.abs(toon(img).astype(np.int16) - ref).max() <= 1


def test_padding_keeps_every_pixel(toon):
    """An odd size is padded and cropped back: its top-left part matches the cropped image's."""
    img = make_picture(66, 70)
    full, part = toon(img), toon(img[:64, :68].copy())
    # far from the padded edge the two must agree closely (receptive field, not lost pixels)
    assert np.abs(full[:32, :32].astype(int) - part[:32, :32]).mean() < 1.0


def test_tiled_and_untiled_agree():
    """Tiles of 128 with overlap 32 on a 200x264 image (6 tiles) vs one pass.

    Measured on wb_party7 with this generator: max 1/255, mean 0.0025/255 at overlap 32; the
    bound leaves room for other pictures and BLAS differences.
    """
    G = make_generator(1)
    img = make_picture(200, 264, seed=3)
    whole = Cartoonizer(G, tile=0).stylize(img)
    tiled = Cartoonizer(G, tile=128, overlap=32).stylize(img)
    d = np.abs(whole.astype(int) - tiled.astype(int))
    assert tiled.shape == img.shape
    assert d.mean() < 0.25 and d.max() <= 4, (d.mean(), d.max())
    assert np.abs(whole.astype(int) - img).mean() > 5  # the generator really changes the picture


def test_tile_layout_covers_and_weights_sum():
    assert tile_starts(100, 128, 32) == [0]
    starts = tile_starts(520, 128, 32)
    assert starts[0] == 0 and starts[-1] == 520 - 128 and all(s % 4 == 0 for s in starts)
    assert all(b - a <= 96 for a, b in zip(starts, starts[1:]))
    w = feather_1d(128, 32, 32)
    assert w[:8].max() < 1e-3 and w[-8:].max() < 1e-3 and w[32:96].min() == 1.0
    # two neighbours overlapping by 32 make a partition of unity over the overlap
    left, right = feather_1d(128, 0, 32)[-32:], feather_1d(128, 32, 0)[:32]
    np.testing.assert_allclose(left + right, 1.0, atol=1e-5)


def test_strength_blends_photo_and_cartoon():
    G = make_generator()
    img = make_picture(32, 40)
    photo = Cartoonizer(G, tile=0, strength=0.0)(img)
    cartoon = Cartoonizer(G, tile=0, strength=1.0)(img)
    half = Cartoonizer(G, tile=0, strength=0.5)(img)
    np.testing.assert_array_equal(photo, img)
    expect = (img.astype(float) + cartoon) / 2
    assert np.abs(half - expect).max() <= 1.0


def test_eps_changes_the_result():
    G, img = make_generator(), make_picture(32, 40)
    a, b = Cartoonizer(G, tile=0, eps=5e-3)(img), Cartoonizer(G, tile=0, eps=1.0)(img)
    assert np.abs(a.astype(int) - b).mean() > 0.5


def test_batch_equals_single(toon):
    frames = [make_picture(24, 32, seed=s) for s in range(3)]
    for a, b in zip(toon.stylize_batch(frames), [toon(f) for f in frames]):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_bad_arrays_raise_one_line(toon):
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ToonFaceError):
            toon(bad)
    with pytest.raises(ToonFaceError, match="tile"):
        Cartoonizer(make_generator(), tile=130)


def test_from_checkpoint_file_and_run_folder(tmp_path):
    run = tmp_path / "v1"
    make_checkpoint(run / "generator" / "latest.pt")
    img = make_picture(20, 28)
    a = Cartoonizer.from_checkpoint(run / "generator" / "latest.pt", "cpu")
    b = Cartoonizer.from_checkpoint(run, "cpu")
    assert a.face_size == 45.0 and a.image_size == 128
    np.testing.assert_array_equal(a(img), b(img))


def test_missing_checkpoint_names_what_was_looked_for(tmp_path):
    with pytest.raises(ToonFaceError, match="generator/latest.pt"):
        resolve_generator(tmp_path)
    with pytest.raises(ToonFaceError, match="checkpoint not found"):
        resolve_generator(tmp_path / "nope.pt")
