"""The white-box ``unet_generator`` (1,467,075 parameters).

Layout (channel=32, 4 residual blocks; every conv is followed by leaky ReLU 0.2 except the
residual blocks' second conv and the last conv)::

    x0 = conv7x7(3->32)
    x1 = conv3x3 s2(32->32), conv3x3(32->64)            # H/2
    x2 = conv3x3 s2(64->64), conv3x3(64->128)           # H/4
    x2 = 4 x [x + conv(lrelu(conv(x)))], conv3x3(128->64)
    x3 = conv3x3(up2(x2) + x1 -> 64), conv3x3(64->32)   # H/2
    x4 = conv3x3(up2(x3) + x0 -> 32), conv7x7(32->3)    # H

No tanh and no clip by default (``output_act``), like the reference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import Conv2dSame, upsample2x_tf

OUTPUT_ACTS = ("none", "clip", "tanh")
UPSAMPLE_MODES = ("tf", "bilinear")
LRELU_SLOPE = 0.2


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    # In place: every call gets a fresh conv output, and leaky ReLU's backward needs only its
    # result; saves an allocation and a pass over memory per layer.
    return F.leaky_relu(x, LRELU_SLOPE, inplace=True)


class ResBlock(nn.Module):
    """x + conv(lrelu(conv(x))), no activation after the add (white-box ``resblock``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = Conv2dSame(channels, channels, 3)
        self.conv2 = Conv2dSame(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(_lrelu(self.conv1(x)))


class Generator(nn.Module):
    """White-box U-Net generator.

    Args:
        channels: base width (32 in white-box).
        num_blocks: residual blocks at H/4 (4 in white-box).
        output_act: "none" (faithful), "clip" (clamp to [-1, 1]) or "tanh".
        upsample: "tf" (TF1 resize_bilinear, faithful) or "bilinear" (PyTorch half-pixel).

    Input (B, 3, H, W) in [-1, 1] with H and W divisible by 4; output (B, 3, H, W), unbounded
    unless ``output_act`` says otherwise. Pass the result through
    ``guided_filter(photo, out, r=1, eps)`` as white-box does.
    """

    def __init__(self, channels: int = 32, num_blocks: int = 4, output_act: str = "none",
                 upsample: str = "tf"):
        super().__init__()
        if output_act not in OUTPUT_ACTS:
            raise ValueError(f"output_act must be one of {OUTPUT_ACTS}, got {output_act!r}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        c = channels
        self.output_act, self.upsample = output_act, upsample
        self.conv0 = Conv2dSame(3, c, 7)
        self.down1a = Conv2dSame(c, c, 3, stride=2)
        self.down1b = Conv2dSame(c, 2 * c, 3)
        self.down2a = Conv2dSame(2 * c, 2 * c, 3, stride=2)
        self.down2b = Conv2dSame(2 * c, 4 * c, 3)
        self.blocks = nn.Sequential(*[ResBlock(4 * c) for _ in range(num_blocks)])
        self.mid = Conv2dSame(4 * c, 2 * c, 3)
        self.up1a = Conv2dSame(2 * c, 2 * c, 3)
        self.up1b = Conv2dSame(2 * c, c, 3)
        self.up2a = Conv2dSame(c, c, 3)
        self.out = Conv2dSame(c, 3, 7)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample == "tf":
            return upsample2x_tf(x)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"Generator expects (B, 3, H, W) input, got shape {tuple(x.shape)}")
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(
                f"Generator expects (B, 3, H, W) with H and W divisible by 4, got {tuple(x.shape)}"
            )
        x0 = _lrelu(self.conv0(x))
        x1 = _lrelu(self.down1b(_lrelu(self.down1a(x0))))
        x2 = _lrelu(self.down2b(_lrelu(self.down2a(x1))))
        x2 = _lrelu(self.mid(self.blocks(x2)))
        x3 = _lrelu(self.up1b(_lrelu(self.up1a(self._up(x2) + x1))))
        x4 = self.out(_lrelu(self.up2a(self._up(x3) + x0)))
        if self.output_act == "clip":
            return x4.clamp(-1.0, 1.0)
        if self.output_act == "tanh":
            return torch.tanh(x4)
        return x4
