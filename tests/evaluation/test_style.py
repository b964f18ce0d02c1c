"""Style statistics against hand-made images."""
import numpy as np
import pytest

from evaluation.style import (STYLE_KEYS, distinct_colours, edge_density, flatness,
                              luminance_slope, smooth_share, style_stats)


def two_colour_image(size=32):
    im = np.zeros((size, size, 3), np.uint8)
    im[:, size // 2:] = (200, 40, 40)
    return im


def test_distinct_colours_counts_quantised_colours():
    assert distinct_colours(two_colour_image()) == 2
    # 5 bits per channel: values 0..7 fall into one bin
    im = np.zeros((4, 4, 3), np.uint8)
    im[0, 0] = 7
    assert distinct_colours(im) == 1
    im[0, 1] = 8
    assert distinct_colours(im) == 2


def test_edge_density_zero_for_flat_and_positive_for_a_step():
    flat = np.full((32, 32, 3), 128, np.uint8)
    assert edge_density(flat) == 0.0
    d = edge_density(two_colour_image())
    assert 0 < d < 0.2  # one vertical edge, one or two pixels wide


@pytest.mark.parametrize("backend", ["fast", "slic"])
def test_flatness_of_flat_regions_is_zero_and_of_noise_positive(backend):
    const = np.full((2, 32, 32, 3), 90, np.uint8)
    assert max(flatness(const, backend, seg_num=16)) < 1e-3
    noise = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    assert flatness(noise, backend, seg_num=16)[0] > 0.1


def ramp(slope, size=32, channel=None):
    """A horizontal ramp rising by ``slope`` grey levels per pixel (gray, or one channel)."""
    row = np.arange(size) * slope
    im = np.zeros((size, size, 3), np.float64)
    if channel is None:
        im[:] = row[None, :, None]
    else:
        im[..., channel] = row[None, :]
    return np.clip(np.rint(im), 0, 255).astype(np.uint8)


def test_luminance_slope_is_grey_levels_per_pixel():
    # Interior of a ramp rising 3 per pixel: Sobel x = 4 * (I[x+1] - I[x-1]) = 24, / 8 = 3;
    # at the replicated borders the difference spans one pixel: 4 * 3 / 8 = 1.5.
    s = luminance_slope(ramp(3))
    assert np.allclose(s[:, 1:-1], 3.0) and np.allclose(s[:, [0, -1]], 1.5)
    # Rec. 601 weights: a green-only ramp of 10 per pixel has luminance slope 5.87
    assert np.allclose(luminance_slope(ramp(10, size=24, channel=1))[:, 1:-1], 5.87, atol=1e-4)


def test_smooth_share_hand_values():
    assert smooth_share(np.full((16, 16, 3), 77, np.uint8)) == 1.0
    # A step between two flat halves (columns 0-15 | 16-31): only columns 15 and 16 see it.
    assert smooth_share(two_colour_image()) == pytest.approx(30 / 32)
    # A ramp of 3 per pixel (interior slope 3, border columns 1.5) against thresholds
    assert smooth_share(ramp(3)) == 0.0
    assert smooth_share(ramp(3), slope=2.0) == pytest.approx(2 / 32)
    assert smooth_share(ramp(3), slope=4.0) == 1.0
    # Luminance, not RGB: a red step of 6 levels is a luminance step of 0.299 * 6 = 1.794,
    # a slope of 4 * 1.794 / 8 = 0.897 < 1 beside it, so the whole image is smooth; a green
    # step of 6 (0.587 * 6 * 4 / 8 = 1.761) is not.
    for channel, expected in ((0, 1.0), (1, 30 / 32)):
        im = np.zeros((32, 32, 3), np.uint8)
        im[:, 16:, channel] = 6
        assert smooth_share(im) == pytest.approx(expected)
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert smooth_share(noise) < 0.01


def test_style_stats_keys_mixed_sizes_and_empty_input():
    s = style_stats([two_colour_image()] * 2, "fast", 16)
    assert s["n"] == 2 and s["distinct_colours"] == 2
    assert set(s) == {*STYLE_KEYS, "n"} and s["smooth_share"] == pytest.approx(30 / 32)
    mixed = style_stats([two_colour_image(32), two_colour_image(64)], "fast", 16)
    assert mixed["smooth_share"] == pytest.approx((30 / 32 + 62 / 64) / 2)
    assert style_stats([])["flatness"] is None and style_stats([])["smooth_share"] is None
