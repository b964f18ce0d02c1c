"""Generator: the white-box unet_generator (1,467,075 parameters)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.generator import Generator
from models.layers import upsample2x_tf


@pytest.fixture(scope="module")
def gen() -> Generator:
    torch.manual_seed(0)
    return Generator().eval()


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_param_count(gen):
    assert _n_params(gen) == 1_467_075


def test_param_count_by_hand():
    # conv k*k*cin*cout + cout, the white-box unet_generator layout (models/generator.py)
    def conv(k, cin, cout):
        return k * k * cin * cout + cout
    expected = (conv(7, 3, 32) + conv(3, 32, 32) + conv(3, 32, 64) + conv(3, 64, 64)
                + conv(3, 64, 128) + 8 * conv(3, 128, 128) + conv(3, 128, 64)
                + conv(3, 64, 64) + conv(3, 64, 32) + conv(3, 32, 32) + conv(7, 32, 3))
    assert expected == 1_467_075


def test_smoke(gen):
    with torch.no_grad():
        y = gen(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert y.shape == (2, 3, 16, 16)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("h,w", [(36, 68), (132, 100), (4, 8), (20, 12)])
def test_shapes_non_square(gen, h, w):
    with torch.no_grad():
        y = gen(torch.rand(1, 3, h, w) * 2 - 1)
    assert y.shape == (1, 3, h, w)


@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (1, 4, 16, 16), (3, 16, 16), (1, 1, 3, 16, 16)])
def test_error_bad_shape(gen, shape):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        gen(torch.zeros(shape))


@pytest.mark.parametrize("h,w", [(18, 16), (16, 18), (15, 16), (16, 2)])
def test_error_not_divisible_by_4(gen, h, w):
    with pytest.raises(ValueError, match="divisible by 4"):
        gen(torch.zeros(1, 3, h, w))


@pytest.mark.parametrize("act", ["relu", "", "Tanh", None])
def test_error_bad_output_act(act):
    with pytest.raises(ValueError, match="output_act"):
        Generator(output_act=act)


def test_error_bad_upsample():
    with pytest.raises(ValueError, match="upsample"):
        Generator(upsample="nearest")


def _big_output_generator(act: str) -> Generator:
    torch.manual_seed(0)
    g = Generator(output_act=act)
    with torch.no_grad():  # make sure the raw output leaves [-1, 1] by a wide margin
        g.out.weight.mul_(50.0)
        g.out.bias.fill_(0.5)
    return g


def test_output_act_clip_and_tanh_ranges():
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        raw = _big_output_generator("none")(x)
        clip = _big_output_generator("clip")(x)
        tanh = _big_output_generator("tanh")(x)
    assert raw.abs().max() > 1.5  # the test is meaningful: "none" is unbounded
    assert clip.min() >= -1 and clip.max() <= 1
    torch.testing.assert_close(clip, raw.clamp(-1, 1))
    torch.testing.assert_close(tanh, torch.tanh(raw))
    assert (clip.abs() == 1).any()


def test_default_is_faithful():
    g = Generator()
    assert g.output_act == "none" and g.upsample == "tf"


def _reference_forward(g: Generator, x: torch.Tensor) -> torch.Tensor:
    """Independent functional re-statement of white-box ``unet_generator`` (TF SAME padding)."""
    def conv(layer, t, stride=1):
        k = layer.weight.shape[-1]
        if stride == 2:
            # TF SAME for k=3, s=2 on even sizes pads (0, 1)
            assert t.shape[-1] % 2 == 0 and t.shape[-2] % 2 == 0
            return F.conv2d(F.pad(t, (0, 1, 0, 1)), layer.weight, layer.bias, stride=2)
        return F.conv2d(t, layer.weight, layer.bias, padding=k // 2)

    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731 - tf.nn.leaky_relu default alpha
    x0 = lrelu(conv(g.conv0, x))
    x1 = lrelu(conv(g.down1a, x0, 2))
    x1 = lrelu(conv(g.down1b, x1))
    x2 = lrelu(conv(g.down2a, x1, 2))
    x2 = lrelu(conv(g.down2b, x2))
    for blk in g.blocks:
        x2 = x2 + conv(blk.conv2, lrelu(conv(blk.conv1, x2)))
    x2 = lrelu(conv(g.mid, x2))
    x3 = upsample2x_tf(x2)
    x3 = lrelu(conv(g.up1a, x3 + x1))
    x3 = lrelu(conv(g.up1b, x3))
    x4 = upsample2x_tf(x3)
    x4 = lrelu(conv(g.up2a, x4 + x0))
    return conv(g.out, x4)


def test_matches_reference_wiring(gen):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(gen(x), _reference_forward(gen, x), rtol=1e-5, atol=1e-5)


def test_bilinear_upsample_variant_runs_and_differs(gen):
    g2 = Generator(upsample="bilinear").eval()
    g2.load_state_dict(gen.state_dict())
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        a, b = gen(x), g2(x)
    assert a.shape == b.shape
    assert not torch.allclose(a, b)


def test_gradients_reach_input_and_all_params():
    torch.manual_seed(0)
    g = Generator()
    x = (torch.rand(1, 3, 8, 8) * 2 - 1).requires_grad_()
    g(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.parameters())
