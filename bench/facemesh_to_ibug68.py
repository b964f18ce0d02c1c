"""Fit (and check) the FaceMesh-468 -> iBUG-68 point map of faces/topology.py.

How the map is made, so that it can be made again: mediapipe FaceMesh and dlib's 68-point
predictor run on the 49 ffhq-mini photos; FaceMesh's mirror permutation comes from FaceMesh on
each photo and on its mirror image (vertex i of one lands on vertex mirror(i) of the other).
Then for each iBUG point k, among the FaceMesh vertices of the *same part* (jaw: the face
oval; brows: the brow contours; nose: the nose contour; eyes: the eye contours; lips: the lip
contours), the vertex j nearest to dlib's point on average (per inter-ocular distance) is
taken, with the mirror constraint: k and its iBUG mirror get j and mirror(j) (chosen
together), and a point on the midline (8, 27-30, 33, 51, 57, 62, 66) a vertex on FaceMesh's
midline. Printed: the table and how far mapped points lie from dlib's own, per region.

    .venv/bin/python bench/facemesh_to_ibug68.py          # needs mediapipe and dlib
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import FIXTURES  # noqa: E402

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
           "eyes": range(36, 48), "lips": range(48, 68)}
PARTS = {"jaw": ("face_oval",), "brows": ("left_eyebrow", "right_eyebrow"), "nose": ("nose",),
         "eyes": ("left_eye", "right_eye"), "lips": ("lips",)}


def detect_all():
    """(FaceMesh (F, 468, 2), dlib (F, 68, 2), FaceMesh on the mirrored photos mapped back)."""
    from media.decode import read_image_rgb
    from faces import resolve_detector

    mesh, ibug, flipped = [], [], []
    with resolve_detector("mediapipe").build() as mp, resolve_detector("dlib").build() as dl:
        for path in sorted((FIXTURES / "photos").glob("*.jpg")):
            img = read_image_rgb(path)
            a, b = mp.detect(img), dl.detect(img)
            c = mp.detect(np.ascontiguousarray(img[:, ::-1]))
            if a is None or b is None or c is None:
                continue
            c = c.copy()
            c[:, 0] = img.shape[1] - c[:, 0]
            mesh.append(a)
            ibug.append(b)
            flipped.append(c)
    return np.array(mesh), np.array(ibug), np.array(flipped)


def mesh_mirror(mesh: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    iod = np.linalg.norm(mesh[:, 33] - mesh[:, 263], axis=1)
    return np.array([int((np.linalg.norm(flipped - mesh[:, i:i + 1], axis=2) / iod[:, None])
                         .mean(0).argmin()) for i in range(mesh.shape[1])])


def fit(mesh: np.ndarray, ibug: np.ndarray, mirror: np.ndarray) -> list[int]:
    from faces.topology import IBUG68_MIRROR, MEDIAPIPE_468

    iod = np.linalg.norm(ibug[:, 36] - ibug[:, 45], axis=1)

    def err(k, j):
        return float((np.linalg.norm(mesh[:, j] - ibug[:, k], axis=1) / iod).mean())

    table: list[int | None] = [None] * 68
    for region, ks in REGIONS.items():
        cands = sorted({i for part in PARTS[region] for e in MEDIAPIPE_468.contours[part] for i in e})
        for k in ks:
            if table[k] is not None:
                continue
            mk = IBUG68_MIRROR[k]
            if mk == k:
                mid = [j for j in cands if mirror[j] == j] or cands
                table[k] = min(mid, key=lambda j: err(k, j))
            else:
                j = min(cands, key=lambda j: err(k, j) + err(mk, mirror[j]))
                table[k], table[mk] = j, int(mirror[j])
    return [int(j) for j in table]


def errors(mesh, ibug, table) -> dict[str, float]:
    iod = np.linalg.norm(ibug[:, 36] - ibug[:, 45], axis=1)
    e = np.linalg.norm(mesh[:, list(table)] - ibug, axis=2) / iod[:, None]
    out = {r: float(e[:, list(ks)].mean()) for r, ks in REGIONS.items()}
    per_face = e.mean(1)
    out.update(all=float(e.mean()), face_median=float(np.median(per_face)),
               face_p90=float(np.percentile(per_face, 90)))
    return out


def main() -> None:
    from faces.topology import FACEMESH_TO_IBUG68

    mesh, ibug, flipped = detect_all()
    mirror = mesh_mirror(mesh, flipped)
    assert (mirror[mirror] == np.arange(468)).all(), "FaceMesh mirror is not an involution"
    table = fit(mesh, ibug, mirror)
    print(f"{len(mesh)} faces; fitted map:\n{tuple(table)}")
    print("matches topology.FACEMESH_TO_IBUG68:", tuple(table) == FACEMESH_TO_IBUG68)
    for k, v in errors(mesh, ibug, table).items():
        print(f"  {k:<12} {v:.4f}  (mapped FaceMesh vs dlib, per inter-ocular distance)")


if __name__ == "__main__":
    main()
