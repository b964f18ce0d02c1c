"""The batch's face points for the face-network terms (losses/face_points.py) and the
FaceMesh -> iBUG-68 map (faces/topology.py): the map against dlib's own 68 points
on fixture faces, mirror detection and renaming against dlib on mirrored photos, and face
boxes that stay upright on flipped photos."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faces.topology import (FACEMESH_TO_IBUG68, IBUG68_MIRROR, MEDIAPIPE_468,
                            ibug68_index)
from losses.face_points import face_rows, ibug68, mirrored, to_ibug68, upright_boxes
from tests.conftest import fixtures_dir, requires_dlib, requires_mediapipe

# iBUG parts (Sagonas et al. 2013), written out here
JAW, BROWS, NOSE, EYES, LIPS = (range(0, 17), range(17, 27), range(27, 36), range(36, 48),
                                range(48, 68))
MIDLINE = {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}


def synthetic_68(angle: float = 0.0) -> torch.Tensor:
    """(1, 68, 2) points of an upright face (eyes at y 40, chin at y 90), turned by ``angle``."""
    p = torch.zeros(68, 2)
    p[:, 0], p[:, 1] = 50.0, 60.0
    p[36], p[45], p[8] = torch.tensor([30.0, 40.0]), torch.tensor([70.0, 40.0]), torch.tensor([50.0, 90.0])
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]])
    return ((p - 50) @ rot.T + 50)[None]


def flip(points: torch.Tensor, width: float = 100.0) -> torch.Tensor:
    out = points.clone()
    out[..., 0] = width - out[..., 0]
    return out


# --------------------------------------------------------------------------- structure
def test_map_and_mirror_tables():
    m = np.array(IBUG68_MIRROR)
    assert sorted(m) == list(range(68)) and (m[m] == np.arange(68)).all()
    assert {k for k in range(68) if m[k] == k} == MIDLINE
    assert (m[36], m[39], m[0], m[48], m[60]) == (45, 42, 16, 54, 64)
    assert len(FACEMESH_TO_IBUG68) == 68 and len(set(FACEMESH_TO_IBUG68)) == 68
    # every iBUG point maps to a FaceMesh vertex of the same part
    def part(*names):
        return {i for n in names for e in MEDIAPIPE_468.contours[n] for i in e}
    for ks, verts in ((JAW, part("face_oval")), (BROWS, part("left_eyebrow", "right_eyebrow")),
                      (NOSE, part("nose")), (EYES, part("left_eye", "right_eye")), (LIPS, part("lips"))):
        assert all(FACEMESH_TO_IBUG68[k] in verts for k in ks)
    assert FACEMESH_TO_IBUG68[8] == 152 and FACEMESH_TO_IBUG68[48] == 61 and FACEMESH_TO_IBUG68[54] == 291
    assert ibug68_index(68) == tuple(range(68)) and ibug68_index(5) is None
    with pytest.raises(ValueError, match="iBUG"):
        ibug68(torch.zeros(1, 5, 2))


def test_face_rows_and_mirror_winding_under_rotation():
    valid = torch.tensor([True, False, True])
    pts = torch.zeros(3, 68, 2)
    pts[2, 0] = float("nan")
    assert face_rows(valid, pts).tolist() == [0]
    for angle in (0.0, 0.7, math.pi / 2, 2.5, math.pi):       # upright, turned, upside down
        p = synthetic_68(angle)
        assert not bool(mirrored(p)) and bool(mirrored(flip(p)))
    # renaming a mirrored face's points: the image-left eye corner becomes 36 again
    f = flip(synthetic_68())
    named = to_ibug68(f)
    assert named[0, 36, 0] < named[0, 45, 0] and not bool(mirrored(named))
    torch.testing.assert_close(to_ibug68(synthetic_68()), synthetic_68())


def test_boxes_of_flipped_points_stay_upright():
    for angle in (0.0, 0.3, -0.5):
        p = synthetic_68(angle)
        box, fbox = upright_boxes(p)[0], upright_boxes(flip(p))[0]
        assert abs(float(box[3]) - angle) < 1e-5                 # the face's own rotation
        assert abs(float(fbox[3]) + angle) < 1e-5                # the mirror image's: -angle
        torch.testing.assert_close(fbox[2], box[2])
        assert abs(float(fbox[0]) - (100 - float(box[0]))) < 1e-4


# ----------------------------------------------------------- against dlib on fixture faces
def _fixture_photos(n=None):
    from media.decode import read_image_rgb

    folder = fixtures_dir("ffhq-mini", "photos")
    paths = sorted(folder.glob("*.jpg"))
    return [read_image_rgb(p) for p in paths[:n]]


@pytest.fixture(scope="module")
def dlib_points():
    """[(image, dlib 68 points, dlib 68 points of the mirrored image)] for the fixture photos."""
    from faces import resolve_detector

    out = []
    with resolve_detector("dlib").build() as det:
        for img in _fixture_photos():
            a = det.detect(img)
            b = det.detect(np.ascontiguousarray(img[:, ::-1]))
            if a is not None and b is not None:
                out.append((img, a, b))
    return out


@requires_dlib
def test_renamed_flipped_points_are_what_dlib_finds_on_the_flipped_photo(dlib_points):
    errs, unnamed = [], []
    for img, a, b in dlib_points:
        pts = torch.from_numpy(a)[None]
        fl = flip(pts, img.shape[1])
        assert bool(mirrored(fl)) and not bool(mirrored(pts)) and not bool(mirrored(torch.from_numpy(b)[None]))
        iod = float(np.linalg.norm(b[36] - b[45]))
        errs.append(float((to_ibug68(fl)[0] - torch.from_numpy(b)).norm(dim=-1).mean()) / iod)
        unnamed.append(float((fl[0] - torch.from_numpy(b)).norm(dim=-1).mean()) / iod)
    assert len(errs) >= 45
    assert np.median(errs) < 0.03 and np.median(unnamed) > 0.3, (np.median(errs), np.median(unnamed))


@requires_dlib
@requires_mediapipe
def test_mapped_facemesh_points_lie_near_dlibs_own(dlib_points):
    from faces import resolve_detector

    per_face, regions = [], {r: [] for r in ("jaw", "brows", "nose", "eyes", "lips")}
    with resolve_detector("mediapipe").build() as det:
        for img, a, _ in dlib_points:
            mesh = det.detect(img)
            if mesh is None:
                continue
            mapped = ibug68(torch.from_numpy(mesh)[None])[0].numpy()
            d = np.linalg.norm(mapped - a, axis=1) / np.linalg.norm(a[36] - a[45])
            per_face.append(d.mean())
            for r, ks in zip(regions, (JAW, BROWS, NOSE, EYES, LIPS)):
                regions[r].append(d[list(ks)].mean())
    means = {r: float(np.mean(v)) for r, v in regions.items()}
    # bench/facemesh_to_ibug68.py: jaw 0.092, brows 0.061, nose 0.034, eyes 0.031, lips 0.032
    assert means["eyes"] < 0.04 and means["nose"] < 0.045 and means["lips"] < 0.04, means
    assert means["brows"] < 0.08 and means["jaw"] < 0.12, means
    assert np.median(per_face) < 0.05 and np.percentile(per_face, 90) < 0.08
