"""Style statistics against hand-made images."""
import numpy as np
import pytest

from evaluation.style import distinct_colours, edge_density, flatness, style_stats


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


def test_style_stats_keys_and_empty_input():
    s = style_stats([two_colour_image()] * 2, "fast", 16)
    assert s["n"] == 2 and s["distinct_colours"] == 2
    assert style_stats([])["flatness"] is None
