"""Pictures as tensors: uint8 (H, W, 3) RGB <-> float (3, H, W) in [-1, 1], the generator's range."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


# torch is imported inside the converters: reading images and rendering landmark maps must not
# pay for importing torch (the landmark cache and prepare.py run without it).
def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) in [-1, 1] (x / 127.5 - 1), a copy."""
    import torch

    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (B, 3, H, W) in [-1, 1] (clamped) -> uint8 (H, W, 3) or (B, H, W, 3)."""
    import torch

    u8 = ((x.detach().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return u8.movedim(-3, -1).cpu().numpy()
