"""FaceMeshNet against its original engine, the LiteRT interpreter running the same
``face_landmark.tflite``; the crop helpers against independent oracles (a coordinate-ramp image,
round trips, mediapipe's own detector on fixture photos).

The ``.tflite`` file ships only inside the mediapipe 0.10.21 wheel: where mediapipe is absent
(the numpy-2 environment) the network tests skip with that reason; the crop tests and the
checksum tests (which write their own files) run everywhere.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from faces.facemesh import (FACE_LANDMARK_FILE, FaceMeshNet, box_transforms, crop_faces,
                            crop_to_image, face_boxes, image_to_crop, read_tflite)
from tests.conftest import fixtures_dir, requires_mediapipe
from utils.errors import ToonFaceError
from utils.package_files import PackageFile

# Independent copies of the published facts (not imported from the code under test).
FILE_SIZE = 1_242_398
FILE_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"
CROP = 192
N_FIXTURE_FACES = 8


@pytest.fixture(scope="module")
def model_path():
    """The verified face_landmark.tflite of the installed mediapipe wheel, or skip."""
    try:
        return FACE_LANDMARK_FILE.path()
    except ToonFaceError as exc:
        pytest.skip(f"needs mediapipe==0.10.21, whose wheel ships the model: {exc}")


@pytest.fixture(scope="module")
def net(model_path) -> FaceMeshNet:
    return FaceMeshNet.from_package()


@pytest.fixture(scope="module")
def litert(model_path):
    """The original engine: LiteRT's interpreter on the same file, as a function of one crop."""
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter",
                                          reason="the LiteRT oracle needs ai-edge-litert")
    it = interpreter_mod.Interpreter(model_path=str(model_path))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs = {d["name"]: d["index"] for d in it.get_output_details()}

    def run(crop_hwc: np.ndarray) -> tuple[np.ndarray, float]:
        it.set_tensor(inp["index"], crop_hwc[None].astype(np.float32))
        it.invoke()
        return (it.get_tensor(outs["conv2d_21"]).reshape(468, 3).copy(),
                float(it.get_tensor(outs["conv2d_31"]).reshape(())))
    return run


def fixture_photos(n: int) -> list[np.ndarray]:
    """The first n ffhq-mini photos as uint8 (256, 256, 3) RGB, or skip."""
    from PIL import Image

    folder = fixtures_dir("ffhq-mini", "photos")
    return [np.array(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))[:n]]


def synthetic_crops() -> np.ndarray:
    """(3, 192, 192, 3) in [0, 1]: seeded noise, a smooth colour pattern, a flat grey."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:CROP, 0:CROP] / CROP
    smooth = np.stack([0.5 + 0.4 * np.sin(6 * x + 2 * y), y, 0.5 + 0.4 * np.cos(5 * x * y)], -1)
    return np.stack([rng.random((CROP, CROP, 3)), smooth,
                     np.full((CROP, CROP, 3), 0.5)]).astype(np.float32)


def compare_with_litert(net, litert, crops_hwc: np.ndarray) -> tuple[float, float]:
    """Max abs difference of landmarks (px) and logits between the port and LiteRT."""
    ref = [litert(c) for c in crops_hwc]
    with torch.no_grad():
        landmarks, logit = net(torch.from_numpy(crops_hwc).permute(0, 3, 1, 2))
    lm_diff = max(float(np.abs(landmarks[i].numpy() - r[0]).max()) for i, r in enumerate(ref))
    logit_diff = max(abs(float(logit[i]) - r[1]) for i, r in enumerate(ref))
    return lm_diff, logit_diff


# ------------------------------------------------------------------ the network vs LiteRT
def test_matches_litert_on_synthetic_crops(net, litert):
    lm_diff, logit_diff = compare_with_litert(net, litert, synthetic_crops())
    assert lm_diff <= 1e-3, f"landmarks differ from LiteRT by {lm_diff:.2e} px"
    assert logit_diff <= 1e-3, f"logit differs from LiteRT by {logit_diff:.2e}"


def test_matches_litert_on_fixture_faces(net, litert):
    from PIL import Image

    crops = np.stack([np.asarray(Image.fromarray(a).resize((CROP, CROP), Image.BILINEAR),
                                 dtype=np.float32) / 255 for a in fixture_photos(N_FIXTURE_FACES)])
    lm_diff, logit_diff = compare_with_litert(net, litert, crops)
    assert lm_diff <= 1e-3, f"landmarks differ from LiteRT by {lm_diff:.2e} px"
    assert logit_diff <= 1e-3, f"logit differs from LiteRT by {logit_diff:.2e}"
    # And they are faces to both engines (a wrong layout gives garbage, not a small error).
    assert min(litert(c)[1] for c in crops) > 0


def test_outputs_frozen_and_shapes(net):
    crops = torch.rand(2, 3, CROP, CROP)
    landmarks, logit = net(crops)
    assert landmarks.shape == (2, 468, 3) and landmarks.dtype == torch.float32
    assert logit.shape == (2,) and logit.dtype == torch.float32
    assert all(not p.requires_grad for p in net.parameters())
    assert not net.train().training      # stays in eval mode, whatever a trainer asks
    with pytest.raises(ValueError, match=r"\(B, 3, 192, 192\)"):
        net(torch.rand(2, 3, 128, 128))


def test_gradients_reach_the_input(net):
    crops = torch.from_numpy(synthetic_crops()[1:2]).permute(0, 3, 1, 2).clone().requires_grad_()
    landmarks, logit = net(crops)
    (landmarks[..., :2].sum() + logit.sum()).backward()
    assert crops.grad is not None and torch.isfinite(crops.grad).all()
    assert crops.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_input_gradient_matches_finite_differences(net):
    """In float64, the directional derivative along a random direction equals the central
    difference (the PReLU's own backward form and the asymmetric padding included)."""
    net64 = copy.deepcopy(net).double()
    gen = torch.Generator().manual_seed(0)
    # Noise: a smooth or flat crop puts activations exactly at PReLU's and max-pool's kinks.
    x = torch.from_numpy(synthetic_crops()[:1]).permute(0, 3, 1, 2).double()
    weights = torch.randn(1, 468, 3, generator=gen, dtype=torch.float64)
    direction = torch.randn(x.shape, generator=gen, dtype=torch.float64)

    def loss(inp):
        landmarks, logit = net64(inp)
        return (landmarks * weights).sum() + logit.sum()

    xg = x.clone().requires_grad_()
    loss(xg).backward()
    analytic = float((xg.grad * direction).sum())
    eps = 1e-7
    with torch.no_grad():
        numeric = float(loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
    assert analytic == pytest.approx(numeric, rel=1e-5)


def test_bf16_autocast_stays_close_to_fp32(net):
    """The number in FaceMeshNet's docstring: bf16 trunk, fp32 heads, within ~1 px of fp32."""
    crops = torch.from_numpy(synthetic_crops()[:2]).permute(0, 3, 1, 2)
    with torch.no_grad():
        ref, ref_logit = net(crops)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, low_logit = net(crops)
    assert low.dtype == torch.float32 and low_logit.dtype == torch.float32
    err = (low - ref)[..., :2].abs()
    assert err.mean() < 0.5 and err.max() < 3, (float(err.mean()), float(err.max()))
    assert (low_logit - ref_logit).abs().max() < 0.5


# ------------------------------------------------------------------ bad files, bad graphs
def _fake_package(tmp_path, monkeypatch, data: bytes) -> PackageFile:
    """A package holding ``data`` where mediapipe keeps the model, with the real pins."""
    name = "toonface_fake_mediapipe"
    folder = tmp_path / name / "modules" / "face_landmark"
    folder.mkdir(parents=True)
    (tmp_path / name / "__init__.py").write_text("")
    (folder / "face_landmark.tflite").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path))
    return dataclasses.replace(FACE_LANDMARK_FILE, package=name)


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_damaged_package_file_is_one_line(tmp_path, monkeypatch, damage):
    # Written here, so this runs without mediapipe too: the check happens before any parsing.
    data = bytes(FILE_SIZE // 2) if damage == "truncated" else bytes(FILE_SIZE)
    fake = _fake_package(tmp_path, monkeypatch, data)
    with pytest.raises(ToonFaceError) as info:
        FaceMeshNet.from_package(fake)
    message = str(info.value)
    assert "\n" not in message
    assert "face_landmark.tflite" in message and "mediapipe==0.10.21" in message
    assert ("bytes, expected 1242398" if damage == "truncated" else "sha256") in message


def test_missing_package_is_one_line():
    absent = dataclasses.replace(FACE_LANDMARK_FILE, package="toonface_no_such_package")
    with pytest.raises(ToonFaceError, match=r"mediapipe==0\.10\.21 is not installed") as info:
        FaceMeshNet.from_package(absent)
    assert "\n" not in str(info.value) and "pip install mediapipe==0.10.21" in str(info.value)


def test_pinned_file_facts():
    assert (FACE_LANDMARK_FILE.size, FACE_LANDMARK_FILE.sha256) == (FILE_SIZE, FILE_SHA256)


@pytest.mark.parametrize("keep", [8, 100, 600_000, FILE_SIZE - 100])
def test_truncated_file_is_one_line(model_path, tmp_path, keep):
    bad = tmp_path / "face_landmark.tflite"
    bad.write_bytes(model_path.read_bytes()[:keep])
    with pytest.raises(ToonFaceError) as info:
        FaceMeshNet.from_file(bad)
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_not_a_tflite_file_is_one_line(tmp_path):
    bad = tmp_path / "face_landmark.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ToonFaceError, match="not a TFLite model"):
        FaceMeshNet.from_file(bad)


def test_unknown_operator_is_one_line(model_path):
    graph = read_tflite(model_path)
    ops = list(graph.ops)
    ops[7] = dataclasses.replace(ops[7], kind="SOFTMAX")
    with pytest.raises(ToonFaceError, match=r"operator #7 SOFTMAX is not supported") as info:
        FaceMeshNet(dataclasses.replace(graph, ops=tuple(ops)))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the crop
def _random_boxes(gen: torch.Generator, n: int, size: float = 256.0) -> torch.Tensor:
    centre = size / 2 + (torch.rand(n, 2, generator=gen) - 0.5) * size * 0.2
    side = size * (0.3 + 0.3 * torch.rand(n, 1, generator=gen))
    angle = (torch.rand(n, 1, generator=gen) - 0.5) * 0.8
    return torch.cat([centre, side, angle], 1).double()


def test_crop_then_inverse_is_identity_on_points():
    gen = torch.Generator().manual_seed(0)
    transform = box_transforms(_random_boxes(gen, 4))
    crop_pts = torch.rand(4, 468, 3, generator=gen, dtype=torch.float64) * CROP
    image_pts = crop_to_image(crop_pts, transform)
    assert torch.allclose(image_to_crop(image_pts, transform), crop_pts, atol=1e-9)
    assert torch.allclose(crop_to_image(image_to_crop(image_pts, transform), transform), image_pts,
                          atol=1e-9)
    assert torch.allclose(image_to_crop(image_pts[..., :2], transform), crop_pts[..., :2], atol=1e-9)


def test_transform_maps_the_crop_onto_the_rotated_square():
    cx, cy, side, angle = 100.0, 80.0, 60.0, math.radians(30)
    transform = box_transforms(torch.tensor([[cx, cy, side, angle]], dtype=torch.float64))
    corners = torch.tensor([[[CROP / 2, CROP / 2], [CROP, CROP / 2], [CROP / 2, 0.0]]],
                           dtype=torch.float64)
    got = crop_to_image(corners, transform)[0]
    half = side / 2
    expected = torch.tensor([[cx, cy],                                               # centre
                             [cx + half * math.cos(angle), cy + half * math.sin(angle)],  # right
                             [cx + half * math.sin(angle), cy - half * math.cos(angle)]],  # top
                            dtype=torch.float64)
    assert torch.allclose(got, expected, atol=1e-9)
    # z is scaled by the crop's pixel size (mediapipe scales it by the box width).
    z = crop_to_image(torch.tensor([[[0.0, 0.0, 9.6]]], dtype=torch.float64), transform)[0, 0, 2]
    assert math.isclose(float(z), 9.6 * side / CROP, rel_tol=1e-12)


def test_crop_samples_where_the_transform_says():
    """An image whose channels are its own pixel coordinates: bilinear sampling of a linear
    ramp is exact, so each crop pixel must read the image point that ``transform`` maps it to."""
    h, w = 200, 240
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    ramp = torch.stack([xs / w * 2 - 1, ys / h * 2 - 1, torch.zeros_like(xs)])[None].double()
    boxes = torch.tensor([[120.0, 95.0, 100.0, 0.3], [110.0, 100.0, 80.0, -0.6]], dtype=torch.float64)
    crops, transform = crop_faces(ramp.expand(2, -1, -1, -1), boxes, size=48)
    v, u = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    centres = torch.stack([u, v], -1).reshape(1, -1, 2).double().expand(2, -1, -1)
    where = crop_to_image(centres, transform)
    read = torch.stack([crops[:, 0] * w, crops[:, 1] * h], -1).reshape(2, -1, 2)
    assert torch.allclose(read, where, atol=1e-6)
    assert crops.shape == (2, 3, 48, 48) and crops.min() >= 0 and crops.max() <= 1


def test_crop_is_differentiable_and_replicates_the_border():
    images = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_()
    boxes = torch.tensor([[32.0, 32.0, 40.0, 0.2], [5.0, 5.0, 40.0, 0.0]])   # the 2nd overhangs
    crops, _ = crop_faces(images, boxes)
    assert crops.shape == (2, 3, CROP, CROP)
    crops.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    # Outside the image the corner pixel is repeated (mediapipe's BORDER_REPLICATE).
    corner = (images[1, :, 0, 0].detach() + 1) / 2
    assert torch.allclose(crops[1, :, 0, 0].detach(), corner, atol=1e-6)


def test_missing_faces_crop_the_whole_image_and_stay_finite():
    """The landmark cache holds NaN points for a face the detector missed."""
    images = (torch.rand(2, 3, 40, 60) * 2 - 1).requires_grad_()
    points = torch.rand(2, 68, 2) * 30 + 5
    points[1] = float("nan")
    crops, transform = crop_faces(images, points, size=20)
    assert torch.isfinite(crops).all() and torch.isfinite(transform).all()
    crops.sum().backward()
    assert torch.isfinite(images.grad).all()
    corners = crop_to_image(torch.tensor([[[0.0, 0.0], [20.0, 20.0]]]).expand(2, -1, -1), transform)
    assert torch.allclose(corners[1], torch.tensor([[10.0, 0.0], [50.0, 40.0]]))


def test_face_boxes_follow_mediapipe():
    """Box = axis-aligned bounds x 1.5, square on the long side, rotated by the eye corners."""
    gen = torch.Generator().manual_seed(1)
    for n, (left, right) in {468: (33, 263), 68: (36, 45)}.items():
        pts = torch.rand(1, n, 2, generator=gen, dtype=torch.float64) * torch.tensor([80.0, 100.0]) + 20
        pts[0, left] = torch.tensor([40.0, 60.0], dtype=torch.float64)
        pts[0, right] = torch.tensor([80.0, 70.0], dtype=torch.float64)
        lo, hi = pts[0].amin(0), pts[0].amax(0)
        cx, cy, side, angle = face_boxes(pts)[0].tolist()
        assert (cx, cy) == pytest.approx(((lo + hi) / 2).tolist())
        assert side == pytest.approx(1.5 * float((hi - lo).max()))
        assert angle == pytest.approx(math.atan2(10.0, 40.0))
        assert face_boxes(pts, rotate=False)[0, 3] == 0
    # Any other point count: no eye corners known, no rotation.
    assert face_boxes(torch.rand(2, 5, 2))[:, 3].abs().max() == 0
    with pytest.raises(ValueError, match=r"\(B, N, 2\)"):
        face_boxes(torch.rand(5, 2))


@requires_mediapipe
def test_landmarks_mapped_back_agree_with_mediapipe_detector(net):
    """Sanity check of the crop convention end to end: the project's mediapipe detector finds
    468 points on a photo; the box around them, cropped, run through FaceMeshNet and mapped
    back to image pixels lands on the same points (mediapipe itself crops around its face
    detector's box, so a pixel or two of disagreement is the expected level)."""
    from faces.landmark_detectors import FaceMeshDetector

    photos = fixture_photos(6)
    with FaceMeshDetector() as det:
        found = [(a, det.detect(a)) for a in photos]
    found = [(a, p) for a, p in found if p is not None]
    assert len(found) >= 5, "mediapipe finds a face in every ffhq-mini photo"
    images = torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 127.5 - 1 for a, _ in found])
    points = torch.stack([torch.from_numpy(p) for _, p in found])
    crops, transform = crop_faces(images, face_boxes(points))
    with torch.no_grad():
        landmarks, logit = net(crops)
    back = crop_to_image(landmarks, transform)
    error = (back[..., :2] - points).norm(dim=-1).mean(dim=1)       # mean px per photo (256 px)
    assert error.max() < 3.0, error.tolist()
    assert error.mean() < 2.0, error.tolist()
    assert (logit > 0).all()
