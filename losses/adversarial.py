"""LSGAN losses as white-box ``lsgan_loss``: G pushes fake logits to 1; D pushes real to 1,
fake to 0, with the 0.5 factor of the reference."""
from __future__ import annotations

import torch


def lsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """mean((D(fake) - 1)^2)."""
    return (fake_logits.float() - 1.0).pow(2).mean()


def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2))."""
    return 0.5 * ((real_logits.float() - 1.0).pow(2).mean() + fake_logits.float().pow(2).mean())
