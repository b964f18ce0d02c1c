"""The texture representation against values computed by hand."""
from __future__ import annotations

import pytest
import torch

from representations.texture import texture, texture_weights

RANGES = ((0.199, 0.399), (0.487, 0.687), (0.014, 0.214))  # R, G, B (white-box color_shift)


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
