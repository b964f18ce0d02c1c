"""Discriminator: the white-box disc_sn spectral-norm patch discriminator."""
from __future__ import annotations

import math

import pytest
import torch

from models.discriminator import Discriminator


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("cin,expected", [(3, 287_137), (1, 286_561)])
def test_param_count(cin, expected):
    assert _n_params(Discriminator(cin)) == expected


def test_uses_spectral_norm():
    d = Discriminator(3)
    names = [n for n, _ in d.named_parameters()]
    assert all(n.endswith(("weight_orig", "bias")) for n in names), names
    assert sum(n.endswith("weight_orig") for n in names) == 7


def test_smoke():
    torch.manual_seed(0)
    d = Discriminator(3)
    y = d(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert y.shape == (2, 1, 8, 8)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("cin", [1, 3])
@pytest.mark.parametrize("h,w", [(128, 96), (100, 60), (9, 17), (8, 8)])
def test_shapes(cin, h, w):
    torch.manual_seed(0)
    d = Discriminator(cin).eval()
    with torch.no_grad():
        y = d(torch.rand(1, cin, h, w))
    assert y.shape == (1, 1, math.ceil(h / 8), math.ceil(w / 8))


def test_shape_examples_from_brief():
    d = Discriminator(3).eval()
    with torch.no_grad():
        assert d(torch.zeros(1, 3, 128, 96)).shape == (1, 1, 16, 12)
        assert d(torch.zeros(1, 3, 100, 60)).shape == (1, 1, 13, 8)


@pytest.mark.parametrize("cin,shape", [(3, (1, 1, 16, 16)), (1, (1, 3, 16, 16)),
                                       (3, (3, 16, 16)), (1, (16, 16))])
def test_error_bad_shape(cin, shape):
    d = Discriminator(cin)
    with pytest.raises(ValueError, match=rf"\(B, {cin}, H, W\)"):
        d(torch.zeros(shape))


def test_error_bad_in_channels():
    with pytest.raises(ValueError, match="in_channels"):
        Discriminator(0)


def test_gradients_reach_input():
    torch.manual_seed(0)
    d = Discriminator(1)
    x = torch.rand(2, 1, 16, 16, requires_grad=True)
    d(x).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in d.parameters())
