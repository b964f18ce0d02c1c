"""The surface representation against values computed by hand."""
from __future__ import annotations

import pytest
import torch

from models.guided_filter import guided_filter
from representations.surface import surface


def test_surface_equals_guided_filter():
    x = torch.rand(2, 3, 12, 14) * 2 - 1
    torch.testing.assert_close(surface(x), guided_filter(x, x, 5, 0.2), rtol=0, atol=0)


def test_surface_constant_stays_constant():
    x = torch.full((1, 3, 16, 16), 0.42)
    torch.testing.assert_close(surface(x), x, rtol=0, atol=1e-6)


def test_surface_errors():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        surface(torch.zeros(1, 1, 8, 8))
