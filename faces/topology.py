"""Landmark topologies: which point indices form the eyes, brows, lips, nose and face outline.

A topology is what the landmark map needs to know about a detector's points: the contour
edges drawn into channel 0, the regions filled into channel 1 and the two outer eye corners
that set the face's scale. Two exist:

- ``MEDIAPIPE_468``: the 468-point face mesh of mediapipe FaceMesh (legacy API) and of the
  first 468 of the 478 points of the mediapipe Tasks FaceLandmarker (the last 10 are irises,
  unused). The connection sets are those of mediapipe 0.10.21
  (``mediapipe/python/solutions/face_mesh_connections.py``), copied so that rendering never
  imports mediapipe; tests/datasets/test_landmarks.py checks they still equal mediapipe's.
  The face oval is closed and runs over the forehead.
- ``IBUG_68``: the 68 points of the iBUG 300-W annotation that dlib's
  ``shape_predictor_68_face_landmarks.dat`` predicts (Sagonas et al., "300 Faces in-the-Wild
  Challenge", ICCV-W 2013): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67 (outer
  lip 48-59, inner lip 60-67). Its face outline is the open jaw line 0-16: there is no
  forehead part, so the map of a 68-point face has no contour above the brows.

"Left" and "right" are the subject's sides (mediapipe's convention): the subject's right eye
is on the image's left. Indices are never swapped on a horizontal flip; the map draws both
sides alike, so a flipped face gives the flipped map.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

Edges = tuple[tuple[int, int], ...]

# --- mediapipe face mesh (468 points) ---------------------------------------------------------
FACEMESH_LEFT_EYE: Edges = (
    (249, 390), (263, 249), (263, 466), (373, 374), (374, 380), (380, 381), (381, 382),
    (382, 362), (384, 398), (385, 384), (386, 385), (387, 386), (388, 387), (390, 373),
    (398, 362), (466, 388))
FACEMESH_RIGHT_EYE: Edges = (
    (7, 163), (33, 7), (33, 246), (144, 145), (145, 153), (153, 154), (154, 155), (155, 133),
    (157, 173), (158, 157), (159, 158), (160, 159), (161, 160), (163, 144), (173, 133),
    (246, 161))
FACEMESH_LEFT_EYEBROW: Edges = (
    (276, 283), (282, 295), (283, 282), (293, 334), (295, 285), (296, 336), (300, 293),
    (334, 296))
FACEMESH_RIGHT_EYEBROW: Edges = (
    (46, 53), (52, 65), (53, 52), (63, 105), (65, 55), (66, 107), (70, 63), (105, 66))
FACEMESH_LIPS: Edges = (
    (0, 267), (13, 312), (14, 317), (17, 314), (37, 0), (39, 37), (40, 39), (61, 146),
    (61, 185), (78, 95), (78, 191), (80, 81), (81, 82), (82, 13), (84, 17), (87, 14),
    (88, 178), (91, 181), (95, 88), (146, 91), (178, 87), (181, 84), (185, 40), (191, 80),
    (267, 269), (269, 270), (270, 409), (310, 415), (311, 310), (312, 311), (314, 405),
    (317, 402), (318, 324), (321, 375), (324, 308), (375, 291), (402, 318), (405, 321),
    (409, 291), (415, 308))
FACEMESH_NOSE: Edges = (
    (1, 19), (2, 326), (4, 1), (4, 45), (5, 4), (6, 197), (19, 94), (45, 220), (48, 64),
    (64, 98), (94, 2), (97, 2), (98, 97), (115, 48), (168, 6), (195, 5), (197, 195),
    (220, 115), (275, 4), (278, 344), (294, 278), (326, 327), (327, 294), (344, 440),
    (440, 275))
FACEMESH_FACE_OVAL: Edges = (
    (10, 338), (21, 54), (54, 103), (58, 132), (67, 109), (93, 234), (103, 67), (109, 10),
    (127, 162), (132, 93), (136, 172), (148, 176), (149, 150), (150, 136), (152, 148),
    (162, 21), (172, 58), (176, 149), (234, 127), (251, 389), (284, 251), (288, 397),
    (297, 332), (323, 361), (332, 284), (338, 297), (356, 454), (361, 288), (365, 379),
    (377, 152), (378, 400), (379, 378), (389, 356), (397, 365), (400, 377), (454, 323))


# --- iBUG 300-W (68 points) -------------------------------------------------------------------
def _chain(first: int, last: int, closed: bool = False) -> Edges:
    """Edges of the polyline first, first+1, ..., last (and back to first when closed)."""
    edges = tuple((i, i + 1) for i in range(first, last))
    return edges + ((last, first),) if closed else edges


IBUG_JAW = _chain(0, 16)
IBUG_RIGHT_EYEBROW = _chain(17, 21)          # subject's right: image left
IBUG_LEFT_EYEBROW = _chain(22, 26)
# Bridge 27-30, nostril base 31-35, and the tip 30 joined to both nostril wings.
IBUG_NOSE = _chain(27, 30) + _chain(31, 35) + ((30, 31), (30, 35))
IBUG_RIGHT_EYE = _chain(36, 41, closed=True)
IBUG_LEFT_EYE = _chain(42, 47, closed=True)
IBUG_OUTER_LIPS = _chain(48, 59, closed=True)
IBUG_LIPS = IBUG_OUTER_LIPS + _chain(60, 67, closed=True)


def _indices(edges: Iterable[tuple[int, int]]) -> tuple[int, ...]:
    return tuple(sorted({i for edge in edges for i in edge}))


@dataclass(frozen=True)
class Topology:
    """What the landmark map needs to know about one detector's points.

    name: ``"mediapipe468"`` or ``"ibug68"``.
    num_points: the length of a point array, ``(num_points, 2)``.
    contours: part name -> edges ``(a, b)`` drawn as thin lines into channel 0 of the map
        (eyes, brows, lips, nose, face outline).
    region_hulls: part name -> point indices whose convex hull is filled into channel 1
        (eyes, mouth, nose).
    region_lines: part name -> edges drawn as thick lines into channel 1 (brows: thin arcs
        whose hull would cover the eyelid).
    eye_outer: (subject's right, subject's left) outer eye corner indices; their distance is
        the inter-ocular distance that scales the map and normalises the NME.
    """

    name: str
    num_points: int
    contours: Mapping[str, Edges]
    region_hulls: Mapping[str, tuple[int, ...]]
    region_lines: Mapping[str, Edges]
    eye_outer: tuple[int, int]
    # This layout's eye-corner distance -> FaceMesh's (points 33/263), the unit of a
    # generator's face_size. dlib's points 36/45 lie a little inside FaceMesh's: median ratio
    # 1.033 over the 49 fixture photos (10th-90th percentile 0.996-1.077,
    # bench/bench_landmarks.py).
    to_facemesh_corners: float = 1.0

    def inter_ocular_distance(self, points: np.ndarray) -> float:
        """Distance between the outer eye corners of ``(num_points, 2)`` points, in their units."""
        p = np.asarray(points, dtype=np.float64)
        return float(np.linalg.norm(p[self.eye_outer[0]] - p[self.eye_outer[1]]))

    def face_size(self, points: np.ndarray) -> float:
        """The face's scale in FaceMesh outer-eye-corner pixels, whatever the layout: what a
        generator file's ``face_size`` records and portrait mode matches."""
        return self.inter_ocular_distance(points) * self.to_facemesh_corners


MEDIAPIPE_468 = Topology(
    name="mediapipe468",
    num_points=468,
    contours=MappingProxyType({
        "left_eye": FACEMESH_LEFT_EYE, "right_eye": FACEMESH_RIGHT_EYE,
        "left_eyebrow": FACEMESH_LEFT_EYEBROW, "right_eyebrow": FACEMESH_RIGHT_EYEBROW,
        "lips": FACEMESH_LIPS, "nose": FACEMESH_NOSE, "face_oval": FACEMESH_FACE_OVAL}),
    region_hulls=MappingProxyType({
        "left_eye": _indices(FACEMESH_LEFT_EYE), "right_eye": _indices(FACEMESH_RIGHT_EYE),
        "mouth": _indices(FACEMESH_LIPS), "nose": _indices(FACEMESH_NOSE)}),
    region_lines=MappingProxyType({
        "left_eyebrow": FACEMESH_LEFT_EYEBROW, "right_eyebrow": FACEMESH_RIGHT_EYEBROW}),
    eye_outer=(33, 263),
)

IBUG_68 = Topology(
    name="ibug68",
    num_points=68,
    contours=MappingProxyType({
        "left_eye": IBUG_LEFT_EYE, "right_eye": IBUG_RIGHT_EYE,
        "left_eyebrow": IBUG_LEFT_EYEBROW, "right_eyebrow": IBUG_RIGHT_EYEBROW,
        "lips": IBUG_LIPS, "nose": IBUG_NOSE, "face_oval": IBUG_JAW}),
    region_hulls=MappingProxyType({
        "left_eye": _indices(IBUG_LEFT_EYE), "right_eye": _indices(IBUG_RIGHT_EYE),
        "mouth": _indices(IBUG_OUTER_LIPS), "nose": _indices(IBUG_NOSE)}),
    region_lines=MappingProxyType({
        "left_eyebrow": IBUG_LEFT_EYEBROW, "right_eyebrow": IBUG_RIGHT_EYEBROW}),
    eye_outer=(36, 45),
    to_facemesh_corners=1.033,
)

# iBUG 68 under a horizontal mirror: point k of a face is point IBUG68_MIRROR[k] of its
# mirror image (jaw k <-> 16 - k, brows, nose wings, eyes, lips; the midline maps to itself).
IBUG68_MIRROR: tuple[int, ...] = (
    tuple(range(16, -1, -1)) + tuple(range(26, 16, -1)) + (27, 28, 29, 30) + (35, 34, 33, 32, 31)
    + (45, 44, 43, 42, 47, 46) + (39, 38, 37, 36, 41, 40)
    + (54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55) + (64, 63, 62, 61, 60, 67, 66, 65))

# FaceMesh-468 vertex standing in for each iBUG-68 point (points 0..67 in order). Made by
# bench/facemesh_to_ibug68.py: for each iBUG point, the vertex of the same part (jaw: the
# face oval; brows, nose, eyes, lips: their FaceMesh contours) nearest to dlib's point on the
# 49 ffhq-mini photos, mirror-symmetric (a point and its mirror get a vertex and its mirror;
# midline points midline vertices). Mapped points lie from dlib's own (per inter-ocular
# distance, mean over the fixture faces): jaw 0.092, brows 0.061, nose 0.034, eyes 0.031, lips
# 0.032; median face 0.044 (dlib's own photo-vs-cartoon nme68 is 0.035). dlib's eye corners
# sit inside FaceMesh's (36 -> 7, 39 -> 155, not 33 and 133): see Topology.to_facemesh_corners.
FACEMESH_TO_IBUG68: tuple[int, ...] = (
    127, 234, 132, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 361, 454, 356,  # jaw
    70, 63, 105, 66, 55, 285, 296, 334, 293, 300,                                          # brows
    168, 197, 5, 4, 98, 97, 2, 326, 327,                                                   # nose
    7, 160, 158, 155, 153, 144, 382, 385, 387, 249, 373, 380,                              # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,                                   # outer lips
    78, 82, 13, 312, 308, 317, 14, 87)                                                     # inner lips


def ibug68_index(num_points: int) -> tuple[int, ...] | None:
    """Indices that take a ``(num_points, 2)`` landmark array to iBUG-68 order: identity for
    68 points, :data:`FACEMESH_TO_IBUG68` for FaceMesh's 468; None for a layout with no map."""
    if num_points == IBUG_68.num_points:
        return tuple(range(68))
    if num_points == MEDIAPIPE_468.num_points:
        return FACEMESH_TO_IBUG68
    return None


TOPOLOGIES: Mapping[str, Topology] = MappingProxyType({t.name: t for t in (MEDIAPIPE_468, IBUG_68)})
_BY_COUNT: Mapping[int, Topology] = MappingProxyType({t.num_points: t for t in TOPOLOGIES.values()})


def topology_of(points: np.ndarray) -> Topology:
    """The topology of a ``(N, 2)`` point array, from N (468 or 68).

    Raises ValueError for any other shape.
    """
    shape = np.shape(points)
    topo = _BY_COUNT.get(shape[0]) if len(shape) == 2 and shape[1] == 2 else None
    if topo is None:
        raise ValueError(f"expected landmarks of shape (468, 2) or (68, 2), got {shape}")
    return topo


def inter_ocular_distance(points: np.ndarray) -> float:
    """Distance between the outer eye corners of 468- or 68-point landmarks (points 33/263 or
    36/45), in the points' pixel units."""
    return topology_of(points).inter_ocular_distance(points)
