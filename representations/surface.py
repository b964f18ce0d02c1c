"""Surface representation: the image smoothed by a guided filter with itself.

White-box ``guided_filter(x, x, r=5, eps=2e-1)`` (Wang & Yu, CVPR 2020, section 3.1): edges
are kept, texture and details are dropped, so the surface discriminator ``Ds`` judges smooth
shading only.
"""
from __future__ import annotations

import torch

from models.guided_filter import guided_filter

SURFACE_RADIUS = 5
SURFACE_EPS = 0.2


def surface(images: torch.Tensor, r: int = SURFACE_RADIUS, eps: float = SURFACE_EPS) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 3, H, W) surface representation, same range.

    Raises ValueError for any other shape.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"surface expects (B, 3, H, W), got shape {tuple(images.shape)}")
    return guided_filter(images, images, r, eps)
