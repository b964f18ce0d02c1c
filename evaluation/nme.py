"""Landmark NME: does the cartoon keep the photo's face geometry?

The training landmark detector (mediapipe FaceMesh by default; any backend of
faces/landmark_detectors.py) runs on the photo and on its output (the cartoon). For an
image where both have a face,

    NME_i = mean over the N points k of || p_photo[k] - p_output[k] || / d_io,
    d_io  = || p_photo[a] - p_photo[b] ||   (outer eye corners of the photo)

with N = 468 and (a, b) = (33, 263) for the mediapipe backends, N = 68 and (a, b) = (36, 45)
for dlib (the usual 300-W outer-corner normalisation), and output points rescaled to the photo's
pixel frame if the sizes differ (:func:`pair_nme`). evaluation/scoring.py aggregates them:

- ``nme``: mean of NME_i over the images where a face is found in BOTH the photo and the
  output; ``None`` when there is no such image (never NaN).
- ``found_rate``: (#images whose photo AND output have a face) / (#images whose photo has a
  face), i.e. the rate at which a face the detector sees in the photo survives cartoonization;
  ``None`` when no photo has a face. Images without a face in the photo do not count at all.
- ``photo_found``: #images whose photo has a face; ``both_found``: #images with a face on both
  sides (those averaged in ``nme``);
  ``n``: #images.
- ``per_image``: NME_i, or ``None`` where it is undefined (no face on either side).

``test.py`` reports ``nme`` and ``found_rate`` as ``nme_mediapipe_mean`` and
``face_found_rate_mediapipe`` (evaluation/scoring.py), computed with a mediapipe backend only:
with dlib as the training detector they would repeat dlib's ``nme68``.
"""
from __future__ import annotations

import math

import numpy as np

from faces import inter_ocular_distance


def nme_of_points(photo_pts: np.ndarray, output_pts: np.ndarray) -> float:
    """NME of two (N, 2) point sets (N = 468 or 68) in the same pixel frame, normalised by the
    photo's inter-ocular distance (points 33/263 or 36/45). NaN if that distance is 0."""
    p = np.asarray(photo_pts, dtype=np.float64)
    o = np.asarray(output_pts, dtype=np.float64)
    d_io = inter_ocular_distance(p)
    if d_io <= 0:
        return math.nan
    return float(np.linalg.norm(p - o, axis=1).mean() / d_io)


def pair_nme(photo: np.ndarray, output: np.ndarray, detector) -> tuple[bool, bool | None, float | None]:
    """One pair: (face found on the photo, face found on the output or None when the photo has
    none, NME_i or None where undefined). photo, output: uint8 (H, W, 3) RGB; the output's
    points are rescaled to the photo's pixel frame when the sizes differ."""
    p = detector.detect(photo)
    if p is None:
        return False, None, None
    o = detector.detect(output)
    if o is None:
        return True, False, None
    o = np.asarray(o, dtype=np.float64) * np.array(
        [photo.shape[1] / output.shape[1], photo.shape[0] / output.shape[0]])
    v = nme_of_points(p, o)
    return True, True, (v if math.isfinite(v) else None)
