"""LSGAN losses as white-box ``lsgan_loss`` (Mao et al., ICCV 2017): G pushes fake logits to 1;
D pushes real to 1, fake to 0, with the 0.5 factor of the reference."""
from __future__ import annotations

import torch
from torch import nn


def lsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """mean((D(fake) - 1)^2), float32."""
    return (fake_logits.float() - 1.0).pow(2).mean()


def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2)), float32."""
    return 0.5 * ((real_logits.float() - 1.0).pow(2).mean() + fake_logits.float().pow(2).mean())


def judge(disc: nn.Module, real_then_fake: torch.Tensor, n_real: int
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One discriminator forward over real and fake together -> (D loss, real logits, fake logits).

    ``real_then_fake``: (B_real + B_fake, C, H, W), the first ``n_real`` real. One forward
    rather than two: one spectral-norm power iteration per step, as white-box's single
    discriminator call on both, and half the kernel launches.
    """
    logits = disc(real_then_fake)
    real, fake = logits[:n_real], logits[n_real:]
    return lsgan_d_loss(real, fake), real, fake
