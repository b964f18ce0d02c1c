"""inference/fast_generate.py: the inference path of the generator equals the trainer's module
(Generator + guided filter) in fp32 and within bf16's rounding under autocast, fused or not,
for every generator configuration; the upsampling is bit-identical; the Cartoonizer's result
is what it was before the fast path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from media.tensors import to_tensor, to_uint8
from inference.cartoonizer import CONTEXT, GUIDED_FILTER_R, INFERENCE_EPS, Cartoonizer, pad_context
from inference.fast_generate import (_pointwise_op, fast_generate, generator_forward,
                                     space_to_depth_conv, upsample2x_tf_fast)
from models import Generator, guided_filter
from models.layers import upsample2x_tf
from tests.inference import make_picture, make_trained_like_generator

FUSE = [pytest.param(True, id="fused"), pytest.param(False, id="eager")]


@pytest.fixture(scope="module")
def G():
    return make_trained_like_generator(2)


def photo(*shape, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def reference(G, x):
    """The trainer's module, as Cartoonizer ran it before (NCHW, Generator.forward)."""
    with torch.no_grad():
        return guided_filter(x, G(x), GUIDED_FILTER_R, INFERENCE_EPS)


def test_oneDNN_fused_op_is_there_on_this_build():
    """The speed-up needs it; where a build lacks it the eager branch runs (tested below)."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this PyTorch build has no oneDNN")
    assert _pointwise_op() is not None


@pytest.mark.parametrize("fuse", FUSE)
@pytest.mark.parametrize("shape", [(1, 3, 64, 96), (2, 3, 36, 52), (1, 3, 4, 8)])
def test_equals_generator_plus_guided_filter_in_fp32(G, fuse, shape):
    x = photo(*shape)
    out = fast_generate(G, x, GUIDED_FILTER_R, INFERENCE_EPS, fuse)
    assert out.shape == shape and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert (out - reference(G, x)).abs().max() < 1e-5


@pytest.mark.parametrize("fuse", FUSE)
@pytest.mark.parametrize("config", [{"upsample": "bilinear"}, {"output_act": "tanh"},
                                    {"output_act": "clip", "channels": 8, "num_blocks": 1}])
def test_every_generator_configuration(fuse, config):
    torch.manual_seed(0)
    g = Generator(**config).eval()
    x = photo(1, 3, 40, 44, seed=1)
    with torch.no_grad():
        assert (generator_forward(g, x, fuse) - g(x)).abs().max() < 1e-5


@pytest.mark.parametrize("fuse", FUSE)
def test_bf16_autocast_is_as_close_to_fp32_as_before(G, fuse):
    """Under CPU bf16 autocast the maps are bf16 as in the trainer's module. Fused, conv + bias
    + activation round to bf16 once instead of twice, so values move by bf16 steps, but the
    error against fp32 stays what the old path's was (mean within 10%; max under 0.05 in
    [-1, 1], where the old path's is about 0.03)."""
    x = photo(1, 3, 64, 64, seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast_generate(G, x, GUIDED_FILTER_R, INFERENCE_EPS, fuse)
        ref = reference(G, x)
    assert out.dtype == ref.dtype == torch.bfloat16
    fp32 = reference(G, x)
    err, ref_err = (out.float() - fp32).abs(), (ref.float() - fp32).abs()
    assert err.mean() <= 1.1 * ref_err.mean() and err.max() < 0.05, (err.mean(), ref_err.mean())


@pytest.mark.parametrize("k,out_channels,bias", [(7, 3, True), (3, 1, False), (5, 4, True)])
def test_space_to_depth_conv_is_the_convolution(k, out_channels, bias):
    """Oracle: F.conv2d with "same" zero padding, at sizes whose blocks touch every border."""
    op = _pointwise_op()
    if op is None:
        pytest.skip("this PyTorch build has no oneDNN pointwise convolution")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 8, 12, 18, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(out_channels, 8, k, k, generator=g)
    b = torch.randn(out_channels, generator=g) if bias else None
    out = space_to_depth_conv(op, x, w, b)
    assert out.shape == (2, out_channels, 12, 18)
    assert (out - F.conv2d(x.contiguous(), w, b, 1, k // 2)).abs().max() < 1e-4


def test_only_the_fp32_output_conv_runs_on_pixel_blocks(G, monkeypatch):
    """In bf16 oneDNN's direct convolution is faster (AMX), so blocks are fp32 only."""
    import inference.fast_generate as fg

    calls = []
    real = fg.space_to_depth_conv
    monkeypatch.setattr(fg, "space_to_depth_conv", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = photo(1, 3, 32, 40)
    generator_forward(G, x)
    assert len(calls) == (1 if _pointwise_op() is not None else 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        generator_forward(G, x)
    assert len(calls) == (1 if _pointwise_op() is not None else 0)


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize("shape", [(1, 128, 22, 22), (2, 5, 7, 9), (1, 4, 1, 6), (1, 2, 3, 1)])
def test_upsampling_is_bit_identical(shape, memory_format):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    x = x.contiguous(memory_format=memory_format)
    for t in (x, x.bfloat16()):
        y = upsample2x_tf_fast(t)
        assert torch.equal(y, upsample2x_tf(t))
        assert y.is_contiguous(memory_format=memory_format)


def test_the_cartoonizer_gives_the_image_it_gave_before(G):
    """Cartoonizer now runs fast_generate; on a photo with its context (the product's path),
    tiled or not, the uint8 result is the old path's (the trainer's module on the NCHW padded
    photo) up to one level on a rare pixel."""
    img = make_picture(150, 131, seed=6)
    x = to_tensor(img)[None]
    h, w = x.shape[-2:]
    old = reference(G, pad_context(x))[..., CONTEXT:CONTEXT + h, CONTEXT:CONTEXT + w]
    old = to_uint8(old.clamp(-1, 1)[0]).astype(int)
    for toon in (Cartoonizer(G, tile=0), Cartoonizer(G, tile=208, overlap=104)):
        diff = np.abs(toon(img).astype(int) - old)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
