"""Conv2dSame (TF "SAME" padding) and upsample2x_tf (TF1 resize_bilinear) against TF's rules,
computed by hand here rather than taken from the code under test."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.layers import Conv2dSame, same_padding, upsample2x_tf


def _tf_same(size: int, k: int, s: int) -> tuple[int, int]:
    # TF's documented rule: out = ceil(in / s); pad_total = max((out-1)*s + k - in, 0);
    # pad_before = pad_total // 2 (the extra one goes after, i.e. bottom/right).
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("size,k,s,expected", [
    (4, 3, 2, (0, 1)),   # even size, stride 2: one extra row at the bottom only
    (5, 3, 2, (1, 1)),   # odd size, stride 2: symmetric
    (8, 3, 1, (1, 1)),
    (7, 7, 1, (3, 3)),
    (6, 7, 2, (2, 3)),
    (1, 3, 2, (1, 1)),
    (9, 1, 1, (0, 0)),
])
def test_same_padding_table(size, k, s, expected):
    assert same_padding(size, k, s) == expected == _tf_same(size, k, s)


def test_smoke_and_shapes():
    torch.manual_seed(0)
    conv = Conv2dSame(3, 5, 3, stride=2)
    for h, w in [(8, 8), (7, 9), (10, 5), (1, 1)]:
        y = conv(torch.randn(2, 3, h, w))
        assert y.shape == (2, 5, math.ceil(h / 2), math.ceil(w / 2))
    conv1 = Conv2dSame(3, 4, 7)
    assert conv1(torch.randn(1, 3, 9, 6)).shape == (1, 4, 9, 6)


def test_stride2_even_pads_bottom_right():
    torch.manual_seed(0)
    conv = Conv2dSame(3, 4, 3, stride=2)
    x = torch.randn(2, 3, 8, 10)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-6)
    # and it is NOT PyTorch's symmetric padding=1 (that would shift by half a pixel)
    sym = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
    assert sym.shape == expected.shape
    assert not torch.allclose(sym, expected)


def test_stride2_odd_pads_symmetric():
    torch.manual_seed(1)
    conv = Conv2dSame(3, 4, 3, stride=2)
    x = torch.randn(1, 3, 9, 7)
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-6)


def test_stride2_mixed_even_odd():
    torch.manual_seed(2)
    conv = Conv2dSame(2, 3, 3, stride=2)
    x = torch.randn(1, 2, 6, 7)  # H even -> (0, 1), W odd -> (1, 1)
    expected = F.conv2d(F.pad(x, (1, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-6)


def test_stride1_equals_symmetric_padding():
    torch.manual_seed(3)
    conv = Conv2dSame(3, 4, 7)
    x = torch.randn(1, 3, 10, 11)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=3),
                               rtol=0, atol=1e-6)


def test_stride2_by_hand_single_pixel():
    # 1 channel, all-ones 3x3 kernel, no bias on a 4x4 input: TF SAME stride 2 pads one zero row
    # and column at the bottom/right, so out[i, j] = sum of x[2i:2i+3, 2j:2j+3] (clipped).
    conv = Conv2dSame(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    xn = x[0, 0]
    expected = torch.tensor([[xn[0:3, 0:3].sum(), xn[0:3, 2:4].sum()],
                             [xn[2:4, 0:3].sum(), xn[2:4, 2:4].sum()]])
    torch.testing.assert_close(conv(x)[0, 0], expected)


def test_gradcheck_float64():
    torch.manual_seed(0)
    conv = Conv2dSame(2, 2, 3, stride=2).double()
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))


# ---------------------------------------------------------------------------- upsample2x_tf

def test_upsample_by_hand_1d_row():
    x = torch.tensor([[[[0.0, 2.0, 6.0]]]])  # (1, 1, 1, 3)
    y = upsample2x_tf(x)
    # out[2k] = in[k], out[2k+1] = (in[k] + in[k+1]) / 2, last one repeats the edge;
    # one input row -> both output rows equal it.
    row = torch.tensor([0.0, 1.0, 2.0, 4.0, 6.0, 6.0])
    torch.testing.assert_close(y, row.expand(1, 1, 2, 6))


def test_upsample_by_hand_2x2():
    x = torch.tensor([[[[1.0, 3.0], [5.0, 11.0]]]])
    expected = torch.tensor([[[
        [1.0, 2.0, 3.0, 3.0],
        [3.0, 5.0, 7.0, 7.0],     # (row0 + row1) / 2
        [5.0, 8.0, 11.0, 11.0],
        [5.0, 8.0, 11.0, 11.0],   # last row repeats the edge
    ]]])
    torch.testing.assert_close(upsample2x_tf(x), expected)


def test_upsample_matches_tf_coordinate_rule():
    # TF1 resize_bilinear(align_corners=False, half_pixel_centers=False):
    # src = dst * in / out, clamp the upper neighbour to in-1.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 3, 5)
    h, w = x.shape[-2:]

    def interp_matrix(n):
        m = torch.zeros(2 * n, n)
        for d in range(2 * n):
            s = d * n / (2 * n)
            lo = int(math.floor(s))
            hi = min(lo + 1, n - 1)
            frac = s - lo
            m[d, lo] += 1 - frac
            m[d, hi] += frac
        return m

    expected = torch.einsum("ih,bchw,jw->bcij", interp_matrix(h), x, interp_matrix(w))
    torch.testing.assert_close(upsample2x_tf(x), expected, rtol=1e-6, atol=1e-6)
    # and it differs from PyTorch's half-pixel bilinear
    assert not torch.allclose(
        upsample2x_tf(x), F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


def test_upsample_constant_invariant_and_gradcheck():
    x = torch.full((1, 2, 3, 4), 0.7)
    torch.testing.assert_close(upsample2x_tf(x), torch.full((1, 2, 6, 8), 0.7))
    xg = torch.randn(1, 1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(upsample2x_tf, (xg,))
