"""Total variation, white-box's ``total_variation_loss``: (mean dy^2 + mean dx^2) / (3 H W)."""
from __future__ import annotations

import torch


def total_variation_loss(image: torch.Tensor) -> torch.Tensor:
    """image: (B, C, H, W) -> scalar. ValueError for another number of dimensions.

    The division by 3HW (C = 3 in white-box) is the reference's normalisation, kept so the
    reference weight 1e4 means the same here. TV of a constant image is 0.

    >>> total_variation_loss(torch.zeros(1, 3, 4, 4))
    tensor(0.)
    """
    if image.dim() != 4:
        raise ValueError(f"total_variation_loss expects (B, C, H, W), got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    tv_h = (image[:, :, 1:, :] - image[:, :, :-1, :]).pow(2).mean()
    tv_w = (image[:, :, :, 1:] - image[:, :, :, :-1]).pow(2).mean()
    return (tv_h + tv_w) / (3 * h * w)


def term(state) -> torch.Tensor:
    """The trainer's term (see losses/registry.py for ``state``)."""
    return total_variation_loss(state.output)
