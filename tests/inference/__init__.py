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
