"""Texture term: the LSGAN loss of the texture discriminator ``Dt`` on the texture
representation (representations/texture.py: a random colour shift to grayscale) of the
output, and its discriminator counterpart (Wang & Yu, CVPR 2020, eq. 5). The generator and
the discriminator steps of one training step use the same weight triple."""
from __future__ import annotations

import torch
from torch import nn

from losses.adversarial import judge, lsgan_g_loss
from representations.texture import texture


def texture_loss(disc: nn.Module, output: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Generator side: mean((Dt(texture(output)) - 1)^2). output: (B, 3, H, W) in [-1, 1];
    weights: the step's (R, G, B) triple (representations.texture.texture_weights)."""
    return lsgan_g_loss(disc(texture(output, weights=weights)[0]))


def texture_disc_loss(disc: nn.Module, cartoon: torch.Tensor, fake: torch.Tensor,
                      weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Discriminator side: (loss, real logits, fake logits), one weight triple for both."""
    return judge(disc, torch.cat(texture(cartoon, fake, weights=weights)), cartoon.shape[0])


def term(state) -> torch.Tensor:
    """The trainer's generator term (see losses/registry.py for ``state``)."""
    return texture_loss(state.discriminator("texture"), state.output, state.texture_weights)


def disc_term(state, disc: nn.Module):
    """The trainer's discriminator term."""
    return texture_disc_loss(disc, state.cartoon.float(), state.fake, state.texture_weights)
