"""Style statistics that need nothing downloaded.

For uint8 RGB images of one size (all means over images):

- ``distinct_colours``: number of distinct colours after quantising to 5 bits per channel
  (32^3 bins). Cartoons use few flat colours; photos many. Depends on image size: compare at
  one size only.
- ``edge_density``: fraction of pixels on Canny edges (gray, thresholds 100 / 200).
- ``flatness``: mean |image - structure(image)| in [0, 1] units, structure being the image's
  own superpixel mean fill (the training ``structure`` representation, same backend and
  ``seg_num``). 0 means the image already is flat regions; photos score higher.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

CANNY_LOW, CANNY_HIGH = 100, 200
COLOUR_BITS = 5


def distinct_colours(image: np.ndarray, bits: int = COLOUR_BITS) -> int:
    """Distinct colours of a uint8 (H, W, 3) image quantised to ``bits`` per channel."""
    q = (np.asarray(image, np.uint8) >> (8 - bits)).astype(np.int64)
    codes = (q[..., 0] << (2 * bits)) | (q[..., 1] << bits) | q[..., 2]
    return int(np.unique(codes).size)


def edge_density(image: np.ndarray, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> float:
    """Fraction of Canny edge pixels of a uint8 (H, W, 3) RGB image."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(image, np.uint8), cv2.COLOR_RGB2GRAY)
    return float((cv2.Canny(gray, low, high) > 0).mean())


def structure_fill(images: np.ndarray, superpixel: str = "fast", seg_num: int = 200) -> np.ndarray:
    """(B, H, W, 3) uint8 -> the structure representation, float (B, H, W, 3) in [0, 1]."""
    import torch

    x = torch.from_numpy(np.asarray(images, np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
    try:
        from representations.structure import structure
    except ImportError:  # only the faithful skimage backend needs nothing else
        from representations.superpixel_slic import slic_fill

        return slic_fill(np.asarray(images, np.float64) / 255.0, seg_num)[0]
    with torch.no_grad():
        y = structure(x.contiguous(), method=superpixel, seg_num=seg_num)
    return ((y.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()


def flatness(images: np.ndarray, superpixel: str = "fast", seg_num: int = 200,
             batch_size: int = 16) -> list[float]:
    """Per image: mean |image - structure(image)| in [0, 1] units."""
    images = np.asarray(images)
    out: list[float] = []
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size]
        filled = structure_fill(batch, superpixel, seg_num)
        diff = np.abs(batch.astype(np.float64) / 255.0 - filled)
        out.extend(float(d.mean()) for d in diff)
    return out


def style_stats(images: Sequence[np.ndarray], superpixel: str = "fast", seg_num: int = 200
                ) -> dict:
    """Mean style statistics of uint8 (H, W, 3) RGB images of one size (see module docstring)."""
    images = [np.asarray(im, np.uint8) for im in images]
    if not images:
        return {"distinct_colours": None, "edge_density": None, "flatness": None, "n": 0}
    return {
        "distinct_colours": float(np.mean([distinct_colours(im) for im in images])),
        "edge_density": float(np.mean([edge_density(im) for im in images])),
        "flatness": float(np.mean(flatness(np.stack(images), superpixel, seg_num))),
        "n": len(images),
    }
