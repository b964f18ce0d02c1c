"""Surface term: the LSGAN loss of the surface discriminator ``Ds`` on the surface
representation (representations/surface.py) of the output, and its discriminator counterpart
(Wang & Yu, CVPR 2020, eq. 3)."""
from __future__ import annotations

import torch
from torch import nn

from losses.adversarial import judge, lsgan_g_loss
from representations.surface import SURFACE_EPS, SURFACE_RADIUS, surface


def surface_loss(disc: nn.Module, output: torch.Tensor, r: int = SURFACE_RADIUS,
                 eps: float = SURFACE_EPS) -> torch.Tensor:
    """Generator side: mean((Ds(surface(output)) - 1)^2). output: (B, 3, H, W) in [-1, 1]."""
    return lsgan_g_loss(disc(surface(output, r, eps)))


def surface_disc_loss(disc: nn.Module, cartoon: torch.Tensor, fake: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Discriminator side on (B, 3, H, W) cartoons (real) and outputs (fake), both [-1, 1]:
    (loss, real logits, fake logits); see :func:`losses.adversarial.judge`."""
    return judge(disc, surface(torch.cat([cartoon, fake])), cartoon.shape[0])


def term(state) -> torch.Tensor:
    """The trainer's generator term (see losses/registry.py for ``state``)."""
    return surface_loss(state.discriminator("surface"), state.output)


def disc_term(state, disc: nn.Module):
    """The trainer's discriminator term."""
    return surface_disc_loss(disc, state.cartoon.float(), state.fake)
