"""The training objective: the generator's and the discriminators' terms of one step, unweighted.

Which terms exist, their flags and their functions is losses/registry.py's business; this
module computes the terms whose weight is > 0 (a term of weight 0 is never computed) from a
``StepState`` that builds what several terms share only once and only when a term asks for it:
the guided-filtered output, the superpixel target, one batched no-grad content-network forward
(VGG19 or HED's VGG16) for every constant target (photo and structure) and one forward of the
output; the face-network
terms (FaceMesh, dlib's encoder) share the choice of the faces they run on. The loop weights,
sums, backpropagates, steps and logs.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import nn

from losses.face_points import face_rows
from losses.registry import TERMS, Term
from models.guided_filter import guided_filter
from representations.structure import Structure
from training.diffaugment import Augmented


class StepState:
    """What the terms of one step read (the attributes listed in losses/registry.py).

    Built by :class:`Objective`; lazily computed parts are cached for the step.
    """

    def __init__(self, objective: "Objective", photo: torch.Tensor, output: torch.Tensor,
                 batch: dict[str, torch.Tensor], texture_weights: torch.Tensor, face: bool):
        self._obj = objective
        self.photo = photo
        self.output = output
        self.texture_weights = texture_weights
        self.face = face
        self._batch = batch
        self._vgg_targets: dict[str, torch.Tensor] | None = None
        self._vgg_output: torch.Tensor | None = None
        self._face_rows: torch.Tensor | None = None
        self.logged: dict[str, torch.Tensor] = {}
        self.cartoon: torch.Tensor | None = None
        self.fake: torch.Tensor | None = None

    # -- batch data
    @property
    def lmap(self) -> torch.Tensor:
        return self._obj.to_device(self._batch["lmap"])

    @property
    def valid(self) -> torch.Tensor:
        return self._batch["valid"].to(self._obj.device, non_blocking=True)

    @property
    def points(self) -> torch.Tensor:
        return self._batch["points"].to(self._obj.device, non_blocking=True)

    def network(self, name: str) -> nn.Module:
        return self._obj.networks[name]

    def face_rows(self) -> torch.Tensor:
        """(K,) batch rows of the found faces the face-network terms run on: the first
        ``face_crops`` (all when 0), the same rows for every such term of the step."""
        if self._face_rows is None:
            self._face_rows = face_rows(self.valid, self.points, self._obj.face_crops)
        return self._face_rows

    def log(self, key: str, value: torch.Tensor) -> None:
        self.logged[key] = value.detach()

    def discriminator(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        return self._obj.augmented(self._obj.discriminators[name])

    # -- shared, computed once
    def vgg_target(self, name: str) -> torch.Tensor:
        """conv4_4 features of a constant target: "photo" or "structure" (superpixels of the
        output). Every target the active terms need runs in one batched no-grad forward."""
        if self._vgg_targets is None:
            obj = self._obj
            images = {}
            # structure first, then photo: the batch order of the reference design
            if "structure" in obj.vgg_target_names:
                with obj.timer("structure"):
                    images["structure"] = obj.structure(self.output.detach())
            if "photo" in obj.vgg_target_names:
                images["photo"] = self.photo
            with obj.timer("vgg"), obj.autocast, torch.no_grad():
                feats = obj.vgg(obj.channels(torch.cat(list(images.values()))))
            self._vgg_targets = dict(zip(images, feats.chunk(len(images))))
        return self._vgg_targets[name]

    def vgg_output(self) -> torch.Tensor:
        """conv4_4 features of the output (with gradient)."""
        if self._vgg_output is None:
            obj = self._obj
            with obj.timer("vgg"), obj.autocast:
                self._vgg_output = obj.vgg(obj.channels(self.output))
        return self._vgg_output


class Objective:
    """The generator and discriminator objectives of the recipe for one run.

    Args:
        weights: {term name: weight}; only terms with weight > 0 are ever computed.
        discriminators: {term name: raw discriminator module} of the adversarial terms.
        vgg: the frozen content network (models/content_network.py; needed when content or structure is active), else None.
        structure: the superpixel operator (needed when structure is active), else None.
        gf_eps: eps of the guided filter r=1 applied to G's raw output (training value).
        device, autocast, timer, memory_format: the run's device, precision context, phase
            timer and memory format.
        diffaugment: DiffAugment transforms applied to everything the discriminators see, in
            both steps (training/diffaugment.py); () for the recipe (none).
        networks: {NETWORKS name: frozen network} the active face terms read (placed on the
            device), e.g. {"facemesh": FaceMeshNet}.
        face_crops: faces per batch the face-network terms run on (0: every found face).
    """

    def __init__(self, weights: dict[str, float], discriminators: dict[str, nn.Module],
                 vgg: nn.Module | None, structure: Structure | None, gf_eps: float,
                 device: torch.device, autocast=None, timer: Callable | None = None,
                 memory_format=torch.contiguous_format, diffaugment: tuple[str, ...] = (),
                 networks: dict[str, nn.Module] | None = None, face_crops: int = 0):
        self.terms: list[Term] = [t for t in TERMS if weights.get(t.name, 0) > 0]
        self.weights = {t.name: float(weights[t.name]) for t in self.terms}
        self.adversarial = [t for t in self.terms if t.adversarial is not None]
        self.discriminators = discriminators
        self.vgg, self.structure = vgg, structure
        self.vgg_target_names = {n for n, t in (("photo", "content"), ("structure", "structure"))
                                 if t in self.weights}
        self.gf_eps = gf_eps
        self.device = device
        self.autocast = autocast or nullcontext()
        self.timer = timer or (lambda name: nullcontext())
        self.memory_format = memory_format
        self.diffaugment = tuple(diffaugment)
        self.networks = dict(networks or {})
        self.face_crops = face_crops
        missing = sorted({t.network for t in self.terms if t.network} - set(self.networks))
        if missing:
            raise ValueError(f"terms need the network(s) {', '.join(missing)}, not given")

    def augmented(self, disc: Callable) -> Callable:
        """``disc`` as the steps call it: through DiffAugment when the run asks for it."""
        return Augmented(disc, self.diffaugment) if self.diffaugment else disc

    def channels(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return self.channels(x) if x.dim() == 4 else x

    def output(self, raw: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """G's raw output through the guided filter (r=1) with the photo as guide, float32."""
        return guided_filter(photo.float(), raw.float(), 1, self.gf_eps)

    def generator_terms(self, photo: torch.Tensor, raw: torch.Tensor, batch: dict[str, torch.Tensor],
                        texture_weights: torch.Tensor, face: bool = True
                        ) -> tuple[dict[str, torch.Tensor], StepState]:
        """{term name: unweighted scalar} for the generator step, and the step's state.

        photo: (B, 3, H, W) in [-1, 1] on the device; raw: G(photo); batch: the photo batch
        (its "lmap" and "valid" for the landmark term); face: False on scenery batches (terms
        marked faces_only are skipped).
        """
        state = StepState(self, photo, self.output(raw, photo), batch, texture_weights, face)
        terms: dict[str, torch.Tensor] = {}
        for t in self.terms:
            if t.faces_only and not face:
                continue
            with self.timer(t.phase) if t.phase else nullcontext(), \
                    self.autocast if t.autocast else nullcontext():
                terms[t.name] = t.loss(state)
        return terms, state

    def discriminator_terms(self, state: StepState, cartoon: torch.Tensor, fake: torch.Tensor,
                            wrapped: dict[str, nn.Module] | None = None
                            ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """({term name: unweighted D loss}, {stat key: value}) for the discriminator step.

        cartoon: (B, 3, H, W) cartoons in [-1, 1]; fake: (B, 3, H, W) outputs, no grad;
        wrapped: the discriminators as the step should call them (e.g. DDP wrappers).
        """
        state.cartoon, state.fake = cartoon, fake
        wrapped = wrapped or self.discriminators
        losses: dict[str, torch.Tensor] = {}
        stats: dict[str, torch.Tensor] = {}
        with self.timer("discriminators"), self.autocast:
            for t in self.adversarial:
                loss, real, fake_logits = t.adversarial.loss(state, self.augmented(wrapped[t.name]))
                losses[t.name] = loss
                stats[f"D/{t.name}_real"] = real.detach().float().mean()
                stats[f"D/{t.name}_fake"] = fake_logits.detach().float().mean()
        return losses, stats

    def weighted_sum(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[k] * v for k, v in terms.items())


def discriminator_specs() -> dict[str, Any]:
    """{term name: Discriminated} of every adversarial term in the registry."""
    return {t.name: t.adversarial for t in TERMS if t.adversarial is not None}
