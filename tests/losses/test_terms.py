"""The unweighted loss terms, each against a value computed by hand on a tiny tensor."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from losses.adversarial import lsgan_d_loss, lsgan_g_loss
from losses.adversarial import judge
from losses.content import content_loss, feature_l1
from losses.structure import structure_loss
from losses.surface import surface_disc_loss, surface_loss
from losses.texture import texture_disc_loss, texture_loss
from losses.variation import total_variation_loss
from models.vgg import VGG19Features
from representations.surface import surface
from representations.texture import texture


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


def test_tv_constant_is_zero():
    x = torch.full((2, 3, 5, 4), 0.3)
    assert total_variation_loss(x).item() == 0.0


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


def test_content_loss_grads_reach_the_output_only(vgg):
    torch.manual_seed(0)
    photo = torch.rand(2, 3, 16, 16) * 2 - 1
    output = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()
    with torch.no_grad():  # the photo's features are a constant target, as the objective takes them
        target = vgg(photo)
    loss = content_loss(target, vgg(output))
    assert loss.item() > 0
    loss.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())


def test_content_loss_zero_for_identical(vgg):
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert content_loss(vgg(x), vgg(x.clone())).item() == 0.0


# --------------------------------------------------------------------------------- texture

def test_texture_loss_with_fake_disc():
    logits = torch.tensor([0.0, 0.5, 2.0, -1.0]).view(1, 1, 2, 2)
    disc = FakeDisc(logits)
    out = torch.rand(1, 3, 8, 8, requires_grad=True)
    w = torch.tensor([0.3, 0.6, 0.1])
    loss = texture_loss(disc, out, w)
    torch.testing.assert_close(loss, torch.tensor(1.5625))
    # the discriminator saw the grayscale of the output with exactly these weights
    torch.testing.assert_close(disc.seen, (0.3 * out[:, :1] + 0.6 * out[:, 1:2] + 0.1 * out[:, 2:]),
                               rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ discriminator side

def test_judge_splits_one_forward():
    disc = FakeDisc(torch.tensor([1.0, 0.0, 0.5, -0.5]).view(4, 1, 1, 1))
    x = torch.rand(4, 3, 4, 4)
    loss, real, fake = judge(disc, x, 2)
    assert disc.seen is x  # one forward over both halves
    # 0.5 * (mean((1, 0) - 1)^2 + mean(0.25, 0.25)) = 0.5 * (0.5 + 0.25)
    torch.testing.assert_close(loss, torch.tensor(0.375))
    assert real.shape == fake.shape == (2, 1, 1, 1)


def test_disc_losses_judge_the_representations():
    cartoon, fake = torch.rand(2, 3, 12, 12) * 2 - 1, torch.rand(3, 3, 12, 12) * 2 - 1
    disc = FakeDisc(torch.zeros(5, 1, 1, 1))
    loss, real_l, fake_l = surface_disc_loss(disc, cartoon, fake)
    torch.testing.assert_close(disc.seen, surface(torch.cat([cartoon, fake])), rtol=0, atol=0)
    torch.testing.assert_close(loss, torch.tensor(0.5))  # real logits 0 -> 1, fake 0 -> 0
    assert real_l.shape[0] == 2 and fake_l.shape[0] == 3
    w = torch.tensor([0.2, 0.5, 0.1])
    texture_disc_loss(disc, cartoon, fake, w)
    torch.testing.assert_close(disc.seen, torch.cat(texture(cartoon, fake, weights=w)), rtol=0, atol=0)


# --------------------------------------------------------------------------------- surface

def test_surface_loss_with_fake_disc():
    logits = torch.full((2, 1, 2, 2), 0.25)
    disc = FakeDisc(logits)
    out = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()
    loss = surface_loss(disc, out)
    torch.testing.assert_close(loss, torch.tensor(0.75 ** 2))
    # the discriminator saw the surface representation of the output, not the output itself
    torch.testing.assert_close(disc.seen, surface(out), rtol=0, atol=0)


def test_surface_loss_gradient_flows_through_filter():
    class MeanDisc(nn.Module):
        def forward(self, x):
            return x.mean(dim=1, keepdim=True)

    out = (torch.rand(1, 3, 12, 12) * 2 - 1).requires_grad_()
    surface_loss(MeanDisc(), out).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
