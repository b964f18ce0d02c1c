"""Photo and cartoon folder datasets, the AnimeGAN layout, and the infinite sampler.

Datasets are indexed by ``(index, aug_seed)`` pairs from :class:`InfiniteSampler`: every random
choice of the augmentation comes from ``aug_seed``, which depends only on the run seed and the
sample's position in the stream. So a resumed run sees exactly the batches the uninterrupted
run would have seen, whatever the number of loader workers.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from media.decode import read_image_rgb
from media.errors import UnreadableImage
from media.folders import list_images, scan_images
from media.tensors import to_tensor
from utils.errors import ToonFaceError
from faces import render_landmark_map, transform_landmarks

log = logging.getLogger(__name__)


def resolve_cartoon_dir(folder: str | os.PathLike) -> Path:
    """AnimeGAN layout: ``<root>/<Style>`` holding ``style/`` means its ``style/`` images."""
    folder = Path(folder)
    style = folder / "style"
    try:
        return style if style.is_dir() else folder
    except OSError as exc:  # e.g. a folder without read/search permission
        raise ToonFaceError(f"cartoon folder {folder}: cannot read it ({exc.strerror or type(exc).__name__})") from None


def style_name_of(folder: str | os.PathLike) -> str:
    """The style a cartoon folder holds, by name: ``Hayao`` for the AnimeGAN layout
    ``<root>/Hayao`` or ``<root>/Hayao/style``, else the folder's own name."""
    folder = Path(os.path.abspath(folder))
    if folder.name == "style" and folder.parent.name:
        return folder.parent.name
    return folder.name or "cartoon"


def collect_images(folder: str | os.PathLike, what: str, workers: int = 4
                   ) -> list[Path]:
    """List and decode-check every image under ``folder``; bad files are reported once, and so
    are files read with a remark (several pictures: the first is used; an unusable colour profile).

    Raises ToonFaceError (one line) when the folder is missing or holds no readable image.
    """
    folder = Path(folder)
    try:
        if not folder.is_dir():
            raise ToonFaceError(f"{what} folder not found: {folder}")
    except OSError as exc:  # a parent without search permission
        raise ToonFaceError(f"{what} folder {folder}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    try:
        paths = list_images(folder)
    except ToonFaceError as exc:  # the folder itself cannot be listed: say which and why
        raise ToonFaceError(f"{what} folder {exc}") from None
    if not paths:
        raise ToonFaceError(f"{what} folder {folder} holds no images (.jpg .jpeg .png .webp .bmp)")
    good, bad, notes = scan_images(paths, workers)
    if bad:
        listing = "; ".join(f"{p.relative_to(folder)} ({why})" for p, why in bad)
        log.warning("%s folder %s: skipped %d unreadable file(s) of %d: %s",
                    what, folder, len(bad), len(paths), listing)
    if notes:
        listing = "; ".join(f"{p.relative_to(folder)} ({note})" for p, note in notes)
        log.warning("%s folder %s: %d file(s) read with a remark: %s", what, folder, len(notes), listing)
    if not good:
        raise ToonFaceError(f"{what} folder {folder}: none of its {len(paths)} image files is readable")
    return good


def split_holdout(paths: list[Path], holdout: int, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, held-out): ``holdout`` photos chosen by ``seed``; never more than 10% of them."""
    k = min(holdout, len(paths) // 10)
    if k <= 0:
        return list(paths), []
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    held = sorted(paths[i] for i in order[:k])
    held_set = set(held)
    return [p for p in paths if p not in held_set], held


def resize_crop_flip(image: np.ndarray, image_size: int, load_size: int,
                     rng: np.random.Generator | None):
    """Resize the shorter side to ``load_size``, crop ``image_size`` square, maybe flip.

    ``rng=None`` means the deterministic evaluation view: centre crop, no flip.
    Returns (image, (scale_x, scale_y), (crop_x, crop_y), flipped).
    """
    h, w = image.shape[:2]
    scale = load_size / min(h, w)
    nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if nh < h else cv2.INTER_CUBIC
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    if rng is None:
        y0, x0, flip = (nh - image_size) // 2, (nw - image_size) // 2, False
    else:
        y0 = int(rng.integers(0, nh - image_size + 1))
        x0 = int(rng.integers(0, nw - image_size + 1))
        flip = bool(rng.random() < 0.5)
    image = image[y0:y0 + image_size, x0:x0 + image_size]
    if flip:
        image = image[:, ::-1]
    return np.ascontiguousarray(image), (nw / w, nh / h), (x0, y0), flip


class ImageFolderDataset(Dataset):
    """Images under one folder as (3, S, S) tensors in [-1, 1], with optional landmark maps.

    Args:
        paths: readable image files (see :func:`collect_images`).
        image_size: crop size S.
        load_size: shorter side before cropping (>= image_size).
        landmarks: ``{path: (N, 2) array or None}`` from the landmark cache (N = 468 or 68, one
            detector's), or None to deliver no landmark maps. Only read here: detection never
            runs in a worker.
        augment: random crop and flip (False: centre crop, for grids and evaluation).
    Items: ``{"image": (3,S,S), "lmap": (2,S,S) in [0,1], "valid": bool, "points": (N,2)}``
    (lmap/valid/points only with landmarks). ``points`` are the cached landmarks in pixels of
    the item's image, after the same resize / crop / flip (faces.transforms);
    all NaN where no face was found.
    """

    def __init__(self, paths: list[Path], image_size: int, load_size: int | None = None,
                 landmarks: dict[Path, np.ndarray | None] | None = None, augment: bool = True):
        if not paths:
            raise ValueError("ImageFolderDataset needs at least one image path")
        self.paths = list(paths)
        self.image_size = image_size
        self.load_size = max(load_size or image_size, image_size)
        self.landmarks = landmarks
        self.augment = augment
        # one detector's cache: every face has the same number of points (a face-less item
        # gets that many NaN rows, so that a batch stacks)
        self.num_points = next((len(p) for p in (landmarks or {}).values() if p is not None), 0)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item) -> dict[str, torch.Tensor]:
        index, aug_seed = item if isinstance(item, tuple) else (item, 0)
        rng = np.random.default_rng(aug_seed) if self.augment else None
        path = self.paths[index]
        try:
            raw = read_image_rgb(path)
        except UnreadableImage as exc:
            # The file went bad after the start-up scan: use a neighbour, say so once per file.
            log.warning("%s became unreadable (%s); using another image", path, exc)
            return self[((index + 1) % len(self.paths), aug_seed)]
        image, scale, crop, flip = resize_crop_flip(raw, self.image_size, self.load_size, rng)
        out = {"image": to_tensor(image)}
        if self.landmarks is not None:
            points = self.landmarks.get(path)
            if points is not None:
                points = transform_landmarks(points, scale, crop, flip, self.image_size)
            out["lmap"] = torch.from_numpy(render_landmark_map(points, self.image_size, self.image_size))
            out["valid"] = torch.tensor(points is not None)
            out["points"] = (torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
                             if points is not None
                             else torch.full((self.num_points, 2), float("nan")))
        return out


class InfiniteSampler(Sampler):
    """Endless, seeded stream of ``(index, aug_seed)``; each rank takes every world-th item.

    Epoch ``e`` is the permutation ``randperm(n, seed + e)``; ``start`` items of this rank's
    share are skipped (resume). ``aug_seed`` is a function of (seed, stream position) only.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0):
        if n <= 0:
            raise ValueError("InfiniteSampler needs n > 0")
        self.n, self.seed, self.rank, self.world_size, self.start = n, seed, rank, world_size, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pos = self.rank + self.start * self.world_size
        epoch, perm = -1, None
        while True:
            e = pos // self.n
            if e != epoch:
                epoch = e
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + e))
            aug_seed = int(np.random.SeedSequence([self.seed, pos]).generate_state(1)[0])
            yield int(perm[pos % self.n]), aug_seed
            pos += self.world_size

    def __len__(self) -> int:  # DataLoader only needs it for len(loader); the stream is endless
        return 2**62
