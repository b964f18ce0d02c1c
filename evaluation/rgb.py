"""uint8 RGB images for the dlib face metrics and the warping error: reading, resizing (the
check of a uint8 RGB array is utils/arrays.py ``check_rgb``).

Kept apart from ``media`` on purpose: the evaluation kit depends only on numpy,
OpenCV, Pillow and ``utils.errors`` so it can score any folder of results (another tool's too).
Every user-fixable problem raises :class:`~utils.errors.ToonFaceError` with one line.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from utils.errors import ToonFaceError


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3) RGB, EXIF orientation applied.

    Transparent pixels are composited on white (cartoon PNGs usually have a white background
    behind their alpha). Raises ToonFaceError ``<path>: unreadable image (<reason>)`` for a
    missing, empty, truncated or non-image file.
    """
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # full decode here: a truncated file fails now, not half-way through scoring
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            arr = np.array(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ToonFaceError(f"{path}: unreadable image ({reason})") from None
    if min(arr.shape[:2]) < 1:
        raise ToonFaceError(f"{path}: unreadable image (zero size)")
    return arr


def same_aspect(size_a: tuple[int, int], size_b: tuple[int, int]) -> bool:
    """Whether an image of ``size_b`` = (H, W) is one of ``size_a`` scaled, up to rounding.

    True when scaling ``size_a`` to ``size_b``'s width (or height) gives ``size_b``'s height
    (or width) within one pixel, i.e. the difference is what rounding a resized size makes.
    A crop (e.g. to a multiple of 8) is not a scale and is refused unless it is within that
    pixel.
    """
    (ha, wa), (hb, wb) = size_a, size_b
    return abs(hb - wb * ha / wa) <= 1.0 or abs(wb - hb * wa / ha) <= 1.0


def resize_to(image: np.ndarray, size: tuple[int, int], what: str = "output") -> np.ndarray:
    """``image`` (uint8 (h, w, 3)) resized to ``size`` = (H, W) when it is not that size already.

    INTER_AREA when shrinking (no aliasing), INTER_CUBIC when enlarging (sharper than bilinear,
    closer to what the other tool's output looked like at full size). Raises ToonFaceError
    when the aspect ratios differ (see :func:`same_aspect`): stretching would move every point
    and be measured as a geometry change the method did not make.
    """
    import cv2

    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    if not same_aspect(tuple(size), (h, w)):
        raise ToonFaceError(f"{what} is {w}x{h} but the reference is {size[1]}x{size[0]}: "
                            "another aspect ratio")
    interp = cv2.INTER_AREA if h * w > size[0] * size[1] else cv2.INTER_CUBIC
    return cv2.resize(image, (int(size[1]), int(size[0])), interpolation=interp)
