"""Style statistics that need nothing downloaded.

For one uint8 RGB (H, W, 3) image:

- ``distinct_colours``: number of distinct colours after quantising to 5 bits per channel
  (32^3 bins). Cartoons use few flat colours; photos many. Depends on image size: compare at
  one size only.
- ``edge_density``: fraction of pixels on Canny edges (gray, thresholds 100 / 200).
- ``flatness``: mean |image - structure(image)| in [0, 1] units, structure being the image's
  own superpixel mean fill (the training ``structure`` representation, same backend and
  ``seg_num``). 0 means the image already is flat regions; photos score higher.
- ``smooth_share``: fraction of pixels whose luminance slope is below 1 grey level per pixel
  (see :func:`smooth_share`). Cartoons are mostly flat or gently shaded areas, photos carry
  texture and sensor noise almost everywhere: on the 49 ffhq-mini fixtures at 256x256 the
  photos score 0.184 and the white-box authors' cartoons of them 0.383 (0.150 and 0.315 at
  128x128), a 2.1x gap where the three statistics above differ by a few per cent.

:func:`style_stats` averages each statistic over images (of any sizes; every statistic is
measured on an image at its own size).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from representations.defaults import DEFAULT_METHOD, SEG_NUM

CANNY_LOW, CANNY_HIGH = 100, 200
COLOUR_BITS = 5
LUMA_RGB = (0.299, 0.587, 0.114)     # Rec. 601, as cv2.COLOR_RGB2GRAY and losses/landmark.py
SOBEL_NORM = 1.0 / 8.0               # the 3x3 Sobel taps sum |.| to 8: per-pixel slope units
SMOOTH_SLOPE = 1.0                   # grey levels per pixel
STYLE_KEYS = ("distinct_colours", "edge_density", "flatness", "smooth_share")


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


def luminance_slope(image: np.ndarray) -> np.ndarray:
    """Luminance gradient magnitude of a uint8 (H, W, 3) RGB image, (H, W) float32, in grey
    levels per pixel.

    Y = 0.299 R + 0.587 G + 0.114 B in [0, 255] (not rounded); gx, gy = the 3x3 Sobel
    derivatives of Y with replicated borders, divided by 8 (the taps' absolute sum, so that a
    ramp rising by s per pixel gives s); slope = sqrt(gx^2 + gy^2). The same operator as the
    landmark loss (losses/landmark.py), on the 0..255 scale.
    """
    import cv2

    y = cv2.cvtColor(np.ascontiguousarray(image, np.uint8).astype(np.float32), cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy) * np.float32(SOBEL_NORM)


def smooth_share(image: np.ndarray, slope: float = SMOOTH_SLOPE) -> float:
    """Fraction of pixels of a uint8 (H, W, 3) RGB image whose :func:`luminance_slope` is below
    ``slope`` grey levels per pixel (strictly), in [0, 1].

    1 for a flat image or any ramp gentler than ``slope``; a hard step between two flat areas
    costs the two pixel columns beside it. Depends on image size (downscaling steepens slopes):
    compare at one size only.
    """
    return float((luminance_slope(image) < slope).mean())


def structure_fill(images: np.ndarray, superpixel: str = DEFAULT_METHOD,
                   seg_num: int = SEG_NUM) -> np.ndarray:
    """(B, H, W, 3) uint8 -> the structure representation, float (B, H, W, 3) in [0, 1]."""
    import torch

    x = torch.from_numpy(np.asarray(images, np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
    try:
        # optional dependency
        from representations.structure import structure
    except ImportError:  # only the faithful skimage backend needs nothing else
        # optional dependency
        from representations.superpixel_slic import slic_fill

        return slic_fill(np.asarray(images, np.float64) / 255.0, seg_num)[0]
    with torch.no_grad():
        y = structure(x.contiguous(), method=superpixel, seg_num=seg_num)
    return ((y.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()


def flatness(images: np.ndarray, superpixel: str = DEFAULT_METHOD, seg_num: int = SEG_NUM,
             batch_size: int = 16) -> list[float]:
    """Per image of a (B, H, W, 3) uint8 stack: mean |image - structure(image)| in [0, 1] units."""
    images = np.asarray(images)
    out: list[float] = []
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size]
        filled = structure_fill(batch, superpixel, seg_num)
        diff = np.abs(batch.astype(np.float64) / 255.0 - filled)
        out.extend(float(d.mean()) for d in diff)
    return out


def image_style(image: np.ndarray, superpixel: str = DEFAULT_METHOD,
                seg_num: int = SEG_NUM) -> dict:
    """The four statistics (:data:`STYLE_KEYS`) of one uint8 (H, W, 3) RGB image."""
    image = np.asarray(image, np.uint8)
    return {"distinct_colours": distinct_colours(image), "edge_density": edge_density(image),
            "flatness": flatness(image[None], superpixel, seg_num)[0],
            "smooth_share": smooth_share(image)}


def mean_style(per_image: Sequence[dict]) -> dict:
    """Means of per-image :func:`image_style` dicts, plus ``n``; None means when empty."""
    if not per_image:
        return {**dict.fromkeys(STYLE_KEYS), "n": 0}
    return {**{k: float(np.mean([s[k] for s in per_image])) for k in STYLE_KEYS},
            "n": len(per_image)}


def style_stats(images: Sequence[np.ndarray], superpixel: str = DEFAULT_METHOD, seg_num: int = SEG_NUM
                ) -> dict:
    """Mean style statistics of uint8 (H, W, 3) RGB images (see the module docstring)."""
    return mean_style([image_style(im, superpixel, seg_num) for im in images])
