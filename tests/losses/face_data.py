"""Fixture faces for the face-term tests, and the distortions they are scored on (made with
OpenCV, independently of the project's own resampling code)."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from tests.conftest import fixtures_dir

SIZE = 128
# FaceMesh contour indices of the two eyes (mediapipe's FACEMESH_LEFT_EYE / RIGHT_EYE point
# sets, written out here rather than imported from the code under test)
LEFT_EYE = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
RIGHT_EYE = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
# per layout: (eyes, outer eye corners)
EYES = {468: ((LEFT_EYE, RIGHT_EYE), (33, 263)),
        68: ((tuple(range(42, 48)), tuple(range(36, 42))), (36, 45))}


def fixture_faces(n: int, size: int = SIZE, detector: str = "mediapipe"
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``n`` ffhq-mini photos resized to ``size`` (uint8 RGB) with a face, and its
    points in pixels, detected on the resized image: (n, 468, 2) FaceMesh points by default,
    (n, 68, 2) for ``detector="dlib"``, or whichever is installed for ``"any"`` (mediapipe
    first). Skips without the fixtures or the detector."""
    import pytest
    from PIL import Image

    from faces import resolve_detector
    from tests.conftest import _dlib_problem, _legacy_mediapipe_problem

    if detector == "any":
        detector = "mediapipe" if _legacy_mediapipe_problem() is None else "dlib"
    problem = _legacy_mediapipe_problem() if detector == "mediapipe" else _dlib_problem()
    if problem is not None:
        pytest.skip(f"needs the {detector} detector ({problem})")
    folder = fixtures_dir("ffhq-mini", "photos")
    images, points = [], []
    with resolve_detector(detector).build() as det:
        for path in sorted(folder.glob("*.jpg")):
            img = np.array(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR))
            pts = det.detect(img)
            if pts is not None:
                images.append(img)
                points.append(pts)
            if len(images) == n:
                break
    return images, np.stack(points).astype(np.float32)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HxWx3 images -> (B, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def blur(images: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    return [cv2.GaussianBlur(im, (0, 0), sigmaX=sigma) if sigma > 0 else im.copy() for im in images]


def warp_eyes(images: list[np.ndarray], points: np.ndarray, amount: float) -> list[np.ndarray]:
    """Magnify both eyes by about ``amount`` (0.1 = 10%): a smooth radial warp around each eye
    centre (Gaussian bump of width 0.2 x the inter-ocular distance), by cv2.remap."""
    out = []
    for im, pts in zip(images, points):
        h, w = im.shape[:2]
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32) + 0.5, np.arange(h, dtype=np.float32) + 0.5)
        sx, sy = xs.copy(), ys.copy()
        eyes, (a, b) = EYES[len(pts)]
        iod = float(np.linalg.norm(pts[b] - pts[a]))
        for eye in eyes:
            cx, cy = pts[list(eye)].mean(axis=0)
            s = 0.2 * iod
            g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * s * s))
            f = amount * g / (1 + amount * g)
            sx -= (xs - cx) * f
            sy -= (ys - cy) * f
        # remap samples at pixel-index coordinates: continuous x - 0.5
        out.append(cv2.remap(im, sx - 0.5, sy - 0.5, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return out


# The checks both face-network terms (landmark regressor, identity) must pass; ``loss_of(output,
# photo, points)`` is the term's scalar value.
EYE_WARPS = (0.0, 0.1, 0.2, 0.4)
BLUR_SIGMAS = (0.0, 1.0, 2.0, 4.0)


def values_under(loss_of, images: list[np.ndarray], points: torch.Tensor, distort, amounts) -> list[float]:
    """The term's value (no grad) for the images distorted by ``distort(images, amount)``
    at each amount, against the undistorted photos."""
    photo = to_tensor(images)
    values = []
    for amount in amounts:
        out = to_tensor(distort(images, amount))
        with torch.no_grad():
            values.append(float(loss_of(out, photo, points)))
    return values


def assert_gradients_reach_a_generator(loss_of, images: list[np.ndarray], points: torch.Tensor) -> None:
    """The term on a random generator's guided-filtered output of the first two photos: > 0,
    and finite, non-zero gradients on the output and on every generator parameter."""
    from models.generator import Generator
    from models.guided_filter import guided_filter

    photo = to_tensor(images[:2])
    torch.manual_seed(0)
    G = Generator()
    out = guided_filter(photo, G(photo), 1, 1e-2)
    out.retain_grad()
    loss = loss_of(out, photo, points[:2])
    loss.backward()
    assert float(loss.detach()) > 0 and torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
