"""Face boxes: a detected face, the one IoU and the one overlap suppression.

Pixel convention: continuous coordinates, as everywhere in ``faces`` (pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``). A box ``(x0, y0, x1, y1)`` is the half-open region
``[x0, x1) x [y0, y1)``, its width ``x1 - x0``. Why this one: the detectors give fractional
boxes (mediapipe's relative boxes times the image size, the box around 468 mesh points), for
which the "+1" of inclusive integer boxes means nothing; and dlib's inclusive integer
rectangles ``left..right`` are the continuous box ``(left, top, right + 1, bottom + 1)``
exactly (``faces.dlib_analyser.FaceBox.continuous``), so their IoU is unchanged by the
conversion.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

Box = tuple[float, float, float, float]   # x0, y0, x1, y1 (continuous px)


@dataclass
class Face:
    """One detected face, in pixels of the image it was found in."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    interocular: float                       # estimated outer-corner distance, px
    score: float
    track: int | None = None                 # FaceTracker's id of the face in a video


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two continuous boxes ``(x0, y0, x1, y1)``, in [0, 1].

    Areas are ``(x1 - x0) * (y1 - y0)``; boxes that do not overlap give 0, and so do two empty
    boxes (union 0). Example: ``box_iou((0, 0, 10, 10), (5, 0, 15, 10))`` = 50 / 150 = 1/3.
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def suppress_overlaps(faces: list[Face], iou: float = 0.3) -> list[Face]:
    """Non-maximum suppression: the best-scoring face of each group of overlapping boxes
    (``box_iou`` above ``iou``), highest score first."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(box_iou(f.box, k.box) <= iou for k in kept):
            kept.append(f)
    return kept
