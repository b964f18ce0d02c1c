"""Video display matrices: the clockwise rotation they ask for and the FFmpeg filters (transpose,
hflip, vflip) that make frames upright, applied to arrays.

Right angles (0/90/180/270 degrees, with or without a mirror) are applied to the pixels; other
angles are not (:func:`orientation_filters` returns None for them and the reader carries the
matrix to the output unchanged).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def display_rotation(matrix: Sequence[int]) -> float:
    """Clockwise display rotation in degrees, [0, 360), of an FFmpeg display matrix.

    ``-av_display_rotation_get()`` (libavutil/display.c), normalised as fftools' ``get_rotation``.
    The matrix is 3x3 row-major with 16.16 fixed-point a, b, c, d.
    """
    a, b, c, d = (v / 65536.0 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    scale0, scale1 = math.hypot(a, c), math.hypot(b, d)
    if scale0 == 0 or scale1 == 0:
        return 0.0
    angle = math.degrees(math.atan2(b / scale1, a / scale0))
    theta = -round(-angle)  # av_display_rotation_get() is -angle; fftools negates and rounds it
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    return float(theta)


def orientation_filters(matrix: Sequence[int] | None) -> tuple[float, tuple[str, ...] | None]:
    """(clockwise rotation, filters that make frames upright); filters None: not a right angle.

    The case analysis is FFmpeg's (``fftools/ffmpeg_filter.c``, autorotate): the sign of matrix
    entries 0, 3 and 4 tells a mirrored matrix from a plain rotation.
    """
    if matrix is None:
        return 0.0, ()
    theta = display_rotation(matrix)
    if abs(theta - 90) < 1.0:
        return theta, ("transpose=cclock_flip" if matrix[3] > 0 else "transpose=clock",)
    if abs(theta - 180) < 1.0:
        return theta, tuple(f for f, on in (("hflip", matrix[0] < 0), ("vflip", matrix[4] < 0)) if on)
    if abs(theta - 270) < 1.0:
        return theta, ("transpose=clock_flip" if matrix[3] < 0 else "transpose=cclock",)
    if abs(theta) > 1.0:
        return theta, None
    return theta, ("vflip",) if matrix[4] < 0 else ()


def apply_orientation(rgb: np.ndarray, ops: tuple[str, ...]) -> np.ndarray:
    """Apply FFmpeg's transpose/hflip/vflip filters, by name, to an (H, W, C) array."""
    for op in ops:
        if op == "transpose=clock":          # 90 degrees clockwise
            rgb = np.rot90(rgb, -1)
        elif op == "transpose=cclock":       # 90 degrees counter-clockwise
            rgb = np.rot90(rgb, 1)
        elif op == "transpose=cclock_flip":  # counter-clockwise then vertical flip = transpose
            rgb = rgb.transpose(1, 0, 2)
        elif op == "transpose=clock_flip":   # clockwise then vertical flip = anti-transpose
            rgb = np.rot90(rgb, -1)[::-1]
        elif op == "hflip":
            rgb = rgb[:, ::-1]
        elif op == "vflip":
            rgb = rgb[::-1]
        else:
            raise ValueError(f"unknown orientation filter {op!r}")
    return np.ascontiguousarray(rgb)


def frame_display_matrix(frame) -> tuple[int, ...] | None:
    from av.sidedata.sidedata import Type

    for sd in frame.side_data:
        if sd.type == Type.DISPLAYMATRIX and sd.buffer_size >= 36:
            return tuple(int(v) for v in np.frombuffer(bytes(sd), dtype="<i4", count=9))
    return None


# ------------------------------------------------------------------------------------ reading
