"""The reference design: what the seed's PyTorch rewrite did per training step, re-implemented
so that a benchmark measures it side by side with ToonFace's step in one process, on the same
data and the same models:

- a fresh ``next(iter(DataLoader(...)))`` every step (workers start again, every step);
- G forward with autograd for everything; discriminators not frozen during the G step (their
  parameter gradients are computed and thrown away);
- VGG19 with ``requires_grad=True`` parameters, three separate forwards (photo, structure,
  output), all recorded by autograd, so backward also computes VGG weight gradients;
- structure via joblib, one process per image, skimage ``slic(n_segments=200, compactness=10,
  sigma=1)`` + ``label2rgb(kind='avg')`` on the host;
- the D step recomputes G *with* autograd, then runs each discriminator separately on real
  and on fake;
- fp32, contiguous memory format.

The loss terms are the same functions the project uses (surface, texture, TV, VGG L1,
landmark), with the same weights.
"""
from __future__ import annotations

import copy
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from bench.common import sync


def _slic_label2rgb(image01: np.ndarray, seg_num: int = 200) -> np.ndarray:
    """The seed's per-image structure: skimage SLIC + label2rgb(kind='avg'), HWC in [0, 1]."""
    from skimage import color, segmentation

    labels = segmentation.slic(image01, n_segments=seg_num, compactness=10, sigma=1,
                               channel_axis=-1, start_label=1)
    return color.label2rgb(labels, image01, kind="avg", bg_label=-1)


def _parallel_map(fn, items, n_jobs: int):
    try:
        from joblib import Parallel, delayed
    except ImportError:  # same shape of work: one process per image
        with ProcessPoolExecutor(n_jobs) as ex:
            return list(ex.map(fn, items))
    return Parallel(n_jobs=n_jobs)(delayed(fn)(it) for it in items)


def reference_structure(out: torch.Tensor, seg_num: int = 200) -> torch.Tensor:
    x = ((out.detach().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
    filled = _parallel_map(_slic_label2rgb, list(x), n_jobs=len(x))
    y = torch.from_numpy(np.stack(filled)).permute(0, 3, 1, 2).float() * 2 - 1
    return y.to(out.device)


class ReferenceStep:
    """The seed's training step (see the module docstring), on copies of a loop's models.

    ``step()`` returns ``(seconds, {phase: seconds}, {term: value})``; phases use the same
    names as the training run's.
    """

    def __init__(self, run, workers: int = 2):
        self.run = run
        self.cfg, self.device = run.session.cfg, run.session.device
        self.w = dict(self.cfg.loss.weights)
        cf = torch.contiguous_format
        self.G = copy.deepcopy(run.G).to(memory_format=cf).train()
        self.Ds = copy.deepcopy(run.modules["Ds"]).to(memory_format=cf).train().requires_grad_(True)
        self.Dt = copy.deepcopy(run.modules["Dt"]).to(memory_format=cf).train().requires_grad_(True)
        self.vgg = copy.deepcopy(run.objective.vgg).float().to(memory_format=cf)  # a bf16 run casts its copy
        self.vgg.requires_grad_(True)   # the seed never froze VGG
        o = self.cfg.optim
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.lr, betas=(o.beta1, o.beta2))
        self.opt_D = torch.optim.Adam(list(self.Ds.parameters()) + list(self.Dt.parameters()),
                                      lr=o.lr, betas=(o.beta1, o.beta2))
        self.workers = workers
        self.texture_gen = torch.Generator().manual_seed(self.cfg.run.seed)

    def _batch(self, dataset) -> dict[str, torch.Tensor]:
        from torch.utils.data import DataLoader

        # The seed: a new DataLoader iterator every step (workers restart, every step).
        loader = DataLoader(dataset, batch_size=self.cfg.optim.batch_size, shuffle=True,
                            num_workers=self.workers, drop_last=True)
        return next(iter(loader))

    def step(self) -> tuple[float, dict[str, float], dict[str, float]]:
        from losses.adversarial import lsgan_d_loss, lsgan_g_loss
        from losses.content import feature_l1
        from losses.landmark import landmark_loss
        from losses.variation import total_variation_loss
        from models import guided_filter
        from representations.surface import surface
        from representations.texture import texture, texture_weights

        w, dev, ph = self.w, self.device, {}

        def mark(name, t0):
            sync(dev)
            ph[name] = ph.get(name, 0.0) + time.perf_counter() - t0
            return time.perf_counter()

        sync(dev)
        start = t = time.perf_counter()
        pb, cb = (self._batch(self.run.streams.datasets["photos"]),
                  self._batch(self.run.streams.datasets["cartoons"]))
        photo, cartoon = pb["image"].to(dev), cb["image"].to(dev)
        t = mark("data", t)
        tex_w = texture_weights(self.texture_gen)
        # ---- G step
        out = guided_filter(photo, self.G(photo), 1, self.cfg.model.gf_eps)
        t = mark("g_forward", t)
        terms = {"tv": total_variation_loss(out)}
        terms["surface"] = lsgan_g_loss(self.Ds(surface(out)))
        terms["texture"] = lsgan_g_loss(self.Dt(texture(out, weights=tex_w)[0]))
        t = mark("discriminators", t)
        struct = reference_structure(out, self.cfg.loss.seg_num)
        t = mark("structure", t)
        f_photo, f_struct, f_out = self.vgg(photo), self.vgg(struct), self.vgg(out)
        terms["content"] = feature_l1(f_photo, f_out)
        terms["structure"] = feature_l1(f_struct, f_out)
        t = mark("vgg", t)
        if w["landmark"] > 0:
            terms["landmark"] = landmark_loss(out, photo, pb["lmap"].to(dev), pb["valid"].to(dev))
            t = mark("landmark", t)
        g_total = sum(w[k] * v for k, v in terms.items() if w[k] > 0)
        self.opt_G.zero_grad()
        g_total.backward()
        t = mark("backward", t)
        self.opt_G.step()
        t = mark("optimizer", t)
        # ---- D step: G recomputed with autograd, D separately on real and fake
        fake = guided_filter(photo, self.G(photo), 1, self.cfg.model.gf_eps)
        t = mark("g_forward", t)
        d_terms = {
            "surface": lsgan_d_loss(self.Ds(surface(cartoon)), self.Ds(surface(fake.detach()))),
            "texture": lsgan_d_loss(self.Dt(texture(cartoon, weights=tex_w)[0]),
                                    self.Dt(texture(fake.detach(), weights=tex_w)[0])),
        }
        t = mark("discriminators", t)
        self.opt_D.zero_grad()
        sum(d_terms.values()).backward()
        t = mark("backward", t)
        self.opt_D.step()
        mark("optimizer", t)
        sync(dev)
        values = {f"G/{k}": float(v.detach()) for k, v in terms.items()}
        values.update({f"D/{k}": float(v.detach()) for k, v in d_terms.items()})
        return time.perf_counter() - start, ph, values
