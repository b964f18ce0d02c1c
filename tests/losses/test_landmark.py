"""Landmark loss (losses/landmark.py)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from faces import render_landmark_map, resolve_detector
from losses.landmark import landmark_loss, landmark_loss_per_image, sobel

SIZE = 128


@pytest.fixture(scope="module")
def face():
    """The astronaut's face at SIZE x SIZE: uint8 image and its landmark map (2, H, W), from
    the default detector (mediapipe where installed, else dlib: the loss is the same)."""
    img = data.astronaut()[20:276, 100:356]                   # a 256x256 face crop
    img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    with resolve_detector().build() as det:
        pts = det.detect(img)
    assert pts is not None
    return img, render_landmark_map(pts, SIZE, SIZE)


def to_tensor(img_uint8):
    return torch.from_numpy(img_uint8).permute(2, 0, 1)[None].float() / 127.5 - 1


def blurred(img, sigma):
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma) if sigma > 0 else img.copy()


def test_zero_for_identical_images(face):
    img, lmap = face
    x = to_tensor(img)
    loss = landmark_loss(x.clone().requires_grad_(), x, torch.from_numpy(lmap)[None])
    assert abs(loss.item()) < 1e-6 and loss.dtype == torch.float32 and loss.ndim == 0


def test_blur_is_penalised_monotonically_with_gradient(face):
    img, lmap = face
    photo, m = to_tensor(img), torch.from_numpy(lmap)[None]
    losses = []
    for sigma in (0.7, 1.5, 3.0):
        out = to_tensor(blurred(img, sigma)).requires_grad_()
        loss = landmark_loss(out, photo, m)
        loss.backward()
        assert out.grad.abs().sum() > 0
        # the gradient lives where the map is: none far from the facial features
        far = (m.sum(1, keepdim=True) == 0).expand_as(out.grad)
        assert out.grad[far].abs().max() < 1e-3 * out.grad.abs().max() or far.sum() == 0
        losses.append(loss.item())
    assert 0 < losses[0] < losses[1] < losses[2], losses


def test_colour_shift_and_more_contrast_are_free(face):
    img, lmap = face
    photo, m = to_tensor(img), torch.from_numpy(lmap)[None]
    shifted = photo + torch.tensor([0.2, -0.1, 0.3]).view(1, 3, 1, 1)   # a cartoon colour cast
    assert landmark_loss(shifted, photo, m).item() < 1e-6
    assert landmark_loss(photo * 1.5, photo, m).item() < 1e-6          # crisper features


def test_flattening_outside_the_face_is_free(face):
    img, lmap = face
    photo = to_tensor(img)
    m = torch.from_numpy(lmap)[None]
    out = photo.clone()
    outside = (m.sum(1, keepdim=True) == 0)
    # flat colour wherever the map is 0 at distance >= 2 px (Sobel reaches 1 px)
    outside = -torch.nn.functional.max_pool2d(-outside.float(), 5, 1, 2) > 0.5
    out = torch.where(outside.expand_as(out), torch.zeros_like(out), out)
    assert outside.any() and landmark_loss(out, photo, m).item() < 1e-6


def test_invalid_and_empty_maps_contribute_zero(face):
    img, lmap = face
    photo = to_tensor(img).repeat(3, 1, 1, 1)
    out = to_tensor(blurred(img, 2.0)).repeat(3, 1, 1, 1).requires_grad_()
    m = torch.from_numpy(lmap)[None].repeat(3, 1, 1, 1)
    m[2] = 0                                                   # no face rendered
    single = landmark_loss(out[:1], photo[:1], m[:1])
    valid = torch.tensor([True, False, True])
    loss = landmark_loss(out, photo, m, valid)
    assert loss.item() == pytest.approx(single.item(), rel=1e-6)  # mean over valid images only
    loss.backward()
    assert out.grad[0].abs().sum() > 0 and out.grad[1:].abs().sum() == 0

    out2 = out.detach().clone().requires_grad_()
    none = landmark_loss(out2, photo, m, torch.tensor([False, False, False]))
    none.backward()                                            # still part of the graph
    assert none.item() == 0.0 and out2.grad.abs().sum() == 0
    empty = landmark_loss(out2, photo, torch.zeros_like(m))
    assert empty.item() == 0.0 and empty.requires_grad


def test_sobel_hand_computed():
    y = torch.tensor([[0.0, 0.0, 1.0],
                      [0.0, 0.0, 1.0],
                      [0.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    gx, gy = sobel(y)
    # replicate padding: column differences (y[j+1] - y[j-1]) are 0, 1, 1 -> times (1+2+1)/8
    torch.testing.assert_close(gx[0, 0], torch.tensor([[0.0, 0.5, 0.5]]).repeat(3, 1))
    torch.testing.assert_close(gy, torch.zeros_like(gy))
    gx_t, gy_t = sobel(y.transpose(-1, -2))
    torch.testing.assert_close(gy_t, gx.transpose(-1, -2))


def test_hand_computed_loss_values():
    # photo: a horizontal ramp of slope s per pixel on all channels (Y = ramp), W = 4; its Sobel
    # gx per column is s/2, s, s, s/2 (replicate padding at the borders), gy = 0; contours
    # everywhere, no regions. The loss is the mean over pixels of relu(|g_p| - g_o . u), u = +x.
    s = 0.2
    x = torch.arange(4.0)
    ramp = lambda slope: (x * slope).view(1, 1, 1, 4).expand(1, 3, 4, 4)
    lmap = torch.zeros(1, 2, 4, 4)
    lmap[:, 0] = 1
    photo = ramp(s)
    mean_g = 0.75 * s                                          # (s/2 + s + s + s/2) / 4
    cases = {
        "flat output (edge erased)": (torch.zeros(1, 3, 4, 4), mean_g),
        "half the contrast": (ramp(s / 2), mean_g / 2),
        "twice the contrast (free)": (ramp(2 * s), 0.0),
        "reversed polarity": (ramp(-s), 2 * mean_g),
        "perpendicular edge": (ramp(s).transpose(-1, -2), mean_g),
    }
    for name, (out, expected) in cases.items():
        assert landmark_loss(out, photo, lmap).item() == pytest.approx(expected, abs=1e-6), name
    # the region channel weighs in with region_weight; a uniform map leaves the mean unchanged
    lmap_r = torch.zeros(1, 2, 4, 4)
    lmap_r[:, 1] = 1
    assert landmark_loss(torch.zeros(1, 3, 4, 4), photo, lmap_r, contour_weight=0.0,
                         region_weight=0.3).item() == pytest.approx(mean_g, abs=1e-6)


def test_region_weight_and_bf16_input(face):
    img, lmap = face
    photo, m = to_tensor(img), torch.from_numpy(lmap)[None]
    out = to_tensor(blurred(img, 1.5))
    assert landmark_loss(out, photo, m, region_weight=0.3).item() != landmark_loss(out, photo, m).item()
    lb = landmark_loss(out.bfloat16(), photo.bfloat16(), m.bfloat16())
    assert lb.dtype == torch.float32
    assert lb.item() == pytest.approx(landmark_loss(out, photo, m).item(), rel=0.05)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    out = torch.rand(2, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    photo = torch.rand(2, 3, 5, 5, generator=g, dtype=torch.float64)
    lmap = torch.rand(2, 2, 5, 5, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda o: landmark_loss(o, photo, lmap), (out,), fast_mode=True)


def test_shape_errors():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="lmap"):
        landmark_loss(x, x, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="photo"):
        landmark_loss(x, torch.zeros(1, 3, 8, 9), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="valid"):
        landmark_loss(x, x, torch.zeros(1, 2, 8, 8), torch.ones(2, dtype=torch.bool))


FFHQ = (Path(__file__).resolve().parents[2] / "../shared/fixtures/ffhq-mini").resolve()


@pytest.mark.skipif(not (FFHQ / "cartoons").is_dir(), reason=f"fixtures absent at {FFHQ}")
def test_reference_cartoons_cost_less_than_blur_and_flattening():
    """A good cartoon (the white-box authors' face model) keeps the features: it must cost less
    than a sigma-2 blur and than SLIC-200 superpixel flattening of the same photo."""
    from skimage.color import label2rgb
    from skimage.segmentation import slic

    from media.decode import read_image_rgb

    names = sorted(p.name for p in (FFHQ / "photos").glob("*.jpg"))[:4]
    photos = [read_image_rgb(FFHQ / "photos" / n) for n in names]
    cartoons = [cv2.resize(read_image_rgb(FFHQ / "cartoons" / n), photos[i].shape[1::-1])
                for i, n in enumerate(names)]
    flat = [label2rgb(slic(p, n_segments=200, compactness=10, sigma=1, start_label=0), p,
                      kind="avg", bg_label=-1).astype(np.uint8) for p in photos]
    with resolve_detector().build() as det:
        maps = [render_landmark_map(det.detect(p), *p.shape[:2]) for p in photos]
    photo, m = torch.cat([to_tensor(p) for p in photos]), torch.from_numpy(np.stack(maps))

    def per_image(outs):
        return landmark_loss_per_image(torch.cat([to_tensor(o) for o in outs]), photo, m)[0]

    cartoon = per_image(cartoons)
    assert (cartoon < per_image([blurred(p, 2.0) for p in photos])).all()
    assert (cartoon < per_image(flat)).all()
