"""The registry of loss terms: one entry per term, read by the configuration (weight flags,
defaults, presets), the objective (what to compute) and the trainer (checkpoint keys).

A term is a function ``term(state) -> scalar tensor`` (unweighted) in its own file; an
adversarial term also has ``disc_term(state, disc) -> (loss, real logits, fake logits)`` and
gets a discriminator of its own. ``state`` is the training step
(training/objective.py ``StepState``); a term reads from it only:

    state.photo            (B, 3, H, W) photos in [-1, 1]
    state.output           (B, 3, H, W) guided-filtered generator output (differentiable)
    state.texture_weights  (3,) the step's colour-shift triple
    state.lmap, state.valid  (B, 2, H, W) landmark maps in [0, 1] and (B,) bool "face found"
    state.points           (B, N, 2) the photo's cached landmarks in pixels, after the batch's
                           resize / crop / flip (NaN rows where no face was found)
    state.network(name)    a frozen pretrained network of NETWORKS (built once per run)
    state.face_rows()      (K,) indices of the batch's found faces that the face-network terms
                           run on (the first --face_crops of them; all when 0)
    state.discriminator(name)  the term's discriminator (frozen during the generator step)
    state.vgg_target(name) content-network features (VGG19 conv4_4 or HED conv4_3) of "photo"
                           or "structure" (constant targets)
    state.vgg_output()     content-network features of the output
    state.cartoon, state.fake  discriminator step: cartoons and a fresh output, [-1, 1]
    state.log(key, value)  an extra number for stats.jsonl

The order of TERMS is the order in which terms are computed and summed.

Weights: the recipe's terms keep the seed's flags ``w0``..``w5`` (config.json keys, with
``--w-<name>`` aliases); a term the seed never had has no seed flag, and its flag and
config.json key is ``w_<name>`` (``--w-<name>`` with dashes). A config.json written before a
term existed has no key for it, and reads back as weight 0: that run never computed it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from losses import (content, identity, landmark, landmark_regressor, structure, surface, texture,
                    variation)
from faces.dlib_encoder import DlibFaceEncoder
from faces.facemesh import FaceMeshNet

PRESET_NAMES = ("code", "paper")


@dataclass(frozen=True)
class Discriminated:
    """The discriminator an adversarial term trains against."""

    checkpoint_key: str        # its state_dict's key in a training checkpoint ("Ds", "Dt")
    in_channels: int           # channels of the representation it judges
    loss: Callable             # disc_term(state, disc) -> (loss, real logits, fake logits)


@dataclass(frozen=True)
class Term:
    name: str                  # the paper's name; the key of the weight and of G/<name> stats
    flag: str | None           # the seed's flag (w0..w5; --w-<name> is its alias), None: w_<name>
    defaults: dict[str, float]  # weight per preset ("code": white-box's train.py, "paper")
    help: str
    loss: Callable[..., torch.Tensor]
    phase: str | None = None   # stats timer phase around the term (None: it times its parts)
    autocast: bool = False     # computed under the run's bf16 autocast
    faces_only: bool = False   # skipped on scenery batches
    adversarial: Discriminated | None = None
    landmarks: bool = False    # reads the photos' landmarks: the run detects faces first, and a
                               # photo set without any face stops it
    topologies: tuple[str, ...] = ()  # landmark layouts it can use (Topology.name); () = any
    network: str | None = None  # the frozen pretrained network it reads (a NETWORKS key)

    @property
    def key(self) -> str:
        """The weight's option name and config.json key: the seed flag, else ``w_<name>``."""
        return self.flag or f"w_{self.name}"


# Weights: white-box's train.py ("code") and the paper's lambdas (lambda1..5 = surface,
# texture, structure, content, tv = 1, 10, 2000, 2000, 1e4). The landmark weight 10 was
# chosen by the w5 ablation in README.md; the landmark study there (3 seeds, held-out faces)
# keeps the edge term on and the landmark regressor off.
TERMS: tuple[Term, ...] = (
    Term("tv", "w0", {"code": 1e4, "paper": 1e4}, "total variation weight", variation.term),
    Term("surface", "w1", {"code": 1e-1, "paper": 1.0}, "surface (Ds) weight", surface.term,
         phase="discriminators", autocast=True,
         adversarial=Discriminated("Ds", 3, surface.disc_term)),
    Term("texture", "w2", {"code": 1.0, "paper": 10.0}, "texture (Dt) weight", texture.term,
         phase="discriminators", autocast=True,
         adversarial=Discriminated("Dt", 1, texture.disc_term)),
    Term("structure", "w4", {"code": 2e2, "paper": 2e3}, "structure (superpixel VGG) weight",
         structure.term),
    Term("content", "w3", {"code": 2e2, "paper": 2e3}, "content (VGG) weight", content.term),
    Term("landmark", "w5", {"code": 10.0, "paper": 10.0},
         "landmark weight (0 turns the landmark loss off)", landmark.term, phase="landmark",
         faces_only=True, landmarks=True),
    Term("landmark_regressor", None, {"code": 0.0, "paper": 0.0},
         "landmark regressor weight: FaceMesh on the output's face crop against FaceMesh on the "
         "photo's (0: off)", landmark_regressor.term, phase="landmark_regressor",
         autocast=landmark_regressor.AUTOCAST, faces_only=True, landmarks=True,
         topologies=landmark_regressor.TOPOLOGIES, network="facemesh"),
    Term("identity", None, {"code": 0.0, "paper": 0.0},
         "identity weight: distance of dlib's face descriptors of the output's and the photo's "
         "face chips (0: off)", identity.term, phase="identity", autocast=identity.AUTOCAST,
         faces_only=True, landmarks=True, topologies=identity.TOPOLOGIES, network="dlib_encoder"),
)
TERM_BY_NAME = {t.name: t for t in TERMS}
TERM_BY_KEY = {t.key: t for t in TERMS}
# CLI order: the seed's w0 .. w5, then the terms without a seed flag in registry order
TERMS_BY_FLAG = (tuple(sorted((t for t in TERMS if t.flag), key=lambda t: t.flag))
                 + tuple(t for t in TERMS if not t.flag))


def _facemesh() -> torch.nn.Module:
    return FaceMeshNet.from_package()


def _dlib_encoder() -> torch.nn.Module:
    return DlibFaceEncoder.from_package()


# The frozen pretrained networks terms read (Term.network): name -> factory. Built once per run
# by the trainer, before its folder is made (a missing package file is one line, exit 2).
NETWORKS: dict[str, Callable[[], torch.nn.Module]] = {
    "facemesh": _facemesh,
    "dlib_encoder": _dlib_encoder,
}
