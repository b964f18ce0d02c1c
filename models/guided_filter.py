"""The white-box guided filter (He et al. 2010, as in White-box Cartoonization's ``guided_filter``).

Box means are normalised by ``N = box(ones)``, so border windows average only the pixels that
exist (this is what TF's zero-padded "SAME" depthwise conv divided by ``N`` does). The box sum
uses cumulative sums along H then W, so its cost per pixel does not depend on ``r``.

Example::

    >>> x = torch.rand(2, 3, 32, 32) * 2 - 1
    >>> guided_filter(x, x, r=5, eps=0.2).shape
    torch.Size([2, 3, 32, 32])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["box_filter", "guided_filter", "GuidedFilter"]


def _window_sum_1d(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum over the window [i - r, i + r] along ``dim`` (zeros outside), via one cumsum."""
    n = x.shape[dim]
    pad = [0, 0] * (x.dim() - dim - 1) + [r + 1, r]  # F.pad lists the last dim first
    c = torch.cumsum(F.pad(x, pad), dim=dim)
    # c[j] holds sum of x[: j - r]; window sum at i = c[i + 2r + 1] - c[i].
    return c.narrow(dim, 2 * r + 1, n) - c.narrow(dim, 0, n)


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sum of ``x`` over a (2r+1)x(2r+1) window, zero outside the image.

    Args:
        x: (B, C, H, W).
        r: window radius, >= 0.
    Returns:
        (B, C, H, W) window sums (not means: divide by ``box_filter(ones, r)``).
    """
    if x.dim() != 4:
        raise ValueError(f"box_filter expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if r < 0:
        raise ValueError(f"box_filter radius must be >= 0, got {r}")
    return _window_sum_1d(_window_sum_1d(x, r, 2), r, 3)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """Edge-preserving smoothing of ``src`` steered by ``guide`` (per-channel linear model).

    Args:
        guide: (B, 1 or C, H, W) guidance image (any range; white-box uses [-1, 1]).
        src: (B, C, H, W) image to filter.
        r: box radius (white-box: 1 after the generator, 5 for the surface representation).
        eps: regularisation (1e-2 in training, 5e-3 at inference, 0.2 for surface).
    Returns:
        (B, C, H, W), same dtype as ``src``.
    """
    if guide.dim() != 4 or src.dim() != 4:
        raise ValueError(
            "guided_filter expects guide (B, 1 or C, H, W) and src (B, C, H, W), got "
            f"{tuple(guide.shape)} and {tuple(src.shape)}"
        )
    b, c, h, w = src.shape
    if guide.shape[0] != b or guide.shape[2:] != src.shape[2:] or guide.shape[1] not in (1, c):
        raise ValueError(
            f"guided_filter: guide must be (B={b}, 1 or {c}, H={h}, W={w}) to match src, "
            f"got {tuple(guide.shape)}"
        )
    if not (guide.is_floating_point() and src.is_floating_point()):
        raise ValueError(f"guided_filter expects floating tensors, got {guide.dtype} and {src.dtype}")
    dtype = src.dtype
    # Half precision loses the small differences var = E[x^2] - E[x]^2 relies on.
    work = torch.float64 if dtype == torch.float64 else torch.float32
    x = guide.to(work)
    n = box_filter(torch.ones(1, 1, h, w, dtype=work, device=src.device), r)
    mean_x = box_filter(x, r) / n
    var_x = box_filter(x * x, r) / n - mean_x * mean_x
    if guide is src:  # the surface representation: an image filtered with itself
        mean_y, cov_xy = mean_x, var_x
    else:
        y = src.to(work)
        mean_y = box_filter(y, r) / n
        cov_xy = box_filter(x * y, r) / n - mean_x * mean_y
    a = cov_xy / (var_x + eps)
    bias = mean_y - a * mean_x
    mean_a = box_filter(a, r) / n
    mean_b = box_filter(bias, r) / n
    return (mean_a * x + mean_b).to(dtype)


class GuidedFilter(nn.Module):
    """Module form of :func:`guided_filter` with fixed ``r`` and ``eps``."""

    def __init__(self, r: int, eps: float):
        super().__init__()
        self.r, self.eps = int(r), float(eps)

    def forward(self, guide: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        return guided_filter(guide, src, self.r, self.eps)

    def extra_repr(self) -> str:
        return f"r={self.r}, eps={self.eps}"
