"""Topologies (faces/topology.py): index sets against mediapipe and iBUG 300-W."""
from __future__ import annotations

import numpy as np
import pytest

from faces import topology as T
from faces.topology import IBUG_68, MEDIAPIPE_468, inter_ocular_distance, topology_of
from tests.conftest import requires_mediapipe


@requires_mediapipe
def test_mediapipe_connection_sets_equal_mediapipe():
    from mediapipe.python.solutions import face_mesh_connections as mpc

    for name in ("FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYEBROW",
                 "FACEMESH_RIGHT_EYEBROW", "FACEMESH_LIPS", "FACEMESH_NOSE",
                 "FACEMESH_FACE_OVAL"):
        assert set(getattr(T, name)) == set(getattr(mpc, name)), name


@requires_mediapipe
def test_mediapipe_tasks_uses_the_same_indices():
    """The Tasks FaceLandmarker's connection sets (478-point model) are FaceMesh's: its first
    468 points share the mesh topology."""
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections as C

    pairs = {"LEFT_EYE": T.FACEMESH_LEFT_EYE, "RIGHT_EYE": T.FACEMESH_RIGHT_EYE,
             "LEFT_EYEBROW": T.FACEMESH_LEFT_EYEBROW, "RIGHT_EYEBROW": T.FACEMESH_RIGHT_EYEBROW,
             "LIPS": T.FACEMESH_LIPS, "FACE_OVAL": T.FACEMESH_FACE_OVAL}
    for name, ours in pairs.items():
        theirs = {(c.start, c.end) for c in getattr(C, f"FACE_LANDMARKS_{name}")}
        assert theirs == set(ours), name


@pytest.mark.parametrize("topo", [MEDIAPIPE_468, IBUG_68], ids=lambda t: t.name)
def test_indices_are_in_range_and_parts_are_complete(topo):
    used = set()
    for part in (topo.contours, topo.region_lines):
        for edges in part.values():
            used |= {i for e in edges for i in e}
    for idx in topo.region_hulls.values():
        used |= set(idx)
    assert max(used) < topo.num_points and min(used) >= 0
    assert set(topo.contours) == {"left_eye", "right_eye", "left_eyebrow", "right_eyebrow",
                                  "lips", "nose", "face_oval"}
    assert set(topo.region_hulls) == {"left_eye", "right_eye", "mouth", "nose"}
    assert all(i in used for i in topo.eye_outer)


def test_ibug68_layout():
    """iBUG 300-W: jaw 0-16 (open), brows 17-21 / 22-26, nose 27-35, eyes 36-41 / 42-47
    (closed), outer lip 48-59 and inner lip 60-67 (closed); every point drawn."""
    c = IBUG_68.contours
    assert {i for e in c["face_oval"] for i in e} == set(range(17))
    assert (16, 0) not in c["face_oval"] and (0, 16) not in c["face_oval"]    # no forehead
    assert {i for e in c["right_eyebrow"] for i in e} == set(range(17, 22))
    assert {i for e in c["left_eyebrow"] for i in e} == set(range(22, 27))
    assert {i for e in c["nose"] for i in e} == set(range(27, 36))
    assert {i for e in c["right_eye"] for i in e} == set(range(36, 42)) and (41, 36) in c["right_eye"]
    assert {i for e in c["left_eye"] for i in e} == set(range(42, 48)) and (47, 42) in c["left_eye"]
    assert {i for e in c["lips"] for i in e} == set(range(48, 68))
    assert IBUG_68.region_hulls["mouth"] == tuple(range(48, 60))
    every = {i for edges in c.values() for e in edges for i in e}
    assert every == set(range(68))
    assert IBUG_68.eye_outer == (36, 45) and MEDIAPIPE_468.eye_outer == (33, 263)


def test_topology_of_and_inter_ocular_distance():
    p468 = np.zeros((468, 2), np.float32)
    p468[33], p468[263] = (10, 20), (13, 24)
    p68 = np.zeros((68, 2), np.float32)
    p68[36], p68[45] = (0, 0), (6, 8)
    assert topology_of(p468) is MEDIAPIPE_468 and topology_of(p68) is IBUG_68
    assert inter_ocular_distance(p468) == pytest.approx(5.0)
    assert inter_ocular_distance(p68) == pytest.approx(10.0)
    for bad in (np.zeros((478, 2)), np.zeros((68, 3)), np.zeros(68)):
        with pytest.raises(ValueError, match="468, 2"):
            topology_of(bad)


def test_topologies_are_immutable():
    with pytest.raises(TypeError):
        IBUG_68.contours["extra"] = ()          # a read-only mapping
    with pytest.raises(AttributeError):
        IBUG_68.num_points = 5                  # a frozen dataclass
