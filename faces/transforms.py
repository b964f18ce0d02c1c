"""Geometric transforms of landmarks, mirroring the image pipeline (resize, crop, flip).

Coordinates are *continuous* pixel coordinates ``(x, y)``: pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)`` and its centre is ``(i + 0.5, j + 0.5)``. In this convention a resize
by factors (sx, sy) is an exact multiplication (it matches cv2.resize's half-pixel centres), a
crop a subtraction and a horizontal flip ``x -> width - x``. Every function works on any point
count (468 or 68), returns a new float32 array (inputs untouched) and passes ``None`` (no face)
through. tests/datasets/test_landmarks.py checks each against the same operation applied by
OpenCV to an image of Gaussian blobs.
"""
from __future__ import annotations

import numpy as np


def resize_landmarks(points: np.ndarray | None, sx: float, sy: float) -> np.ndarray | None:
    """Image resized by factors (sx, sy) (new_w / old_w, new_h / old_h)."""
    if points is None:
        return None
    return np.asarray(points, dtype=np.float32) * np.array([sx, sy], dtype=np.float32)


def crop_landmarks(points: np.ndarray | None, x0: float, y0: float) -> np.ndarray | None:
    """Image cropped to ``img[y0:, x0:]`` (top-left corner at (x0, y0))."""
    if points is None:
        return None
    return np.asarray(points, dtype=np.float32) - np.array([x0, y0], dtype=np.float32)


def flip_landmarks(points: np.ndarray | None, width: float) -> np.ndarray | None:
    """Image of this width flipped left-right (``img[:, ::-1]``). Indices are not swapped:
    point 33 stays point 33, now on the other side (the map draws both sides alike)."""
    if points is None:
        return None
    out = np.array(points, dtype=np.float32, copy=True)
    out[:, 0] = width - out[:, 0]
    return out


def transform_landmarks(points: np.ndarray | None, scale_xy: tuple[float, float] = (1.0, 1.0),
                        crop_xy: tuple[float, float] = (0.0, 0.0), flip: bool = False,
                        out_width: float | None = None) -> np.ndarray | None:
    """The image pipeline resize (by scale_xy) -> crop (at crop_xy) -> optional flip of the
    cropped image of width ``out_width``, applied to landmarks.

    Raises ValueError when ``flip`` is set without ``out_width``.
    """
    pts = resize_landmarks(points, *scale_xy)
    pts = crop_landmarks(pts, *crop_xy)
    if flip and pts is not None:
        if out_width is None:
            raise ValueError("flip=True needs out_width (the width of the cropped image)")
        pts = flip_landmarks(pts, out_width)
    return pts
