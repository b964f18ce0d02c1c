"""What the face-network terms (landmark_regressor, identity) share about the batch's points.

The batch carries each photo's cached landmarks after its resize / crop / flip
(``points``, (B, N, 2) pixels, NaN rows where no face was found; N = 468 FaceMesh or 68 iBUG
points, one detector's). Two facts about them matter to a network that expects an upright,
unmirrored face:

- A horizontal flip moves points without renaming them (faces/transforms.py):
  on a flipped photo FaceMesh's point 33 (the subject's right outer eye corner) lies on the
  image's right. A similarity transform cannot undo a mirror, so a box or a chip fitted to
  such points comes out turned by 180 degrees. :func:`mirrored` finds these rows (the eye
  corners and the chin wind the other way round), :func:`upright_boxes` turns their face box
  back and :func:`to_ibug68` renames their points by the iBUG mirror permutation, as a
  detector would have named them on the flipped image.
- FaceMesh's 468 points map to iBUG's 68 by faces/topology.py
  ``FACEMESH_TO_IBUG68`` (fitted and checked against dlib on the fixture faces).
"""
from __future__ import annotations

import math

import torch

from faces.topology import IBUG68_MIRROR, ibug68_index
from faces.facemesh import face_boxes

# iBUG 68 outer eye corners (image-left, image-right on an unmirrored upright face) and chin
EYE_A, EYE_B, CHIN = 36, 45, 8


def face_rows(valid: torch.Tensor, points: torch.Tensor, faces: int = 0) -> torch.Tensor:
    """(K,) indices of the rows with a found face (``valid`` and finite points): the first
    ``faces`` of them, all when 0."""
    ok = valid.to(torch.bool) & torch.isfinite(points).flatten(1).all(dim=1)
    rows = torch.nonzero(ok).flatten()
    return rows[:faces] if faces > 0 else rows


def checked_rows(output: torch.Tensor, photo: torch.Tensor, points: torch.Tensor,
                 valid: torch.Tensor | None, faces: int = 0,
                 rows: torch.Tensor | None = None) -> torch.Tensor:
    """The rows a face-network term runs on, after checking its inputs: ``output`` and
    ``photo`` (B, 3, H, W) alike, ``points`` (B, N, 2); ``valid`` None means every row with
    finite points; ``rows`` given wins. Raises ValueError naming the shapes."""
    if output.dim() != 4 or output.shape[1] != 3 or photo.shape != output.shape:
        raise ValueError(f"output and photo must be (B, 3, H, W) alike, got {tuple(output.shape)} "
                         f"and {tuple(photo.shape)}")
    if points.dim() != 3 or points.shape[0] != output.shape[0] or points.shape[-1] != 2:
        raise ValueError(f"points: expected ({output.shape[0]}, N, 2), got {tuple(points.shape)}")
    if rows is not None:
        return rows
    if valid is None:
        valid = torch.ones(points.shape[0], dtype=torch.bool, device=points.device)
    return face_rows(valid, points, faces)


def ibug68(points: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) points of a known layout (468 or 68) -> (B, 68, 2) in iBUG order, named as
    the detector named them (no mirror correction). Raises ValueError for another N."""
    index = ibug68_index(points.shape[1]) if points.dim() == 3 else None
    if index is None:
        raise ValueError(f"no map from {tuple(points.shape)} landmarks to iBUG's 68 "
                         "(expected (B, 468, 2) FaceMesh or (B, 68, 2) iBUG points)")
    return points[:, list(index)]


def mirrored(points: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the face's points are a mirror image's (a flipped photo's), found by the
    winding of (right eye corner, left eye corner, chin): clockwise on screen (y down) for a
    face as a detector names it, whatever its in-plane rotation."""
    p = ibug68(points)
    u, v = p[:, EYE_B] - p[:, EYE_A], p[:, CHIN] - p[:, EYE_A]
    return (u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]) < 0


def to_ibug68(points: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) -> (B, 68, 2) iBUG points named as a detector would name them in the image
    they are in (mirrored rows renamed by the iBUG mirror permutation)."""
    p = ibug68(points)
    flip = mirrored(points)
    if not bool(flip.any()):
        return p
    return torch.where(flip[:, None, None], p[:, list(IBUG68_MIRROR)], p)


def upright_boxes(points: torch.Tensor) -> torch.Tensor:
    """``faces.facemesh.face_boxes`` of (B, N, 2) points, turned by 180 degrees where the
    points are a mirror image's (their eye-corner direction runs right to left)."""
    boxes = face_boxes(points)
    flip = mirrored(points)
    if not bool(flip.any()):
        return boxes
    angle = boxes[:, 3] + math.pi
    angle = torch.atan2(torch.sin(angle), torch.cos(angle))
    return torch.cat([boxes[:, :3], torch.where(flip, angle, boxes[:, 3])[:, None]], 1)
