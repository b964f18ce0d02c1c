"""Structure representation (representations/structure.py and its superpixel backends).

Oracles: scikit-image (SLIC labels, rgb2lab, gaussian) and plain per-label np.mean; quality
of the ``fast`` backend is measured against the faithful ``slic`` one on real faces.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from representations import superpixel_fast, superpixel_slic, superpixel_sscolor
from representations.structure import STRUCTURE_METHODS, Structure, structure
from representations.superpixel_fast import absorb_fragments, gaussian_blur, rgb_to_lab, slic_fill
from representations.superpixel_sscolor import adaptive_colour


def superpixel_labels(images: torch.Tensor, method: str, seg_num: int) -> torch.Tensor:
    """(B, H, W) labels of each backend, as structure() gets them (fast: its own [0, 1] stretch;
    slic/sscolor: the clamped [0, 1] image)."""
    if method == "fast":
        return superpixel_fast.slic_fill(images, seg_num)[1]
    arr = ((images.clamp(-1, 1).float() + 1) / 2).permute(0, 2, 3, 1).numpy()
    fn = superpixel_slic.slic_labels if method == "slic" else superpixel_sscolor.sscolor_labels
    return torch.from_numpy(np.stack([fn(im, seg_num) for im in arr]))


FIXTURE_PHOTOS = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "ffhq-mini" / "photos"
SIZE = 128
SEG_NUM = 200
# quality bar of the fast backend (issue): fill error within 10% of slic's, region count
# within 30% of seg_num
MAE_RATIO_MAX = 1.10
REGION_TOLERANCE = 0.30


def _resize(rgb_uint8: np.ndarray, size: int = SIZE) -> np.ndarray:
    import cv2

    return cv2.resize(rgb_uint8, (size, size), interpolation=cv2.INTER_AREA)


def _to_tensor(images01: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) [0, 1] -> (B, 3, H, W) [-1, 1] float32."""
    return torch.from_numpy(np.ascontiguousarray(images01, dtype=np.float32)).permute(0, 3, 1, 2) * 2 - 1


def _to01(t: torch.Tensor) -> np.ndarray:
    return ((t.permute(0, 2, 3, 1).double() + 1) / 2).numpy()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return _resize(data.astronaut())[None].astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    paths = sorted(FIXTURE_PHOTOS.glob("*.jpg")) if FIXTURE_PHOTOS.is_dir() else []
    if not paths:
        pytest.skip(f"../shared/fixtures absent: no photos in {FIXTURE_PHOTOS.resolve()}")
    import cv2

    return np.stack([_resize(cv2.imread(str(p))[:, :, ::-1]) for p in paths]).astype(np.float32) / 255.0


def _distinct(labels: torch.Tensor) -> list[int]:
    return [len(torch.unique(lab)) for lab in labels]


def _components(labels: torch.Tensor) -> list[int]:
    """Connected regions per image (4-connectivity), scipy as the oracle."""
    from scipy import ndimage

    return [
        sum(ndimage.label(lab == v)[1] for v in np.unique(lab)) for lab in labels.numpy()
    ]


# --- contract --------------------------------------------------------------------------


@pytest.mark.parametrize("method", STRUCTURE_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_range_no_grad(method, dtype):
    x = (torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(dtype)
    x.requires_grad_(True)
    y = structure(x, method=method, seg_num=30)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert not y.requires_grad
    assert float(y.min()) >= -1 and float(y.max()) <= 1


def test_module_matches_function(astronaut):
    x = _to_tensor(astronaut)
    assert torch.equal(Structure("fast", seg_num=100)(x), structure(x, "fast", seg_num=100))


def test_constant_image_stays_constant():
    x = torch.full((2, 3, 32, 32), 0.25)
    for method in STRUCTURE_METHODS:
        y = structure(x, method=method, seg_num=16)
        # sscolor's power curve divides by the max, so only "flat" is invariant there
        if method == "sscolor":
            assert torch.allclose(y, y[:, :, :1, :1].expand_as(y))
        else:
            assert torch.allclose(y, x, atol=1e-6)


@pytest.mark.parametrize(
    "shape", [(3, 32, 32), (2, 1, 32, 32), (2, 4, 32, 32), (2, 32, 32, 3), (1, 2, 3, 32, 32)]
)
def test_bad_shape_raises(shape):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        structure(torch.zeros(shape))


def test_unknown_method_lists_choices():
    with pytest.raises(ValueError, match="fast, slic, sscolor"):
        structure(torch.zeros(1, 3, 16, 16), method="watershed")
    with pytest.raises(ValueError, match="fast, slic, sscolor"):
        Structure("watershed")


@pytest.mark.parametrize("method", ["fast", "slic"])
def test_a_generators_overshoot_is_kept_in_the_fill_without_a_warning(method):
    """The generator has no output activation, so its output leaves [-1, 1] (the demo's styles:
    -2.1 .. 1.7; early steps past +-4). White-box fills superpixels of the raw output with their mean: the fill
    follows the values, and nothing is said about them."""
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x[:, :, :8] = 1.8                  # a bright band beyond 1, a region of its own
    x[:, :, -6:] = -6.0                # early adversarial steps go further (the demo: past -4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = structure(x, method=method, seg_num=16)
        Structure(method, seg_num=16)(x)
    assert float(y.max()) > 1.5 and float(y.min()) < -5
    # every superpixel holds the mean of the real values over it
    labels = superpixel_labels(x, method=method, seg_num=16)
    for b in range(2):
        for lab in labels[b].unique()[:5]:
            m = labels[b] == lab
            torch.testing.assert_close(y[b][:, m].mean(1), x[b][:, m].mean(1), atol=1e-5, rtol=0)


def test_a_batch_far_outside_warns_once():
    x = torch.linspace(0, 255, 3 * 32 * 32).reshape(1, 3, 32, 32)  # [0, 255] by mistake
    with pytest.warns(RuntimeWarning, match=r"far outside \[-1, 1\].*\[0, 255\]"):
        structure(x, method="fast", seg_num=16)
    op = Structure("fast", seg_num=16)  # the trainer's operator warns once, whatever the filters
    with pytest.warns(RuntimeWarning, match=r"far outside"):
        op(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would fail here
        op(x)
    assert op.calls == 2


def test_sscolor_fills_within_range():
    x = torch.linspace(-3, 3, 3 * 32 * 32).reshape(1, 3, 32, 32)
    y = structure(x, method="sscolor", seg_num=16)
    assert float(y.min()) >= -1 and float(y.max()) <= 1


# --- building blocks against skimage -----------------------------------------------------


def test_rgb_to_lab_matches_skimage():
    from skimage.color import rgb2lab

    rng = np.random.default_rng(0)
    rgb = rng.random((2, 17, 19, 3))
    # corners of the cube and values around the sRGB / Lab knees
    rgb[0, 0, :8] = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])
    rgb[0, 1, :3] = [[0.04045, 0.04, 0.05], [0.001, 0.002, 0.003], [1.0, 1.0, 1.0]]
    ours = rgb_to_lab(torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, rgb2lab(rgb), atol=1e-6)
    ours32 = rgb_to_lab(torch.from_numpy(rgb).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours32, rgb2lab(rgb), atol=2e-3)


def test_gaussian_blur_matches_skimage():
    from skimage.filters import gaussian

    img = np.random.default_rng(1).random((1, 3, 20, 13))
    ours = gaussian_blur(torch.from_numpy(img), 1.0).numpy()
    ref = gaussian(img, sigma=(0, 0, 1, 1), mode="reflect", preserve_range=True)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


# --- every region is flat and holds the mean of its source ------------------------------


def _assert_mean_filled(out01: np.ndarray, src01: np.ndarray, labels: np.ndarray, atol: float) -> None:
    for lab in np.unique(labels):
        mask = labels == lab
        region = out01[mask]
        np.testing.assert_allclose(region, np.broadcast_to(region[0], region.shape), atol=atol)
        np.testing.assert_allclose(region[0], src01[mask].mean(0), atol=atol)


def test_slic_fill_is_skimage_slic_mean(astronaut):
    from skimage.segmentation import slic

    x = _to_tensor(astronaut)
    src01 = _to01(x)[0]
    labels = slic(src01, n_segments=SEG_NUM, compactness=10, sigma=1, convert2lab=True, start_label=0)
    out01 = _to01(structure(x, method="slic", seg_num=SEG_NUM))[0]
    _assert_mean_filled(out01, src01, labels, atol=1e-6)


def test_fast_fill_is_mean_of_its_labels(astronaut):
    x = _to_tensor(astronaut)
    labels = superpixel_labels(x, "fast", SEG_NUM)[0].numpy()
    # float32 sums over ~80 pixels: ~1e-6 rounding
    _assert_mean_filled(_to01(structure(x, "fast", SEG_NUM))[0], _to01(x)[0], labels, atol=1e-5)


# --- quality of fast vs slic -------------------------------------------------------------


def _quality(images01: np.ndarray) -> dict:
    x = _to_tensor(images01)
    mae = {m: (structure(x, m, SEG_NUM) - x).abs().mean((1, 2, 3)).numpy() / 2 for m in ("slic", "fast")}
    labels = {m: superpixel_labels(x, m, SEG_NUM) for m in ("slic", "fast")}
    # a region is a connected patch of one colour: count components, not label ids (k-means
    # labels could own scattered islands)
    regions = {m: _components(lab) for m, lab in labels.items()}
    return {"mae": mae, "regions": regions}


def _assert_fast_quality(q: dict) -> None:
    ratio = q["mae"]["fast"].mean() / q["mae"]["slic"].mean()
    per_image = q["mae"]["fast"] / q["mae"]["slic"]
    assert ratio <= MAE_RATIO_MAX, f"fast/slic MAE {ratio:.3f}; per image {np.round(per_image, 3)}"
    lo, hi = SEG_NUM * (1 - REGION_TOLERANCE), SEG_NUM * (1 + REGION_TOLERANCE)
    for method in ("fast", "slic"):
        counts = q["regions"][method]
        assert all(lo <= n <= hi for n in counts), f"{method} region counts {counts}"


def test_backends_on_astronaut(astronaut):
    _assert_fast_quality(_quality(astronaut))
    x = _to_tensor(astronaut)
    y = structure(x, "sscolor", SEG_NUM)
    # felzenszwalb(min_size=100) leaves fewer than 200 regions at 128x128: nothing to merge,
    # but every region must be flat
    labels = superpixel_labels(x, "sscolor", SEG_NUM)[0].numpy()
    assert 1 < len(np.unique(labels)) <= SEG_NUM
    out = _to01(y)[0]
    for lab in np.unique(labels):
        region = out[labels == lab]
        assert np.ptp(region, axis=0).max() < 1e-6


def test_fast_quality_on_face_fixtures(faces):
    _assert_fast_quality(_quality(faces))


def test_fast_variants_keep_mean_fill(astronaut):
    """Full-resolution clustering / refinement / no clean-up: still a per-label mean fill."""
    x01 = torch.from_numpy(astronaut).permute(0, 3, 1, 2)
    for kwargs in ({"coarse": 1}, {"refine": True}, {"connectivity": False}, {"n_iter": 0}, {"window": 3},
                   {"window": 3, "coarse": 1}):
        filled, labels = slic_fill(x01, SEG_NUM, **kwargs)
        assert labels.shape == (1, SIZE, SIZE)
        _assert_mean_filled(filled[0].permute(1, 2, 0).double().numpy(), astronaut[0], labels[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("window", [2, 3])
@pytest.mark.parametrize("coarse", [1, 2])
def test_layout_covers_every_pixel_once_with_its_nearby_seeds(window, coarse):
    h = w = SIZE // coarse
    rows, cols, step, start = superpixel_fast.grid_shape(SIZE, SIZE, SEG_NUM)
    perm, cand, penalty, m = superpixel_fast._layout(h, w, rows, cols, coarse, torch.device("cpu"), step, start, window)
    slots = perm.view(-1, m)
    assert sorted(perm[perm < h * w].tolist()) == list(range(h * w))
    assert cand.shape[1] == window * window
    # every pixel can reach the seed nearest to it (in grid steps) and seeds within 1 step
    seed_y = (start + step * torch.arange(rows)).float()
    seed_x = (start + step * torch.arange(cols)).float()
    for cell in range(slots.shape[0]):
        live = cand[cell][penalty[cell] == 0]
        for pix in slots[cell][slots[cell] < h * w].tolist():
            y = (pix // w) * coarse + (coarse - 1) / 2
            x = (pix % w) * coarse + (coarse - 1) / 2
            near = ((seed_y - y).abs() < step)[:, None] & ((seed_x - x).abs() < step)[None, :]
            assert set(near.reshape(-1).nonzero().view(-1).tolist()) <= set(live.tolist())


def test_fast_quality_on_face_fixtures_window3(faces, monkeypatch):
    monkeypatch.setattr(superpixel_fast, "WINDOW", 3)
    _assert_fast_quality(_quality(faces))


def test_absorb_fragments_keeps_images_and_rows_apart():
    """The clean-up runs on the flat pixel sequence: a row end is no neighbour of the next
    row's start, an image's last row none of the next image's first row."""
    labels = torch.zeros(2, 6, 6, dtype=torch.long)
    labels[0, :, 5] = 1  # a big label-1 column at the right edge of image 0
    labels[1, 0, 0] = 1  # a 1-pixel label-1 island in image 1 (first pixel, after image 0's last)
    labels[0, 3, 0] = 1  # ... and one at the left edge of image 0, after the column's row end
    out = absorb_fragments(labels, min_size=3)
    expected = torch.zeros_like(labels)
    expected[0, :, 5] = 1
    assert torch.equal(out, expected)


def test_absorb_fragments_joins_islands_to_closest_colour():
    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[:, :, 6:] = 1
    labels[:, 2:4, 2:4] = 1  # 4-pixel island of label 1 inside label 0
    labels[:, 8, 9] = 0  # 1-pixel island of label 0 inside label 1
    out = absorb_fragments(labels, min_size=5)
    expected = torch.zeros_like(labels)
    expected[:, :, 6:] = 1
    assert torch.equal(out, expected)
    # colour decides between two large neighbours: the island pixel at the border of 0 | 1
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, :, 4:] = 1
    labels[:, 3, 3:5] = 2  # a 2-pixel fragment of label 2 straddling the border
    colours = torch.zeros(1, 3, 8, 8)
    colours[:, :, :, 4:] = 1.0
    colours[:, :, 3, 3:5] = 0.9  # close to label 1's colour
    out = absorb_fragments(labels, min_size=3, colours=colours)
    assert out[0, 3, 4] == 1 and (out != 2).all()
    # big components are left alone
    assert torch.equal(absorb_fragments(expected, min_size=5), expected)


# --- sscolor ------------------------------------------------------------------------------


def _quadrants(size: int = 96, noise: float = 0.06, seed: int = 0) -> np.ndarray:
    colours = np.array([[0.9, 0.2, 0.2], [0.2, 0.8, 0.3], [0.2, 0.3, 0.9], [0.9, 0.9, 0.3]])
    img = np.zeros((size, size, 3))
    half = size // 2
    for q, (ys, xs) in enumerate([(slice(0, half), slice(0, half)), (slice(0, half), slice(half, None)),
                                  (slice(half, None), slice(0, half)), (slice(half, None), slice(half, None))]):
        img[ys, xs] = colours[q]
    img += np.random.default_rng(seed).normal(0, noise, img.shape)
    return np.clip(img, 0, 1)


def test_sscolor_merges_down_to_seg_num_regions():
    from skimage.segmentation import felzenszwalb

    img = _quadrants()
    initial = len(np.unique(felzenszwalb(img, scale=10, sigma=0.8, min_size=100)))
    seg_num = 4
    assert initial > 2 * seg_num  # otherwise the test would not exercise the merging
    x = _to_tensor(img[None])
    labels = superpixel_labels(x, "sscolor", seg_num)[0].numpy()
    assert len(np.unique(labels)) == seg_num
    out = _to01(structure(x, "sscolor", seg_num))[0]
    half = img.shape[0] // 2
    for ys in (slice(0, half), slice(half, None)):
        for xs in (slice(0, half), slice(half, None)):
            assert len(np.unique(labels[ys, xs])) == 1, "a quadrant was split"
            assert np.ptp(out[ys, xs].reshape(-1, 3), axis=0).max() < 1e-6, "quadrant not flat"


def test_sscolor_power_curve_peaks_at_one():
    x = _to_tensor(_quadrants()[None] * 0.5)
    assert float(structure(x, "sscolor", 4, power=1.2).max()) == pytest.approx(1.0)


def test_adaptive_colour_mean_mix_median():
    # three regions of 4 pixels, on the 0..255 scale: std 0 (mean), ~27 (mix), ~70 (median)
    vals = np.array([[10, 10, 10, 10], [100, 100, 100, 160], [0, 0, 0, 200]], dtype=np.float64)
    image = np.repeat(vals.reshape(3, 4, 1), 3, axis=2) / 255.0  # (3 rows, 4 cols, RGB)
    labels = np.repeat(np.arange(3)[:, None], 4, axis=1)
    out = adaptive_colour(image, labels)[:, 0, 0] * 255.0
    mean1, median1 = vals[1].mean(), np.median(vals[1])
    np.testing.assert_allclose(out, [10.0, 0.5 * (mean1 + median1), 0.0], atol=1e-9)
