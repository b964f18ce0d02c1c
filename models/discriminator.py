"""The white-box ``disc_sn`` patch discriminator with spectral normalisation.

Three stages of [conv3x3 s2, lrelu, conv3x3 s1, lrelu] with 32/64/128 channels, then a 1x1
conv to one logit map: (B, C, H, W) -> (B, 1, ceil(H/8), ceil(W/8)). 287,137 parameters with
3 input channels (surface), 286,561 with 1 (texture).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from models.layers import Conv2dSame

LRELU_SLOPE = 0.2


class Discriminator(nn.Module):
    def __init__(self, in_channels: int = 3, channels: int = 32, num_stages: int = 3):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        cin = in_channels
        for stage in range(num_stages):
            cout = channels * 2**stage
            layers += [spectral_norm(Conv2dSame(cin, cout, 3, stride=2)),
                       spectral_norm(Conv2dSame(cout, cout, 3))]
            cin = cout
        self.convs = nn.ModuleList(layers)
        self.head = spectral_norm(nn.Conv2d(cin, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) in [-1, 1] -> logits (B, 1, ceil(H/8), ceil(W/8))."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Discriminator expects (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE, inplace=True)  # fresh conv output
        return self.head(x)
