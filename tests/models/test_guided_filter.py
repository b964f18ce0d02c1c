"""Guided filter and box filter: kornia-style checks plus two independent oracles
(a direct numpy window-sum implementation and OpenCV's cv2.ximgproc.guidedFilter)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.guided_filter import GuidedFilter, box_filter, guided_filter

cv2 = pytest.importorskip("cv2")


# ----------------------------------------------------------------------------- numpy oracle

def _np_window_mean(x: np.ndarray, r: int) -> np.ndarray:
    """(H, W) -> mean over the in-image pixels of every (2r+1)^2 window, by explicit loops."""
    h, w = x.shape
    out = np.empty_like(x, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            win = x[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]
            out[i, j] = win.sum() / win.size  # win.size = number of in-image pixels
    return out


def _np_guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al. per-channel guided filter; guide (1 or C, H, W), src (C, H, W), float64."""
    out = np.empty(src.shape, dtype=np.float64)
    for c in range(src.shape[0]):
        g = guide[c if guide.shape[0] > 1 else 0].astype(np.float64)
        p = src[c].astype(np.float64)
        mean_g, mean_p = _np_window_mean(g, r), _np_window_mean(p, r)
        cov = _np_window_mean(g * p, r) - mean_g * mean_p
        var = _np_window_mean(g * g, r) - mean_g ** 2
        a = cov / (var + eps)
        b = mean_p - a * mean_g
        out[c] = _np_window_mean(a, r) * g + _np_window_mean(b, r)
    return out


# ------------------------------------------------------------------------------ smoke, shapes

def test_smoke():
    x = torch.rand(2, 3, 12, 10) * 2 - 1
    y = guided_filter(x, x, 1, 1e-2)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("gc", [1, 3])
@pytest.mark.parametrize("h,w", [(5, 7), (16, 9), (1, 1), (3, 40)])
@pytest.mark.parametrize("r", [0, 1, 5])
def test_shapes(gc, h, w, r):
    src = torch.rand(2, 3, h, w)
    guide = torch.rand(2, gc, h, w)
    assert guided_filter(guide, src, r, 0.1).shape == (2, 3, h, w)
    assert box_filter(src, r).shape == (2, 3, h, w)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_preserved(dtype):
    x = torch.rand(1, 3, 8, 8).to(dtype)
    assert guided_filter(x, x, 1, 0.01).dtype == dtype


# --------------------------------------------------------------------------------- error paths

@pytest.mark.parametrize("guide_shape,src_shape", [
    ((1, 3, 8, 8), (3, 8, 8)),          # src not 4D
    ((3, 8, 8), (1, 3, 8, 8)),          # guide not 4D
])
def test_error_not_4d(guide_shape, src_shape):
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        guided_filter(torch.rand(guide_shape), torch.rand(src_shape), 1, 0.1)


@pytest.mark.parametrize("guide_shape", [
    (1, 2, 8, 8),   # 2 channels for a 3-channel src
    (2, 3, 8, 8),   # batch mismatch
    (1, 3, 8, 7),   # size mismatch
])
def test_error_guide_mismatch(guide_shape):
    with pytest.raises(ValueError, match=r"1 or 3, H=8, W=8"):
        guided_filter(torch.rand(guide_shape), torch.rand(1, 3, 8, 8), 1, 0.1)


def test_error_integer_input():
    with pytest.raises(ValueError, match="floating"):
        guided_filter(torch.ones(1, 1, 4, 4, dtype=torch.int64), torch.rand(1, 1, 4, 4), 1, 0.1)


def test_box_filter_errors():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        box_filter(torch.rand(3, 4, 4), 1)
    with pytest.raises(ValueError, match=">= 0"):
        box_filter(torch.rand(1, 1, 4, 4), -1)


# ---------------------------------------------------------------------- function == module

def test_module_equals_function():
    x = torch.rand(2, 3, 9, 11)
    g = torch.rand(2, 1, 9, 11)
    m = GuidedFilter(r=2, eps=0.05)
    torch.testing.assert_close(m(g, x), guided_filter(g, x, 2, 0.05), rtol=0, atol=0)
    assert "r=2" in repr(m) and "eps=0.05" in repr(m)


# ---------------------------------------------------------------------------------- gradcheck

@pytest.mark.parametrize("gc", [1, 2])
def test_gradcheck(gc):
    torch.manual_seed(0)
    guide = torch.rand(1, gc, 5, 6, dtype=torch.float64, requires_grad=True)
    src = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g, s: guided_filter(g, s, 1, 0.1), (guide, src))


def test_gradcheck_box_filter():
    x = torch.rand(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: box_filter(t, 2), (x,))


# --------------------------------------------------------------------------------- invariants

@pytest.mark.parametrize("r", [1, 5])
def test_constant_image_is_unchanged(r):
    src = torch.full((2, 3, 13, 9), -0.37)
    for guide in (src, torch.rand(2, 1, 13, 9), torch.rand(2, 3, 13, 9)):
        torch.testing.assert_close(guided_filter(guide, src, r, 0.2), src, rtol=0, atol=1e-5)


def test_src_equals_guide_small_eps_keeps_image():
    # with src == guide and eps -> 0, a = 1, b = 0: the filter is the identity
    x = torch.rand(1, 3, 10, 10, dtype=torch.float64)
    torch.testing.assert_close(guided_filter(x, x, 2, 1e-12), x, rtol=1e-6, atol=1e-6)


def test_r0_box_is_identity():
    x = torch.rand(1, 2, 6, 5)
    torch.testing.assert_close(box_filter(x, 0), x)


def test_box_counts_at_border():
    n = box_filter(torch.ones(1, 1, 4, 6), 1)[0, 0]
    assert n[0, 0] == 4 and n[0, 1] == 6 and n[1, 1] == 9 and n[3, 5] == 4


def test_does_not_modify_inputs():
    g, s = torch.rand(1, 1, 6, 6), torch.rand(1, 3, 6, 6)
    g0, s0 = g.clone(), s.clone()
    guided_filter(g, s, 1, 0.01)
    assert torch.equal(g, g0) and torch.equal(s, s0)


# ------------------------------------------------------------------------------ numpy oracle

@pytest.mark.parametrize("r", [1, 5])
@pytest.mark.parametrize("gc", [1, 3])
def test_matches_numpy_window_oracle(r, gc):
    rng = np.random.default_rng(r * 10 + gc)
    h, w = 13, 11  # r=5 windows reach both borders
    src = rng.uniform(-1, 1, (3, h, w))
    guide = rng.uniform(-1, 1, (gc, h, w))
    eps = 0.05
    expected = _np_guided_filter(guide, src, r, eps)
    got = guided_filter(torch.from_numpy(guide)[None], torch.from_numpy(src)[None], r, eps)[0]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("r", [1, 5])
def test_box_filter_matches_numpy_window_sum(r):
    rng = np.random.default_rng(r)
    x = rng.normal(size=(9, 14))
    expected = np.array([[x[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1].sum()
                          for j in range(14)] for i in range(9)])
    got = box_filter(torch.from_numpy(x)[None, None], r)[0, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------- OpenCV

def test_box_filter_matches_opencv():
    rng = np.random.default_rng(7)
    img = rng.random((20, 17), dtype=np.float32)
    for r in (1, 3):
        expected = cv2.boxFilter(img, -1, (2 * r + 1, 2 * r + 1), normalize=False,
                                 borderType=cv2.BORDER_CONSTANT)
        got = box_filter(torch.from_numpy(img)[None, None], r)[0, 0].numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# OpenCV's guided filter (opencv-contrib 4.11) with a 1-channel float32 guide. Its ``eps`` is
# added to var(guide) on the image's own scale, exactly like ours: no eps**2 and no 255**2
# scaling for float32 input (checked: passing eps**2 to OpenCV differs by ~1e-2 in the interior,
# passing eps agrees to ~4e-6). Borders differ (OpenCV's box mean reflects, ours averages only
# in-image pixels), so only pixels farther than 2r from the border are comparable: the box means
# of a and b at those pixels use windows of a, b values whose own windows lie inside the image.
#
# Generated with:
#   rng = np.random.default_rng(2020)
#   guide = rng.random((16, 16), dtype=np.float32)
#   src = (guide + 0.3 * rng.random((16, 16), dtype=np.float32)).astype(np.float32)
#   out = cv2.ximgproc.guidedFilter(guide, src, 2, 0.01)
#   out[6:10, 6:10]
GOLDEN_R, GOLDEN_EPS = 2, 0.01
GOLDEN_PATCH = np.array([
    [0.84820122, 0.47055620, 0.93953186, 1.03407454],
    [0.68902534, 0.89008927, 0.39367932, 0.72028595],
    [0.86471361, 0.86024189, 0.26891455, 0.78224844],
    [0.67516011, 0.98292458, 0.63187051, 0.39699376],
], dtype=np.float32)


def _golden_inputs():
    rng = np.random.default_rng(2020)
    guide = rng.random((16, 16), dtype=np.float32)
    src = (guide + 0.3 * rng.random((16, 16), dtype=np.float32)).astype(np.float32)
    return guide, src


def test_golden_opencv_patch():
    guide, src = _golden_inputs()
    got = guided_filter(torch.from_numpy(guide)[None, None], torch.from_numpy(src)[None, None],
                        GOLDEN_R, GOLDEN_EPS)[0, 0].numpy()
    np.testing.assert_allclose(got[6:10, 6:10], GOLDEN_PATCH, rtol=1e-4, atol=2e-5)


@pytest.mark.skipif(not hasattr(cv2, "ximgproc"), reason="needs opencv-contrib (cv2.ximgproc)")
@pytest.mark.parametrize("r,eps", [(1, 1e-2), (2, 5e-3), (3, 0.2)])
def test_live_opencv_interior(r, eps):
    rng = np.random.default_rng(r)
    h, w = 24, 19
    guide = rng.uniform(-1, 1, (h, w)).astype(np.float32)
    src = rng.uniform(-1, 1, (h, w)).astype(np.float32)
    expected = cv2.ximgproc.guidedFilter(guide, src, r, eps)
    got = guided_filter(torch.from_numpy(guide)[None, None], torch.from_numpy(src)[None, None],
                        r, eps)[0, 0].numpy()
    m = 2 * r
    np.testing.assert_allclose(got[m:-m, m:-m], expected[m:-m, m:-m], rtol=1e-4, atol=5e-5)
    # the border does differ (reflect vs in-image mean): the interior restriction is needed
    assert np.abs(got - expected).max() > 1e-4


@pytest.mark.skipif(not hasattr(cv2, "ximgproc"), reason="needs opencv-contrib (cv2.ximgproc)")
def test_live_opencv_mono_guide_colour_src():
    # a 1-channel guide filters each src channel independently, in OpenCV and here
    rng = np.random.default_rng(11)
    guide = rng.random((20, 20), dtype=np.float32)
    src = rng.random((20, 20, 3), dtype=np.float32)
    r, eps = 2, 0.02
    expected = cv2.ximgproc.guidedFilter(guide, src, r, eps)  # (H, W, 3)
    got = guided_filter(torch.from_numpy(guide)[None, None],
                        torch.from_numpy(src).permute(2, 0, 1)[None], r, eps)[0]
    got = got.permute(1, 2, 0).numpy()
    m = 2 * r
    np.testing.assert_allclose(got[m:-m, m:-m], expected[m:-m, m:-m], rtol=1e-4, atol=5e-5)
