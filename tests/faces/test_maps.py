"""The landmark map (faces/maps.py) of each topology: contours through the points,
regions inside the features, scale-consistent, and alike across detectors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faces import IBUG_68, MEDIAPIPE_468, landmark_map_to_rgb, render_landmark_map
from tests.conftest import requires_dlib, requires_mediapipe


def _check_map(points, topo, chin):
    m = render_landmark_map(points, 512, 512)
    assert m.shape == (2, 512, 512) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1 and m[0].max() == pytest.approx(1.0)
    for i in (*topo.eye_outer, chin):                 # eye corners and chin lie on contours
        x, y = points[i].astype(int)
        assert m[0, y, x] > 0.3, i
    for eye in ("left_eye", "right_eye"):
        cx, cy = points[list(topo.region_hulls[eye])].mean(axis=0).astype(int)
        assert m[1, cy, cx] > 0.85                     # inside the eye, a soft-edged mask
    assert m[:, :20, :20].max() == 0 and m[:, -20:, -20:].max() == 0   # far from the face
    return m


@requires_mediapipe
def test_render_mediapipe_map(facemesh_points):
    m = _check_map(facemesh_points, MEDIAPIPE_468, chin=152)
    x, y = facemesh_points[10].astype(int)            # the face oval runs over the forehead
    assert m[0, y, x] > 0.3


@requires_dlib
def test_render_dlib_map(dlib_points):
    m = _check_map(dlib_points, IBUG_68, chin=8)
    brow_top = int(dlib_points[17:27, 1].min())
    above = m[0, : max(brow_top - 15, 0)]
    assert above.max() < 0.05                          # the jaw line has no forehead part
    np.testing.assert_array_equal(render_landmark_map(None, 64, 32), np.zeros((2, 64, 32)))


@pytest.mark.parametrize("which", [pytest.param("mediapipe", marks=requires_mediapipe),
                                   pytest.param("dlib", marks=requires_dlib)])
def test_render_is_resolution_consistent(request, which):
    p = request.getfixturevalue("facemesh_points" if which == "mediapipe" else "dlib_points")
    hi = render_landmark_map(p, 512, 512)
    lo = render_landmark_map(p * 0.5, 256, 256)
    down = np.stack([cv2.resize(c, (256, 256), interpolation=cv2.INTER_AREA) for c in hi])
    for c in range(2):
        corr = np.corrcoef(down[c].ravel(), lo[c].ravel())[0, 1]
        assert corr > 0.9, (c, corr)


@requires_mediapipe
@requires_dlib
def test_maps_of_both_detectors_agree_on_the_features(facemesh_points, dlib_points):
    """Regions overlap (intersection over union of the masks > 0.5) and every dlib contour
    pixel lies near a mediapipe contour pixel below the brows (the mesh also has a forehead)."""
    a = render_landmark_map(facemesh_points, 512, 512)
    b = render_landmark_map(dlib_points, 512, 512)
    ra, rb = a[1] > 0.5, b[1] > 0.5
    assert (ra & rb).sum() / (ra | rb).sum() > 0.5
    ca, cb = a[0] > 0.5, b[0] > 0.5
    dist_to_a = cv2.distanceTransform((~ca).astype(np.uint8), cv2.DIST_L2, 5)
    iod = np.linalg.norm(dlib_points[36] - dlib_points[45])
    assert np.median(dist_to_a[cb]) < 0.1 * iod


def test_render_rejects_unknown_shapes_and_ignores_non_finite():
    with pytest.raises(ValueError):
        render_landmark_map(np.zeros((100, 2), np.float32), 32, 32)
    with pytest.raises(ValueError):
        render_landmark_map(np.zeros((68, 2), np.float32), 32, 32, topology=MEDIAPIPE_468)
    pts = np.full((68, 2), np.nan, np.float32)
    assert render_landmark_map(pts, 32, 32).max() == 0


@requires_dlib
def test_landmark_map_to_rgb(dlib_points):
    import torch

    maps = torch.from_numpy(np.stack([render_landmark_map(dlib_points * 0.25, 128, 128),
                                      render_landmark_map(None, 128, 128)]))
    rgb = landmark_map_to_rgb(maps)
    assert rgb.shape == (2, 3, 128, 128) and rgb.min() >= -1 and rgb.max() <= 1
    assert (rgb[1] == -1).all() and rgb[0].max() > 0.5
    with pytest.raises(ValueError):
        landmark_map_to_rgb(torch.zeros(1, 3, 8, 8))
