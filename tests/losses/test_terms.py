"""The unweighted loss terms, each against a value computed by hand on a tiny tensor."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from losses.adversarial import lsgan_d_loss, lsgan_g_loss
from losses.content import ContentLoss, content_loss, feature_l1, structure_loss
from losses.surface import SurfaceLoss, surface, surface_loss
from losses.texture import TextureLoss, texture, texture_loss, texture_weights
from losses.variation import TotalVariationLoss, total_variation_loss
from models.guided_filter import guided_filter
from models.vgg import VGG19Features

RANGES = ((0.199, 0.399), (0.487, 0.687), (0.014, 0.214))  # R, G, B (DESIGN.md section 1)


class FakeDisc(nn.Module):
    """Returns fixed logits (kept on the graph of its input) and records what it was given."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.seen: torch.Tensor | None = None

    def forward(self, x):
        self.seen = x
        return self.logits + 0.0 * x.sum()


# ------------------------------------------------------------------------- total variation

def test_tv_by_hand():
    x = torch.zeros(1, 3, 2, 3)
    x[0, 0] = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    x[0, 2] = 7.0  # constant channel: contributes nothing
    # dy: channel 0 has three differences of 3 -> 27 over 1*3*1*3 = 9 entries -> 3
    # dx: channel 0 has four differences of 1 -> 4 over 1*3*2*2 = 12 entries -> 1/3
    # (3 + 1/3) / (3 * H * W) = (10/3) / 18 = 5/27
    torch.testing.assert_close(total_variation_loss(x), torch.tensor(5.0 / 27.0))


def test_tv_constant_is_zero_and_module():
    x = torch.full((2, 3, 5, 4), 0.3)
    assert total_variation_loss(x).item() == 0.0
    y = torch.rand(2, 3, 5, 4)
    torch.testing.assert_close(TotalVariationLoss()(y), total_variation_loss(y), rtol=0, atol=0)


def test_tv_errors_and_gradcheck():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        total_variation_loss(torch.zeros(3, 4, 4))
    x = torch.rand(1, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(total_variation_loss, (x,))


# ---------------------------------------------------------------------------------- LSGAN

def test_lsgan_g_by_hand():
    logits = torch.tensor([0.0, 0.5, 2.0, -1.0]).view(1, 1, 2, 2)
    # mean((l - 1)^2) = mean(1, 0.25, 1, 4) = 1.5625
    torch.testing.assert_close(lsgan_g_loss(logits), torch.tensor(1.5625))


def test_lsgan_d_by_hand():
    real = torch.tensor([1.0, 0.0, 3.0]).view(1, 1, 1, 3)
    fake = torch.tensor([0.5, -0.5]).view(1, 1, 1, 2)
    # 0.5 * (mean(0, 1, 4) + mean(0.25, 0.25)) = 0.5 * (5/3 + 1/4) = 23/24
    torch.testing.assert_close(lsgan_d_loss(real, fake), torch.tensor(23.0 / 24.0))


def test_lsgan_optimum_and_dtype():
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert lsgan_g_loss(ones).item() == 0.0
    assert lsgan_d_loss(ones, zeros).item() == 0.0
    assert lsgan_g_loss(ones.half()).dtype == torch.float32


# ----------------------------------------------------------------------------- feature L1

def test_feature_l1_by_hand():
    a = torch.tensor([[[[1.0, 2.0]], [[3.0, -4.0]]]])  # (1, c=2, h=1, w=2)
    b = torch.zeros_like(a)
    # mean |a - b| = 10 / 4 = 2.5, then / (h w c) = / 4 -> 0.625
    torch.testing.assert_close(feature_l1(a, b), torch.tensor(0.625))


def test_feature_l1_batch_not_in_denominator():
    a = torch.ones(3, 2, 2, 5)
    b = torch.zeros(3, 2, 2, 5)
    torch.testing.assert_close(feature_l1(a, b), torch.tensor(1.0 / 20.0))


def test_feature_l1_errors():
    with pytest.raises(ValueError, match="one shape"):
        feature_l1(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"\(B, c, h, w\)"):
        feature_l1(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3))


def test_content_and_structure_targets_are_constant():
    target = torch.rand(1, 4, 2, 2, requires_grad=True)
    out = torch.rand(1, 4, 2, 2, requires_grad=True)
    for fn in (content_loss, structure_loss):
        target.grad, out.grad = None, None
        loss = fn(target, out)
        torch.testing.assert_close(loss, feature_l1(target, out))
        loss.backward()
        assert target.grad is None
        assert out.grad is not None and out.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def vgg():
    return VGG19Features.random(0)


def test_content_loss_module_equals_function_and_grads(vgg):
    torch.manual_seed(0)
    photo = torch.rand(2, 3, 16, 16) * 2 - 1
    output = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()
    loss = ContentLoss(vgg)(photo, output)
    with torch.no_grad():
        expected = content_loss(vgg(photo), vgg(output))
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-6, atol=0)
    assert loss.item() > 0
    loss.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())


def test_content_loss_zero_for_identical(vgg):
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert ContentLoss(vgg)(x, x.clone()).item() == 0.0


# --------------------------------------------------------------------------------- texture

def test_texture_weights_reproducible():
    a = texture_weights(torch.Generator().manual_seed(123))
    b = texture_weights(torch.Generator().manual_seed(123))
    c = texture_weights(torch.Generator().manual_seed(124))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3,) and a.dtype == torch.float32


def test_texture_weight_ranges():
    g = torch.Generator().manual_seed(0)
    w = torch.stack([texture_weights(g) for _ in range(2000)])
    for ch, (lo, hi) in enumerate(RANGES):
        assert w[:, ch].min() >= lo and w[:, ch].max() <= hi
        # the whole range is used (not, e.g., a fixed or narrower draw)
        assert w[:, ch].min() < lo + 0.01 and w[:, ch].max() > hi - 0.01
        assert abs(w[:, ch].mean().item() - (lo + hi) / 2) < 0.01


def test_texture_by_hand_and_shared_weights():
    torch.manual_seed(0)
    fake = torch.rand(2, 3, 4, 5) * 2 - 1
    cartoon = torch.rand(2, 3, 4, 5) * 2 - 1
    g_fake, g_cartoon = texture(fake, cartoon, generator=torch.Generator().manual_seed(7))
    w = texture_weights(torch.Generator().manual_seed(7))  # the one triple drawn for that call
    for x, got in ((fake, g_fake), (cartoon, g_cartoon)):
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        expected = (w[0] * r + w[1] * g + w[2] * b) / (w[0] + w[1] + w[2])
        assert got.shape == (2, 1, 4, 5)
        torch.testing.assert_close(got, expected)


def test_texture_one_call_one_triple():
    # pure red, green and blue images in one call: their outputs are w_R, w_G, w_B / sum(w),
    # which sum to exactly 1 only if all three images used the same triple
    eye = torch.eye(3).view(3, 3, 1, 1)
    red, green, blue = (eye[i:i + 1].expand(1, 3, 2, 2) for i in range(3))
    outs = texture(red, green, blue, generator=torch.Generator().manual_seed(3))
    vals = torch.stack([o.flatten()[0] for o in outs])
    torch.testing.assert_close(vals.sum(), torch.tensor(1.0))
    # and the normalised red weight lies where the ranges put it (tightest bounds)
    assert 0.199 / (0.199 + 0.687 + 0.214) <= vals[0] <= 0.399 / (0.399 + 0.487 + 0.014)
    assert vals[1] > vals[0] > vals[2]  # green dominates, blue is smallest (ranges disjoint)


def test_texture_explicit_weights_and_range():
    x = torch.rand(1, 3, 3, 3) * 2 - 1
    (y,) = texture(x, weights=torch.tensor([1.0, 1.0, 2.0]))
    torch.testing.assert_close(y, (x[:, :1] + x[:, 1:2] + 2 * x[:, 2:]) / 4)
    (z,) = texture(torch.full((1, 3, 2, 2), -1.0), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, torch.full((1, 1, 2, 2), -1.0))


def test_texture_errors():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        texture(torch.zeros(1, 1, 4, 4))


def test_texture_loss_with_fake_disc():
    logits = torch.tensor([0.0, 0.5, 2.0, -1.0]).view(1, 1, 2, 2)
    disc = FakeDisc(logits)
    gray = torch.rand(1, 1, 8, 8, requires_grad=True)
    loss = texture_loss(disc, gray)
    torch.testing.assert_close(loss, torch.tensor(1.5625))
    assert disc.seen is gray
    torch.testing.assert_close(TextureLoss()(disc, gray), loss, rtol=0, atol=0)


# --------------------------------------------------------------------------------- surface

def test_surface_equals_guided_filter():
    x = torch.rand(2, 3, 12, 14) * 2 - 1
    torch.testing.assert_close(surface(x), guided_filter(x, x, 5, 0.2), rtol=0, atol=0)


def test_surface_constant_stays_constant():
    x = torch.full((1, 3, 16, 16), 0.42)
    torch.testing.assert_close(surface(x), x, rtol=0, atol=1e-6)


def test_surface_errors():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        surface(torch.zeros(1, 1, 8, 8))


def test_surface_loss_with_fake_disc():
    logits = torch.full((2, 1, 2, 2), 0.25)
    disc = FakeDisc(logits)
    out = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()
    loss = surface_loss(disc, out)
    torch.testing.assert_close(loss, torch.tensor(0.75 ** 2))
    # the discriminator saw the surface representation of the output, not the output itself
    torch.testing.assert_close(disc.seen, surface(out), rtol=0, atol=0)
    torch.testing.assert_close(SurfaceLoss()(disc, out), loss, rtol=0, atol=0)


def test_surface_loss_gradient_flows_through_filter():
    class MeanDisc(nn.Module):
        def forward(self, x):
            return x.mean(dim=1, keepdim=True)

    out = (torch.rand(1, 3, 12, 12) * 2 - 1).requires_grad_()
    surface_loss(MeanDisc(), out).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
