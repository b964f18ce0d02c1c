"""The landmark map: where a face's features are, as 2 channels the landmark loss weighs by.

Channel 0: thin soft contours of eyes, brows, lips, nose and face outline (anti-aliased 1-px
lines, Gaussian-softened, peak scaled to 1). Channel 1: soft region masks (filled eyes, mouth,
nose; brows as thick lines). Which points form which part is the topology's business
(faces/topology.py): the same two channels come out of 468 mediapipe points and
68 dlib points, so losses/landmark.py is the same for every detector.

Rendering sizes are given for a face whose outer eye corners are ``REFERENCE_IOD`` pixels apart
(the median of aligned FFHQ faces at 256x256) and scale with the face, ``s = inter-ocular
distance / REFERENCE_IOD``: with the resolution for aligned faces, and without blurring a small
face in a large photo into a blob. Only OpenCV and numpy are used (no torch, no detector).
"""
from __future__ import annotations

import cv2
import numpy as np

from faces.topology import Topology, topology_of

REFERENCE_IOD = 90.0
CONTOUR_SIGMA = 1.5          # Gaussian softening of the 1-px contour lines, pixels at reference
REGION_SIGMA = 3.0           # softening of the region masks, pixels at reference
BROW_THICKNESS = 5.0         # brows are drawn as lines this thick in channel 1, at reference
_SUBPIXEL_SHIFT = 4          # cv2 drawing with 1/16-pixel precision

# Colours of the map in the side-by-side grids (RGB in [0, 1]).
MAP_REGION_RGB = (0.15, 0.35, 0.85)
MAP_CONTOUR_RGB = (1.0, 0.9, 0.2)


def _to_cv_fixed(points: np.ndarray) -> np.ndarray:
    # continuous coordinates -> pixel-index coordinates (centre of pixel i is i), fixed point
    return np.rint((points - 0.5) * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)


def _soften(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)


def render_landmark_map(points: np.ndarray | None, height: int, width: int,
                        topology: Topology | None = None) -> np.ndarray:
    """Landmark map ``(2, height, width)`` float32 in [0, 1].

    points: ``(N, 2)`` continuous pixel coordinates (x, y) of an image of this size (points
        outside it are fine: lines are clipped), or ``None`` (no face: zeros).
    topology: which indices form which part; default: from N (468 -> mediapipe, 68 -> iBUG).
    Channel 0: contours, Gaussian sigma ``CONTOUR_SIGMA * s``, peak 1; channel 1: regions,
    sigma ``REGION_SIGMA * s``; ``s = inter-ocular distance / REFERENCE_IOD``. Non-finite
    points give zeros. Raises ValueError for a shape that matches no topology.
    """
    out = np.zeros((2, height, width), dtype=np.float32)
    if points is None:
        return out
    pts = np.asarray(points, dtype=np.float32)
    topo = topology or topology_of(pts)
    if pts.shape != (topo.num_points, 2):
        raise ValueError(f"expected points of shape ({topo.num_points}, 2), got {pts.shape}")
    if not np.isfinite(pts).all():
        return out
    scale = topo.inter_ocular_distance(pts) / REFERENCE_IOD
    fixed = _to_cv_fixed(pts)

    contours = np.zeros((height, width), dtype=np.uint8)
    lines = [np.stack([fixed[a], fixed[b]]) for edges in topo.contours.values() for a, b in edges]
    cv2.polylines(contours, lines, isClosed=False, color=255, thickness=1,
                  lineType=cv2.LINE_AA, shift=_SUBPIXEL_SHIFT)
    c = _soften(contours.astype(np.float32) / 255.0, CONTOUR_SIGMA * scale)
    peak = float(c.max())
    if peak > 0:
        out[0] = np.clip(c / peak, 0.0, 1.0)

    regions = np.zeros((height, width), dtype=np.uint8)
    for idx in topo.region_hulls.values():
        hull = cv2.convexHull(fixed[list(idx)])
        cv2.fillConvexPoly(regions, hull, 255, lineType=cv2.LINE_AA, shift=_SUBPIXEL_SHIFT)
    thick = max(1, int(round(BROW_THICKNESS * scale)))
    for edges in topo.region_lines.values():
        cv2.polylines(regions, [np.stack([fixed[a], fixed[b]]) for a, b in edges],
                      isClosed=False, color=255, thickness=thick, lineType=cv2.LINE_AA,
                      shift=_SUBPIXEL_SHIFT)
    out[1] = np.clip(_soften(regions.astype(np.float32) / 255.0, REGION_SIGMA * scale), 0.0, 1.0)
    return out


def landmark_map_to_rgb(maps):
    """Landmark maps ``(B, 2, H, W)`` in [0, 1] (a torch tensor) -> ``(B, 3, H, W)`` in [-1, 1]
    for image grids: regions in blue, contours in yellow on top, black background.

    Raises ValueError for any other shape. torch is imported here, not at module import.
    """
    import torch

    if maps.ndim != 4 or maps.shape[1] != 2:
        raise ValueError(f"expected landmark maps (B, 2, H, W), got {tuple(maps.shape)}")
    m = maps.detach().float().clamp(0, 1)
    contour, region = m[:, 0:1], m[:, 1:2]
    c_reg = torch.tensor(MAP_REGION_RGB, dtype=m.dtype, device=m.device).view(1, 3, 1, 1)
    c_con = torch.tensor(MAP_CONTOUR_RGB, dtype=m.dtype, device=m.device).view(1, 3, 1, 1)
    rgb = region * c_reg * (1 - contour) + contour * c_con
    return rgb * 2 - 1
