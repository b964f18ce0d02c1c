"""Differentiable augmentation of the discriminators' inputs (DiffAugment; Zhao, Liu, Lin, Zhu
and Han, "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020).

A GAN trained on a few hundred images lets its discriminators memorise the real set; their
answers stop carrying a useful gradient and the generator drifts into artefacts (here: hatching
and colour fringes on faces after a few hundred steps with 40 cartoons). DiffAugment applies the
same family of random, differentiable transforms to every image the discriminators see, real
and generated, in both the generator and the discriminator steps, so that the generator is
trained through the augmentation and never learns to produce augmented images.

The three transforms of the paper, each with its own random parameters per image:

- ``color``: brightness + U(-0.5, 0.5); saturation: the deviation from the channel mean times
  U(0, 2); contrast: the deviation from the image mean times U(0.5, 1.5). On a one-channel
  input (the texture representation) saturation leaves the image unchanged.
- ``translation``: a shift by an integer number of pixels in [-H/8, H/8] x [-W/8, W/8], the
  uncovered border filled with zeros.
- ``cutout``: a zeroed square of half the image's side, at a random position (it may extend
  past the border).

This is a deviation from the white-box recipe, so it is off unless ``--diffaugment`` names a
policy. Random numbers come from torch's global generator on the input's device: the run's
saved random state makes an augmented run resume bitwise.
"""
from __future__ import annotations

from typing import Callable

import torch

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 1 / 8   # largest shift, as a fraction of the side (the paper's 1/8)
CUTOUT_RATIO = 1 / 2        # side of the cut square, as a fraction of the side (the paper's 1/2)


def parse_policy(spec: str | None) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> the transforms in application order; "" or None -> ().

    Raises ValueError naming an unknown transform.
    """
    names = tuple(p.strip() for p in (spec or "").split(",") if p.strip())
    bad = [n for n in names if n not in POLICIES]
    if bad:
        raise ValueError(f"unknown DiffAugment transform {bad[0]!r}; choose from {', '.join(POLICIES)}")
    return tuple(sorted(set(names), key=POLICIES.index))


def _uniform(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.rand(shape, dtype=torch.float32, device=x.device).to(x.dtype)


def color(x: torch.Tensor) -> torch.Tensor:
    """Brightness, saturation, contrast (see the module docstring). x: (B, C, H, W)."""
    b = x.shape[0]
    x = x + (_uniform(x, (b, 1, 1, 1)) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, (b, 1, 1, 1)) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, (b, 1, 1, 1)) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by whole pixels in [-ratio*H, ratio*H] x [-ratio*W, ratio*W], zeros
    where nothing is shifted in. x: (B, C, H, W); differentiable (a gather)."""
    b, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    # out[i, y, x] = in[i, y - dy, x - dx]; the padded copy is offset by (sh, sw)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy + sh
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx + sw
    padded = torch.nn.functional.pad(x, (sw, sw, sh, sh))
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols]          # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous(memory_format=_format_of(x))


def cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero a square of side ratio*H x ratio*W per image, its centre uniform over the image.
    x: (B, C, H, W)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    oy, ox = ys - (cy - ch // 2), xs - (cx - cw // 2)     # position inside the square
    inside = (oy >= 0) & (oy < ch) & (ox >= 0) & (ox < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the transforms of ``policy`` (from :func:`parse_policy`) in order.

    x: (B, C, H, W), any range (the representations are in about [-1, 1]); returns the same
    shape and dtype. An empty policy returns ``x`` itself.
    """
    if x.dim() != 4:
        raise ValueError(f"diff_augment expects (B, C, H, W), got {tuple(x.shape)}")
    for name in policy:
        x = _TRANSFORMS[name](x)
    return x


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


class Augmented:
    """A discriminator seen through DiffAugment: ``Augmented(disc, policy)(x) = disc(aug(x))``.

    The discriminator's own state (its state dict, spectral-norm vectors) is untouched, so
    checkpoints are the same with and without augmentation.
    """

    def __init__(self, disc: Callable[[torch.Tensor], torch.Tensor], policy: tuple[str, ...]):
        self.disc, self.policy = disc, policy

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.disc(diff_augment(x, self.policy))
