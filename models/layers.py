"""Convolutions with TensorFlow "SAME" padding and TF1's bilinear x2 resize.

TF pads stride-2 "SAME" convolutions asymmetrically (the extra row/column goes to the
bottom/right); PyTorch's symmetric ``padding=1`` would shift every feature map by half a pixel
against the white-box reference, so the stride-2 layers pad explicitly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) for one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding for any stride (asymmetric when TF's is)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(x.shape[-2], k, s)
        left, right = same_padding(x.shape[-1], k, s)
        if top == bottom and left == right:
            # Symmetric case: let the conv pad (one kernel call, no padded copy).
            return F.conv2d(x, self.weight, self.bias, s, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, s)


def _interleave_midpoints(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Along ``dim``: t[0], (t[0]+t[1])/2, t[1], ..., t[n-1], t[n-1] (the edge repeats)."""
    n = t.shape[dim]
    nxt = torch.cat((t.narrow(dim, 1, n - 1), t.narrow(dim, n - 1, 1)), dim)
    return torch.stack((t, (t + nxt) * 0.5), dim + 1).flatten(dim, dim + 1)


def upsample2x_tf(x: torch.Tensor) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear(x, 2*size)`` (align_corners=False, no half-pixel centres).

    Output pixel ``2k`` is input ``k`` and ``2k+1`` is the mean of inputs ``k`` and ``k+1``
    (the last one repeats the edge). PyTorch's ``interpolate`` uses half-pixel centres instead.
    A channels_last input is worked on as its NHWC view and stays channels_last, so the next
    convolution gets no layout conversion (about 25% of G's forward+backward in bf16).

    Args:
        x: (B, C, H, W). Returns (B, C, 2H, 2W).
    """
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        y = x.permute(0, 2, 3, 1)  # contiguous NHWC view, no copy
        return _interleave_midpoints(_interleave_midpoints(y, 1), 2).permute(0, 3, 1, 2)
    return _interleave_midpoints(_interleave_midpoints(x, 2), 3)
