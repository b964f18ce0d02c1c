"""Helpers of the face tests: scripted detections of one face."""
from __future__ import annotations

import math

import numpy as np

from faces.boxes import Face


def noisy_faces(n, centre=(80.0, 60.0), side=40.0, iod=16.0, jitter=0.04, seed=0, step=(0.0, 0.0)):
    """n detections of one face (moving ``step`` px per frame), box centre and size and
    inter-ocular distance each with Gaussian noise of ``jitter`` x the face side (relative for
    the sizes): a detector re-run on every frame of a still shot."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        cx = centre[0] + step[0] * t + rng.normal(0, jitter * side)
        cy = centre[1] + step[1] * t + rng.normal(0, jitter * side)
        s = side * math.exp(rng.normal(0, jitter))
        out.append(Face((cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2),
                        iod * math.exp(rng.normal(0, jitter)), 0.9))
    return out


def centre(face):
    x0, y0, x1, y1 = face.box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2])
