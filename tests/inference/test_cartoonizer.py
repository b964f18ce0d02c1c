"""Cartoonizer: size kept, oracle match, tiling agreement, strength, checkpoint resolution."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from media.tensors import to_tensor, to_uint8
from inference.cartoonizer import CONTEXT, MIN_OVERLAP, Cartoonizer, feather_1d, tile_layout
from models import guided_filter
from tests.inference import make_checkpoint, make_generator, make_picture, make_trained_like_generator
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
    """Oracle: white-box inference written out by hand (G, then the guided filter, no padding),
    for a size that needs none, away from the border (where white-box's zero padding shows)."""
    img = make_picture(144, 160)
    x = to_tensor(img)[None]
    with torch.no_grad():
        ref = guided_filter(x, toon.generator(x), 1, 5e-3).clamp(-1, 1)
    ref = ((ref[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.int16)
    assert np.abs(toon(img).astype(np.int16) - ref)[64:-64, 64:-64].max() <= 1


def test_padding_keeps_every_pixel(toon):
    """An odd size is padded and cropped back: its top-left part matches the cropped image's."""
    img = make_picture(66, 70)
    full, part = toon(img), toon(img[:64, :68].copy())
    # far from the padded edge the two must agree closely (receptive field, not lost pixels)
    assert np.abs(full[:32, :32].astype(int) - part[:32, :32]).mean() < 1.0


@pytest.fixture(scope="module")
def trained_like():
    return make_trained_like_generator(1)


@pytest.mark.parametrize("h,w", [(96, 96), (37, 53), (5, 7)])
@pytest.mark.parametrize("value", [0, 200, 255])
def test_flat_image_gives_a_flat_cartoon_up_to_the_border(trained_like, h, w, value):
    """A uniform photo has nothing that could tell its border from its centre: the cartoon must
    be uniform too (the zero padding used to draw a frame: up to 86 levels here)."""
    out = Cartoonizer(trained_like, tile=0)(np.full((h, w, 3), value, np.uint8)).astype(int)
    assert np.abs(out - out[h // 2, w // 2]).max() <= 1


def test_border_is_the_result_of_the_edge_extended_photo(trained_like):
    """Oracle: numpy's edge padding. With context the border of a result is what the generator
    gives inside the photo extended by its edge pixels, cut out of that larger result."""
    toon = Cartoonizer(trained_like, tile=0)
    crop = make_picture(70, 90, seed=4)
    big = np.pad(crop, ((64, 64), (64, 64), (0, 0)), mode="edge")
    d = np.abs(toon(crop).astype(int) - toon(big)[64:-64, 64:-64])
    assert d.max() <= 1, d.max()


def test_crop_border_is_close_to_the_larger_images_result(trained_like):
    """A crop's outer pixels against the same region of the larger picture's cartoon: only the
    unseen content outside the crop may change them now, not the zero padding. Against
    white-box's unpadded forward written out here: outer 4 px mean 62.5 levels, with context 13.7;
    the interior equal."""
    toon = Cartoonizer(trained_like, tile=0)
    big = make_picture(256, 256, seed=6)
    whole = toon(big).astype(int)[64:192, 64:192]
    crop = big[64:192, 64:192].copy()
    with torch.no_grad():
        x = to_tensor(crop)[None]
        bare = to_uint8(guided_filter(x, trained_like(x), 1, 5e-3).clamp(-1, 1)[0]).astype(int)
    d_bare = np.abs(bare - whole).max(-1)
    d = np.abs(toon(crop).astype(int) - whole).max(-1)
    ring = np.ones_like(d, bool)
    ring[4:-4, 4:-4] = False
    assert d[ring].mean() < 0.3 * d_bare[ring].mean(), (d[ring].mean(), d_bare[ring].mean())
    assert d[48:-48, 48:-48].max() <= 1


@pytest.mark.parametrize("tile,overlap", [(256, 32), (208, 104), (320, 128)])
def test_tiled_equals_untiled(trained_like, tile, overlap):
    """Every accepted tiling is seamless with a generator whose border effect reaches as far as
    trained ones' (the old layout: seams of 100+ levels at --tile 256 --overlap 32)."""
    img = make_picture(232, 280, seed=3)
    whole = Cartoonizer(trained_like, tile=0).stylize(img).astype(int)
    tiled = Cartoonizer(trained_like, tile=tile, overlap=overlap)
    assert not tiled._one_tile(232, 280)
    d = np.abs(tiled.stylize(img).astype(int) - whole)
    assert d.max() <= 2 and d.mean() < 0.05, (d.max(), d.mean())
    assert np.abs(whole - img).mean() > 5  # the generator really changes the picture


def test_small_overlap_is_raised_and_small_tiles_refused():
    notes = []
    toon = Cartoonizer(make_generator(), tile=256, overlap=32, notice=notes.append)
    assert toon.overlap == MIN_OVERLAP == 2 * CONTEXT + 8
    assert len(notes) == 1 and "--overlap 32 raised to 104" in notes[0]
    with pytest.raises(ToonFaceError, match="--tile 64 is too small"):
        Cartoonizer(make_generator(), tile=64, overlap=16)
    with pytest.raises(ToonFaceError, match="multiple of 4"):
        Cartoonizer(make_generator(), tile=256, overlap=130)
    notes.clear()
    assert Cartoonizer(make_generator(), tile=0, overlap=0, notice=notes.append).tile == 0 and not notes


@pytest.mark.parametrize("size", list(range(1028, 1400, 28)) + [2028, 2992, 5000])
@pytest.mark.parametrize("tile,overlap", [(1024, 128), (256, 104), (512, 200)])
def test_tile_layout_is_even_and_covers(size, tile, overlap):
    starts, length = tile_layout(size, tile, overlap)
    n = len(starts)
    assert n == -(-(size - overlap) // (tile - overlap))  # the fewest tiles that can work
    assert length <= tile and length % 4 == 0 and all(s % 4 == 0 for s in starts)
    assert starts[0] == 0 and starts[-1] + length == size
    strides = np.diff(starts)
    assert strides.max() - strides.min() <= 4          # evenly placed
    assert length - strides.max() >= overlap            # every neighbour overlaps enough
    assert n * length <= size + (n - 1) * overlap + 4 * n  # no more pixels than needed
    assert tile_layout(tile, tile, overlap) == ([0], tile)


def test_tile_weights_partition_the_overlap():
    w = feather_1d(256, 120, 120)
    assert w[:CONTEXT].max() == 0.0 and w[-CONTEXT:].max() == 0.0 and w[120:136].min() == 1.0
    # two neighbours overlapping by 120 cross-fade to exactly 1 over the overlap
    left, right = feather_1d(256, 0, 120)[-120:], feather_1d(256, 120, 0)[:120]
    np.testing.assert_allclose(left + right, 1.0, atol=1e-6)


class CountingIdentity(torch.nn.Module):
    """A stand-in generator that returns its input and counts the pixels it is given."""

    def __init__(self):
        super().__init__()
        self.pixels, self.calls = 0, 0

    def forward(self, x):
        self.pixels += x.shape[-2] * x.shape[-1]
        self.calls += 1
        return x


def test_tiles_compute_about_the_promised_share_of_pixels():
    """2896x1932 at the defaults: 12 tiles used to compute 2.25x the image's pixels; evenly
    placed tiles of the least size compute (stride + overlap)^2 / stride^2 ~ 1.3x of the padded
    image."""
    ident = CountingIdentity()
    Cartoonizer(ident, tile=1024, overlap=128).stylize(np.zeros((1932, 2896, 3), np.uint8))
    padded = (1932 + 2 * CONTEXT) * (2896 + 2 * CONTEXT)
    assert ident.calls == 12 and ident.pixels / padded < 1.3 and ident.pixels / (1932 * 2896) < 1.4


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
