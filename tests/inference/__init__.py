"""Helpers shared by the inference tests: a small, meaningful generator and test pictures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def make_generator(seed: int = 0):
    """A seeded random ``Generator`` whose raw output has std ~0.5 on [-1, 1] input.

    Default init gives std ~0.05, which the guided filter flattens to a near-copy of the photo;
    scaling the last conv makes the output depend on the whole receptive field, which is what
    the tiling test must exercise.
    """
    from models import Generator

    torch.manual_seed(seed)
    G = Generator().eval()
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        G.out.weight.mul_(0.5 / G(x).std())
        G.out.bias.zero_()
    return G


def make_trained_like_generator(seed: int = 0):
    """A seeded ``Generator`` whose border effect reaches as far as trained ones' do.

    PyTorch's default conv init shrinks activations layer by layer, so ``make_generator``'s
    output depends on little beyond ~8 px and hides tiling seams and border frames. Here every
    conv gets He init for leaky ReLU 0.2 (std sqrt(2 / (1.04 fan_in)), He et al. 2015), biases 0,
    and the output scaled to std 0.5. Zero padding then changes the output (max over channels,
    levels, on make_picture crops) by mean 55 / 37 / 26 / 13 / 4.4 / 1.3 / 0.27 / 0.01 at
    0-3 / 4-7 / 8-15 / 16-23 / 24-31 / 32-39 / 40-47 / 48+ px from the border: the profile of
    the trained generators in /work/explore/runs (A_default: 29 / 26 / 18 / 8.2 / 2.9 / 0.5 /
    0.14 / 0.1 on wb_party7), somewhat stronger and reaching a little further.
    """
    import math

    from models import Generator

    torch.manual_seed(seed)
    G = Generator().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g)
                               * math.sqrt(2.0 / (1.04 * m.weight[0].numel())))
                m.bias.zero_()
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        G.out.weight.mul_(0.5 / G(x).std())
    return G


def make_checkpoint(path: Path, seed: int = 0, face_size: float | None = 45.0, image_size: int = 128) -> Path:
    from models.checkpoint import save_generator

    save_generator(path, make_generator(seed), image_size=image_size, face_size=face_size,
                   step=0, run="test", kind="train")
    return path


def make_picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus a few flat shapes and mild noise: (h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), 0.5 + 0.5 * np.sin(xx / 9 + yy / 13)], -1) * 200
    for _ in range(6):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, max(6, min(h, w) // 3))
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
