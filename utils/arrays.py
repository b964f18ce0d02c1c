"""Checks of the arrays that cross layers (uint8 RGB pictures), with one-line user errors."""
from __future__ import annotations

import numpy as np

from utils.errors import ToonFaceError


def check_rgb(image, what: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous uint8 (H, W, 3) RGB array (no copy when it already is one).

    Only uint8 (H, W, 3) with H, W >= 1 is accepted: converting other dtypes or channel counts
    here would hide a caller's bug (a float image in [-1, 1], BGR from OpenCV is not detectable).
    Raises ToonFaceError naming ``what`` otherwise.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 1:
        raise ToonFaceError(f"{what}: expected a uint8 (H, W, 3) RGB array, "
                            f"got {a.dtype} {tuple(a.shape)}")
    return np.ascontiguousarray(a)
