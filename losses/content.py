"""Content term: L1 between the content network's features of the photo and of the output,
divided by h*w*c (Wang & Yu, CVPR 2020, eq. 7). The recipe's network is VGG19 conv4_4;
``--content-network`` picks it, HED's VGG16 conv4_3 or random VGG19 (models/content_network.py).

White-box computes ``mean(|a - b|) / (h w c)`` (the mean *and* the division): the reference
weight 2e2 only means the same with this double normalisation, so it is kept.
"""
from __future__ import annotations

import torch


def feature_l1(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """(B, c, h, w) features -> mean |a - b| / (h w c), float32. ValueError on mismatched shapes."""
    if feat_a.shape != feat_b.shape or feat_a.dim() != 4:
        raise ValueError(
            f"feature_l1 expects two (B, c, h, w) tensors of one shape, got {tuple(feat_a.shape)} "
            f"and {tuple(feat_b.shape)}"
        )
    c, h, w = feat_a.shape[1:]
    # sum / count rather than mean(): the same value, and on channels_last maps mean()'s
    # backward costs several times more.
    return (feat_a.float() - feat_b.float()).abs().sum() / (feat_a.numel() * h * w * c)


def content_loss(feat_photo: torch.Tensor, feat_output: torch.Tensor) -> torch.Tensor:
    """VGG(photo) vs VGG(output); the photo side is a constant target."""
    return feature_l1(feat_photo.detach(), feat_output)


def term(state) -> torch.Tensor:
    """The trainer's term (see losses/registry.py for ``state``)."""
    return content_loss(state.vgg_target("photo"), state.vgg_output())
