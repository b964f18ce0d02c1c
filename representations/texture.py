"""Texture representation: a random colour shift to one channel (white-box ``color_shift``).

One weight triple per call, shared by the fake and the cartoon batch so ``Dt`` compares like
with like; drawn from a ``torch.Generator`` so a seeded run is reproducible. The ranges are the
reference's (its BGR tensors relabelled for our RGB ones; Wang & Yu, CVPR 2020, section 3.3).
"""
from __future__ import annotations

import torch

# U(low, high) for the R, G and B weights.
TEXTURE_WEIGHT_RANGES = ((0.199, 0.399), (0.487, 0.687), (0.014, 0.214))


def texture_weights(generator: torch.Generator | None = None,
                    ranges=TEXTURE_WEIGHT_RANGES) -> torch.Tensor:
    """Draw one (R, G, B) weight triple (float32, CPU), before normalisation."""
    low = torch.tensor([r[0] for r in ranges])
    high = torch.tensor([r[1] for r in ranges])
    return low + (high - low) * torch.rand(3, generator=generator)


def texture(*images: torch.Tensor, weights: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Grayscale each (B, 3, H, W) image with the same random weights -> (B, 1, H, W) each.

    ``sum_c w_c x_c / sum_c w_c``: a convex mix, so [-1, 1] stays [-1, 1]. Raises ValueError
    for an image of another shape.
    """
    if weights is None:
        weights = texture_weights(generator)
    out = []
    for x in images:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"texture expects (B, 3, H, W) images, got shape {tuple(x.shape)}")
        w = (weights / weights.sum()).to(device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        out.append((x * w).sum(dim=1, keepdim=True))
    return tuple(out)
