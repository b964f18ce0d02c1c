"""Landmark regressor loss: where are the output's eyes, brows, lips and jaw, against the photo's?

The edge landmark term (losses/landmark.py, ``--w5``) weights an edge deficit of the output by
the *photo's* landmark map; it never asks where the output's features are. This term runs a
landmark regressor on the output itself (the form of Landmark-assisted CycleGAN, Wu et al.
2019, arXiv:1907.01424): mediapipe's FaceMesh (faces/facemesh.py, the wheel's own network
rebuilt in PyTorch, differentiable) on a face crop of the output, against FaceMesh on the same
crop of the photo.

Per face i of the batch:

    box      = face_boxes(photo's cached landmarks)       (mediapipe's crop: x1.5, eye-aligned;
                                                            upright on flipped photos too:
                                                            losses/face_points.py)
    P, Q     = FaceMesh(crop(photo, box)), FaceMesh(crop(output, box))  (468 points, crop px)
    d_k      = |Q_k - P_k|                                 (x, y; z is a relative depth, unused)
    e_r      = mean of d_k over the points of region r     (REGIONS: eyes, eyebrows, lips,
                                                            face_oval of the project's topology)
    loss_i   = sum_r REGION_WEIGHTS[r] * e_r / sum_r REGION_WEIGHTS[r] / IOD(P)

IOD(P) is the photo's inter-ocular distance (outer eye corners 33/263 of P). Both point sets
are in the pixels of the same 192-px crop (one box, from the photo's landmarks), so no
transform sits between them, and the ratio is the same in image pixels. The output crop is
clamped to [0, 1] first: what a saved image shows (G has no output activation).

Region weights (``REGION_WEIGHTS``): 1 each, i.e. every region's *mean* error counts alike,
whatever its number of points: mean over all 128 points would give the 40 lip and 36 oval
points more say than the 32 eye points, and the eyes are what a cartoon loses first. They
are a module default (tests/losses/test_landmark_regressor.py checks them and the formula by
hand).

Faces: only photos whose landmarks were found (``valid``) and whose photo crop FaceMesh still
sees as a face (``sigmoid(logit) > PRESENCE``, mediapipe's own threshold) count; the batch
loss is the mean over them, and a batch without any gives a zero that is still on the graph.
``faces > 0`` runs the term on the first ``faces`` such photos of the batch only (the cost
control of ``--face_crops``: the batch order is the sampler's random one, so that is a random
subset, without random numbers of its own).

Precision: AUTOCAST = False, i.e. the term runs in float32 inside a bf16 run, because bf16
costs accuracy here. Measured on the 49 fixture faces at 128 px (bench/bench_face_terms.py,
one face per call): the term is a *difference* of two FaceMesh point sets, and bf16's
rounding of the trunk (0.05 px per point on average, faces/facemesh.py) does not cancel in
it. Mean |bf16 - fp32| per face: 0.0009 on a sigma-1 blur (term 0.0129, 7%), 0.0018 on the
authors' cartoons (term 0.0254, 7%; at most 0.018), 0.0006 on a 10% eye magnification (term
0.0045, 13%): bf16's noise is the size of the signal of a small eye change. bf16 is not
faster on these CPUs either (0.41 s against 0.49 s for 8 faces forward + backward, within
the noise of a shared machine). The photo side runs without gradient.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import torch
from torch import nn

from faces.topology import MEDIAPIPE_468
from faces.facemesh import CROP_SIZE, crop_faces
from losses.face_points import checked_rows, upright_boxes

# Defaults: the only numbers in the loss, kept in one place.
REGIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    # region -> the topology's contour parts whose points it holds
    "eyes": ("left_eye", "right_eye"),
    "eyebrows": ("left_eyebrow", "right_eyebrow"),
    "lips": ("lips",),
    "face_oval": ("face_oval",),
})
REGION_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"eyes": 1.0, "eyebrows": 1.0, "lips": 1.0, "face_oval": 1.0})
PRESENCE = 0.5       # sigmoid(logit) above which FaceMesh sees a face (mediapipe's threshold)
AUTOCAST = False     # float32 inside a bf16 run: see the module docstring for the measurement
# Landmark layouts the box can be made from (faces.facemesh.face_boxes: 468 FaceMesh points or
# dlib's 68, each with its eye corners for the rotation).
TOPOLOGIES = ("mediapipe468", "ibug68")
_EPS = 1e-6          # below this inter-ocular distance (crop px) a face is degenerate: skipped


def region_indices(topology=MEDIAPIPE_468) -> dict[str, torch.Tensor]:
    """{region: (K,) long tensor of point indices} of :data:`REGIONS` in ``topology``."""
    out = {}
    for region, parts in REGIONS.items():
        idx = sorted({i for part in parts for edge in topology.contours[part] for i in edge})
        out[region] = torch.tensor(idx, dtype=torch.long)
    return out


def landmark_error(output_points: torch.Tensor, photo_points: torch.Tensor,
                   region_weights: Mapping[str, float] = REGION_WEIGHTS) -> torch.Tensor:
    """Per-face error ``(B,)``: the region-weighted mean point-to-point distance between
    ``output_points`` and ``photo_points`` ``(B, 468, 2 or 3)`` (same pixel frame; z ignored),
    divided by the photo's inter-ocular distance (points 33/263). The photo side is a constant.

    >>> p = torch.zeros(1, 468, 2); p[:, 263, 0] = 10.0
    >>> q = p.clone(); q[:, :, 1] += 1.0          # every point 1 px lower: error 1 / 10
    >>> round(float(landmark_error(q, p)), 6)
    0.1
    """
    if output_points.shape != photo_points.shape or output_points.dim() != 3 \
            or output_points.shape[1] != MEDIAPIPE_468.num_points:
        raise ValueError(f"expected two (B, 468, 2 or 3) point sets, got {tuple(output_points.shape)} "
                         f"and {tuple(photo_points.shape)}")
    q = output_points[..., :2]
    p = photo_points.detach()[..., :2].to(q.dtype)
    d = torch.linalg.vector_norm(q - p, dim=-1)                      # (B, 468)
    total = torch.zeros(d.shape[0], dtype=d.dtype, device=d.device)
    weight_sum = 0.0
    for region, idx in region_indices().items():
        w = float(region_weights.get(region, 0.0))
        if w:
            total = total + w * d[:, idx.to(d.device)].mean(dim=1)
            weight_sum += w
    if weight_sum <= 0:
        raise ValueError(f"region weights {dict(region_weights)} are all 0")
    a, b = MEDIAPIPE_468.eye_outer
    iod = torch.linalg.vector_norm(p[:, b] - p[:, a], dim=-1).clamp_min(_EPS)
    return total / weight_sum / iod


def landmark_regressor_loss(output: torch.Tensor, photo: torch.Tensor, points: torch.Tensor,
                            valid: torch.Tensor | None, net: nn.Module, faces: int = 0,
                            region_weights: Mapping[str, float] = REGION_WEIGHTS,
                            rows: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, number of faces it was computed on): the scalar term, unweighted, float32.

    output: (B, 3, H, W) generator output in [-1, 1] (differentiable).
    photo:  (B, 3, H, W) the photos in [-1, 1] (constants).
    points: (B, N, 2) the photos' landmarks in pixels (468 FaceMesh or 68 dlib points; NaN
            rows: no face), after the batch's resize / crop / flip.
    valid:  (B,) bool "face found" (None: every row with finite points).
    net:    FaceMeshNet (or anything with its interface: (B, 3, 192, 192) [0, 1] crops ->
            ((B, 468, 3) crop px, (B,) logits)).
    faces:  compute on the first ``faces`` found faces only (0: all); ``rows`` overrides.
    """
    rows = checked_rows(output, photo, points, valid, faces, rows)
    zero = output.sum() * 0.0  # on the graph: a batch without faces still backpropagates
    if rows.numel() == 0:
        return zero.float(), torch.zeros((), device=output.device)
    boxes = upright_boxes(points[rows].float())
    with torch.no_grad():
        photo_crops, _ = crop_faces(photo[rows].detach().float(), boxes, CROP_SIZE)
        photo_points, photo_logit = net(photo_crops)
    out_crops, _ = crop_faces(output[rows].float(), boxes, CROP_SIZE)
    out_points, _ = net(out_crops.clamp(0.0, 1.0))
    per_face = landmark_error(out_points.float(), photo_points.float(), region_weights)
    use = torch.sigmoid(photo_logit.float()) > PRESENCE
    n = use.sum()
    total = torch.where(use, per_face, torch.zeros_like(per_face)).sum()
    return total / n.clamp_min(1).to(total.dtype) + zero.float(), n.float()


def term(state) -> torch.Tensor:
    """The trainer's term (see losses/registry.py for ``state``); logs the number of faces it
    ran on as ``landmark_regressor/faces``."""
    loss, n = landmark_regressor_loss(state.output, state.photo, state.points, state.valid,
                                      state.network("facemesh"), rows=state.face_rows())
    state.log("landmark_regressor/faces", n)
    return loss
