"""Structure term: L1 between the content network's features (VGG19 conv4_4 in the recipe,
models/content_network.py) of the output and of its structure
representation (representations/structure.py: superpixels filled with their colour), divided
by h*w*c like the content term (Wang & Yu, CVPR 2020, eq. 4). The superpixel side is a
constant target, rebuilt from the current output at every step."""
from __future__ import annotations

import torch

from losses.content import feature_l1


def structure_loss(feat_structure: torch.Tensor, feat_output: torch.Tensor) -> torch.Tensor:
    """VGG(structure(output)) vs VGG(output), (B, c, h, w) each; the superpixel side is constant."""
    return feature_l1(feat_structure.detach(), feat_output)


def term(state) -> torch.Tensor:
    """The trainer's term (see losses/registry.py for ``state``)."""
    return structure_loss(state.vgg_target("structure"), state.vgg_output())
