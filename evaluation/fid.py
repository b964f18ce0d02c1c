"""FID and KID from a local Inception TorchScript file.

The feature extractor is the one StyleGAN2-ADA / StyleGAN3 use, ``inception-2015-12-05.pt``
(TorchScript; takes uint8 (N, 3, H, W) RGB of any size, resizes to 299 itself, and with
``return_features=True`` returns (N, 2048) pool3 features). Nothing is downloaded: the file is
looked for in ``--inception``, then ``checkpoints/``, then the torch hub cache. Any TorchScript
module with that calling convention works (the tests write a tiny one).

- FID (Heusel et al. 2017): ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). The trace term is
  the sum of the square roots of the eigenvalues of S1 S2, which are those of the symmetric
  positive semi-definite S1^(1/2) S2 S1^(1/2): two symmetric eigendecompositions, exact for
  singular covariances too (no eps, no ``LinAlgWarning``). ``scipy.linalg.sqrtm`` of the
  non-symmetric product (pytorch-fid's way) warns "Matrix is singular" and goes complex there.
- How many samples: the covariance of N features has rank N - 1 at most, so with fewer than
  ``FEATURE_DIM + 1`` = 2049 images on a side it is singular. FID is still defined and computed
  exactly, but it is biased upward, strongly so for small N (Chong and Forsyth, CVPR 2020,
  "Effectively unbiased FID and Inception score"): compare such values only between
  evaluations with the same N, and prefer KID, which is unbiased at any N. The usual figures
  use 10k-50k images; ``fid_kid`` adds a note below 2049.
- KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets of ``min(subset_size, n, m)`` items;
  mean and standard deviation over the subsets.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from utils.errors import ToonFaceError

INCEPTION_FILE = "inception-2015-12-05.pt"
FEATURE_DIM = 2048


# ------------------------------------------------------------------------------ the metrics
def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
                     ) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64 math); the
    covariances may be singular (see the module docstring)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2.0 * trace_sqrt_product(sigma1, sigma2))


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance (eigenvalues below 0, rounding, set to 0)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((sigma1 sigma2)^(1/2)) of two covariances: the sum of the square roots of the
    eigenvalues of sigma1^(1/2) sigma2 sigma1^(1/2) (symmetric, positive semi-definite, with
    the eigenvalues of sigma1 sigma2)."""
    root = _psd_sqrt(sigma1)
    m = root @ sigma2 @ root
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, D) features; N >= 2."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features, got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def kid_from_features(a: np.ndarray, b: np.ndarray, num_subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 estimate over ``num_subsets`` random subsets."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, D) and (M, D) features, got {a.shape} and {b.shape}")
    d = a.shape[1]
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 items on each side")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
               - 2.0 * kxy.mean())
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


# ---------------------------------------------------------------------- the feature extractor
def find_inception(path: str | os.PathLike | None = None,
                   checkpoints_dir: str | os.PathLike = "checkpoints") -> tuple[Path | None, str]:
    """(file, "") or (None, a one-line reason naming where it looked)."""
    if path:
        p = Path(path)
        return (p, "") if p.is_file() else (None, f"Inception file not found: {p}")
    candidates = [Path(checkpoints_dir) / INCEPTION_FILE]
    try:
        import torch.hub

        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE)
        candidates.append(Path(torch.hub.get_dir()) / INCEPTION_FILE)
    except Exception:  # noqa: BLE001 - no hub dir is just one place fewer to look
        pass
    for c in candidates:
        if c.is_file():
            return c, ""
    return None, (f"no Inception file ({INCEPTION_FILE}); looked in "
                  + ", ".join(str(c) for c in candidates) + "; pass --inception PATH for FID/KID")


class InceptionFeatures:
    """uint8 images -> (N, 2048) float64 features with a TorchScript Inception network.

    A TorchScript file is a program: ``torch.jit.load`` runs its code, and no loader can make an
    untrusted one safe (unlike weights, read with ``torch.load(weights_only=True)``). Use the
    published ``inception-2015-12-05.pt`` or another file you trust.
    """

    def __init__(self, path: str | os.PathLike, device="cpu", batch_size: int = 32):
        import torch

        self.path = Path(path)
        try:
            self.model = torch.jit.load(str(self.path), map_location=device).eval()
        except Exception as exc:  # noqa: BLE001 - a wrong file is a user-facing one-liner
            raise ToonFaceError(f"{self.path}: not a TorchScript Inception file "
                                f"({type(exc).__name__})") from None
        self.device = device
        self.batch_size = batch_size
        self._kwargs = {"return_features": True}

    def _forward(self, x):
        if self._kwargs:
            try:
                return self.model(x, **self._kwargs)
            except RuntimeError as exc:  # a module without the keyword: plain forward
                if "return_features" not in str(exc):
                    raise
                self._kwargs = {}
        return self.model(x)

    def __call__(self, images: Sequence[np.ndarray] | Iterable[np.ndarray]) -> np.ndarray:
        """images: uint8 (H, W, 3) RGB arrays of one size. Returns (N, D) float64."""
        import torch

        images = list(images)
        feats = []
        with torch.no_grad():
            for i in range(0, len(images), self.batch_size):
                batch = np.stack(images[i:i + self.batch_size])
                x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(self.device)
                f = self._forward(x)
                feats.append(f.detach().double().cpu().reshape(f.shape[0], -1).numpy())
        if not feats:
            return np.zeros((0, FEATURE_DIM))
        return np.concatenate(feats)


def fid_kid(fake: np.ndarray, real: np.ndarray, num_subsets: int = 100, subset_size: int = 1000
            ) -> dict:
    """{"fid", "kid", "kid_std", "n_fake", "n_real", "note"} of two feature sets; None where
    too few; ``note``: why the FID is biased (fewer samples than feature dimensions + 1)."""
    out = {"fid": None, "kid": None, "kid_std": None, "n_fake": int(len(fake)),
           "n_real": int(len(real)), "note": None}
    if len(fake) >= 2 and len(real) >= 2:
        out["fid"] = fid_from_features(fake, real)
        out["kid"], out["kid_std"] = kid_from_features(fake, real, num_subsets, subset_size)
        dim = np.asarray(fake).shape[1]
        n = min(len(fake), len(real))
        if n <= dim:
            out["note"] = (f"FID from {n} images (covariances of rank < {dim}): biased upward, "
                           f"comparable only at the same count; it needs {dim + 1}+ images "
                           "(10k-50k usual); KID is unbiased at any count")
    return out
