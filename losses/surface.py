"""Surface representation: the image smoothed by a guided filter with itself (white-box
``guided_filter(x, x, r=5, eps=2e-1)``), keeping edges and dropping texture; ``Ds`` judges it."""
from __future__ import annotations

import torch
from torch import nn

from losses.adversarial import lsgan_g_loss
from models.guided_filter import guided_filter

SURFACE_RADIUS = 5
SURFACE_EPS = 0.2


def surface(images: torch.Tensor, r: int = SURFACE_RADIUS, eps: float = SURFACE_EPS) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 3, H, W) surface representation."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"surface expects (B, 3, H, W), got shape {tuple(images.shape)}")
    return guided_filter(images, images, r, eps)


def surface_loss(disc: nn.Module, output: torch.Tensor, r: int = SURFACE_RADIUS,
                 eps: float = SURFACE_EPS) -> torch.Tensor:
    """LSGAN generator loss of the surface discriminator on surface(output)."""
    return lsgan_g_loss(disc(surface(output, r, eps)))


class SurfaceLoss(nn.Module):
    def __init__(self, r: int = SURFACE_RADIUS, eps: float = SURFACE_EPS):
        super().__init__()
        self.r, self.eps = r, eps

    def forward(self, disc: nn.Module, output: torch.Tensor) -> torch.Tensor:
        return surface_loss(disc, output, self.r, self.eps)
