"""Landmark transforms (faces/transforms.py) against the same operation done by
OpenCV on an image of Gaussian blobs centred at the points."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faces import crop_landmarks, flip_landmarks, resize_landmarks, transform_landmarks

BLOB_SIGMA = 1.5


def _blob_image(points, h, w):
    """Gaussian blobs centred at continuous coordinates (pixel i's centre is i + 0.5)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    img = np.zeros((h, w), np.float64)
    for x, y in points:
        img += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * BLOB_SIGMA ** 2))
    return img.astype(np.float32)


def _centroids(img, guesses, radius):
    """Intensity centroid (continuous coordinates) in a window around each guess."""
    out = []
    for gx, gy in guesses:
        x0, x1 = int(max(gx - radius, 0)), int(min(gx + radius, img.shape[1]))
        y0, y1 = int(max(gy - radius, 0)), int(min(gy + radius, img.shape[0]))
        win = img[y0:y1, x0:x1].astype(np.float64)
        ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
        out.append((float((win * xs).sum() / win.sum()), float((win * ys).sum() / win.sum())))
    return np.array(out)


POINTS = np.array([[20.3, 15.7], [60.0, 40.5], [95.6, 70.2], [40.25, 60.75]], np.float32)
H0, W0 = 90, 120


@pytest.mark.parametrize("new_w,new_h,interp", [(180, 135, cv2.INTER_LINEAR),
                                                (150, 99, cv2.INTER_LINEAR),
                                                (72, 54, cv2.INTER_AREA)])
def test_resize_matches_cv2(new_w, new_h, interp):
    img = cv2.resize(_blob_image(POINTS, H0, W0), (new_w, new_h), interpolation=interp)
    pred = resize_landmarks(POINTS, new_w / W0, new_h / H0)
    got = _centroids(img, pred, radius=5 * BLOB_SIGMA * new_w / W0)
    np.testing.assert_allclose(got, pred, atol=0.05)


def test_crop_and_flip_match_image_ops():
    img = _blob_image(POINTS, H0, W0)
    x0, y0, cw, ch = 11, 7, 100, 75
    crop = img[y0:y0 + ch, x0:x0 + cw]
    pred = crop_landmarks(POINTS, x0, y0)
    np.testing.assert_allclose(_centroids(crop, pred, 6), pred, atol=0.02)
    flipped = cv2.flip(crop, 1)
    pred_f = flip_landmarks(pred, cw)
    np.testing.assert_allclose(_centroids(flipped, pred_f, 6), pred_f, atol=0.02)


def test_transform_landmarks_mirrors_resize_crop_flip_pipeline():
    sx, sy = 1.4, 1.3
    rw, rh = round(W0 * sx), round(H0 * sy)
    x0, y0, cw, ch = 9, 12, 150, 100
    img = cv2.resize(_blob_image(POINTS, H0, W0), (rw, rh), interpolation=cv2.INTER_LINEAR)
    img = cv2.flip(img[y0:y0 + ch, x0:x0 + cw], 1)
    before = POINTS.copy()
    pred = transform_landmarks(POINTS, (rw / W0, rh / H0), (x0, y0), flip=True, out_width=cw)
    np.testing.assert_array_equal(POINTS, before)                  # input untouched
    np.testing.assert_allclose(_centroids(img, pred, 8), pred, atol=0.05)
    assert transform_landmarks(None, (2, 2), (1, 1), True, 10) is None
    with pytest.raises(ValueError):
        transform_landmarks(POINTS, flip=True)
