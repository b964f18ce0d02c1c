"""Landmark regressor loss (losses/landmark_regressor.py): the error formula and its region
weights by hand, which faces count, and, with the real FaceMesh on fixture faces, zero for
output = photo, growth with an eye warp and with blur, and gradients into a generator.

FaceMesh's file ships in the mediapipe wheel: where mediapipe is absent (the numpy-2
environment) the real-network tests skip; the others use a stand-in network."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from faces.topology import MEDIAPIPE_468
from losses.face_points import face_rows
from losses.landmark_regressor import (REGION_WEIGHTS, landmark_error,
                                       landmark_regressor_loss, region_indices)
from tests.losses.face_data import (BLUR_SIGMAS, EYE_WARPS, LEFT_EYE, RIGHT_EYE,
                                   assert_gradients_reach_a_generator, blur, fixture_faces,
                                   to_tensor, values_under, warp_eyes)
from utils.errors import ToonFaceError

# The region point sets, counted independently: mediapipe's FACEMESH_* contour sets have
# 16 points per eye, 10 per brow, 40 on the lips and 36 on the face oval.
REGION_SIZES = {"eyes": 32, "eyebrows": 20, "lips": 40, "face_oval": 36}


class StandIn(nn.Module):
    """A deterministic, differentiable stand-in for FaceMeshNet: 468 points spread over the
    crop, each shifted by the mean colour of a patch around it; logit +5 (a face)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.base = torch.rand(468, 2, generator=g) * 150 + 21
        self.base[33], self.base[263] = torch.tensor([60.0, 80.0]), torch.tensor([132.0, 80.0])
        self.mix = torch.randn(192, 468 * 2, generator=g)
        self.calls = 0

    def forward(self, crops):
        self.calls += crops.shape[0]
        pooled = nn.functional.adaptive_avg_pool2d(crops, 8).flatten(1)  # (B, 192)
        pts = self.base[None] + (pooled @ self.mix).view(-1, 468, 2)
        z = torch.zeros(*pts.shape[:2], 1)
        return torch.cat([pts, z], -1), torch.full((crops.shape[0],), 5.0)


@pytest.fixture(scope="module")
def facemesh():
    try:
        from faces.facemesh import FaceMeshNet

        return FaceMeshNet.from_package()
    except ToonFaceError as exc:
        pytest.skip(f"needs mediapipe==0.10.21, whose wheel ships face_landmark.tflite: {exc}")


@pytest.fixture(scope="module")
def faces():
    images, points = fixture_faces(4)
    return images, torch.from_numpy(points)


# ------------------------------------------------------------------------ the formula
def test_regions_are_the_topology_parts_and_weigh_alike():
    idx = region_indices()
    assert {k: len(v) for k, v in idx.items()} == REGION_SIZES
    assert set(idx["eyes"].tolist()) == set(LEFT_EYE) | set(RIGHT_EYE)
    assert 33 in idx["eyes"].tolist() and 263 in idx["eyes"].tolist()
    assert dict(REGION_WEIGHTS) == {"eyes": 1.0, "eyebrows": 1.0, "lips": 1.0, "face_oval": 1.0}
    # the regions do not share points: each point's error counts in one region only
    all_idx = torch.cat(list(idx.values()))
    assert len(set(all_idx.tolist())) == len(all_idx)


def test_error_by_hand():
    p = torch.zeros(2, 468, 3)
    p[:, 33, 0], p[:, 263, 0] = 10.0, 50.0            # inter-ocular distance 40
    q = p.clone()
    eyes = region_indices()["eyes"]
    q[0, eyes, 1] += 2.0                               # face 0: every eye point 2 px lower
    lips = region_indices()["lips"]
    q[1, lips[:10], 0] += 8.0                          # face 1: 10 of 40 lip points 8 px right
    q[:, :, 2] += 100.0                                # z is not part of the error
    got = landmark_error(q, p)
    # face 0: eyes mean 2, other regions 0 -> (2 + 0 + 0 + 0) / 4 / 40
    # face 1: lips mean 8 * 10 / 40 = 2 -> 2 / 4 / 40
    torch.testing.assert_close(got, torch.tensor([2 / 4 / 40, 2 / 4 / 40]))
    # per-region weights: eyes 3, lips 1, the rest 0 -> face 0: 3 * 2 / 4 / 40
    w = {"eyes": 3.0, "lips": 1.0, "eyebrows": 0.0, "face_oval": 0.0}
    torch.testing.assert_close(landmark_error(q, p, w), torch.tensor([6 / 4 / 40, 2 / 4 / 40]))
    # normalised by the *photo's* inter-ocular distance: scaling both sets changes nothing
    torch.testing.assert_close(landmark_error(3 * q, 3 * p), got)
    with pytest.raises(ValueError, match="all 0"):
        landmark_error(q, p, {"eyes": 0.0})
    with pytest.raises(ValueError, match="468"):
        landmark_error(q[:, :68], p[:, :68])


def test_gradient_at_zero_is_finite():
    p = torch.rand(1, 468, 2) * 100
    q = p.clone().requires_grad_()
    landmark_error(q, p).backward()
    assert torch.isfinite(q.grad).all() and float(landmark_error(q, p).detach()) == 0.0


def test_face_rows_take_the_first_found_faces():
    valid = torch.tensor([False, True, True, True, True])
    pts = torch.zeros(5, 468, 2)
    pts[2] = float("nan")                              # a cache row without a face
    assert face_rows(valid, pts).tolist() == [1, 3, 4]
    assert face_rows(valid, pts, 2).tolist() == [1, 3]


def test_faces_without_landmarks_contribute_zero_and_module_equals_function():
    net = StandIn()
    g = torch.Generator().manual_seed(1)
    photo = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    out = (photo + 0.3 * torch.rand(3, 3, 64, 64, generator=g)).requires_grad_()
    pts = torch.rand(3, 468, 2, generator=g) * 30 + 17
    pts[1] = float("nan")
    valid = torch.tensor([True, False, True])
    both, n = landmark_regressor_loss(out, photo, pts, valid, net)
    assert float(n) == 2
    single = [landmark_regressor_loss(out[i:i + 1], photo[i:i + 1], pts[i:i + 1], None, net)[0]
              for i in (0, 2)]
    torch.testing.assert_close(both, (single[0] + single[1]) / 2)
    # only the first face when faces=1
    first, n1 = landmark_regressor_loss(out, photo, pts, valid, net, faces=1)
    assert float(n1) == 1
    torch.testing.assert_close(first, single[0])
    # no face anywhere: exactly 0, still on the graph
    none, n0 = landmark_regressor_loss(out, photo, pts, torch.zeros(3, dtype=torch.bool), net)
    assert float(none.detach()) == 0.0 and float(n0) == 0 and none.requires_grad
    none.backward()
    assert out.grad is not None and float(out.grad.abs().sum()) == 0.0


def test_stand_in_zero_for_output_equal_to_photo():
    net = StandIn()
    photo = torch.rand(2, 3, 64, 64) * 2 - 1
    pts = torch.rand(2, 468, 2) * 30 + 17
    assert float(landmark_regressor_loss(photo.clone(), photo, pts, None, net)[0]) == 0.0


# --------------------------------------------------------------- the real FaceMesh
def test_zero_for_output_equal_to_photo(facemesh, faces):
    images, pts = faces
    photo = to_tensor(images)
    out = photo.clone().requires_grad_()
    loss, n = landmark_regressor_loss(out, photo, pts, None, facemesh)
    assert float(loss.detach()) == 0.0 and float(n) == len(images)


def test_grows_monotonically_with_an_eye_warp(facemesh, faces):
    images, pts = faces
    values = values_under(lambda o, p, q: landmark_regressor_loss(o, p, q, None, facemesh)[0], images, pts,
                          lambda ims, a: warp_eyes(ims, pts.numpy(), a), EYE_WARPS)
    assert values[0] < 1e-3 and values[0] < values[1] < values[2] < values[3], values


def test_grows_monotonically_with_blur(facemesh, faces):
    images, pts = faces
    values = values_under(lambda o, p, q: landmark_regressor_loss(o, p, q, None, facemesh)[0], images, pts, blur,
                          BLUR_SIGMAS)
    assert values[0] == 0.0 and values[0] < values[1] < values[2] < values[3], values


def test_gradients_reach_the_generator(facemesh, faces):
    images, pts = faces
    assert_gradients_reach_a_generator(lambda o, p, q: landmark_regressor_loss(o, p, q, None, facemesh)[0], images, pts)


def test_flipped_photos_are_cropped_upright(facemesh):
    """A flipped photo keeps its points' names (faces/transforms.py), so the eye
    corners run right to left; the crop must still be upright for FaceMesh to see the face
    and to score it as it scores the unflipped photo (a crop turned upside down: FaceMesh
    misses 3 of the first 12 fixture faces and doubles the mean term)."""
    images, pts = fixture_faces(8)
    pts = torch.from_numpy(pts)
    flipped = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    fpts = pts.clone()
    fpts[..., 0] = images[0].shape[1] - fpts[..., 0]
    with torch.no_grad():
        a, na = landmark_regressor_loss(to_tensor(blur(images, 1.0)), to_tensor(images), pts, None,
                                        facemesh)
        b, nb = landmark_regressor_loss(to_tensor(blur(flipped, 1.0)), to_tensor(flipped), fpts,
                                        None, facemesh)
    assert float(na) == float(nb) == len(images)
    # FaceMesh is not exactly mirror-symmetric: the mean over 8 faces agrees within 30%
    assert abs(float(b) - float(a)) < 0.3 * float(a), (float(a), float(b))
