"""The data of a run: which photos train and which are held out, the landmark pass, and the
persistent loaders of every data source with the face / scenery schedule.

Loaders run one persistent iterator each over an endless seeded sampler
(datasets.folders.InfiniteSampler), so a resumed run sees the batches the uninterrupted run
would have seen. Workers are started with "spawn" (a fresh interpreter: they never inherit a
mediapipe graph, which would crash a forked worker) and die with the trainer however it ends
(kill -9 included: the kernel delivers SIGKILL to them when it goes, see
utils.lifetime.die_with_parent); Ctrl-C is the trainer's business, not theirs.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from datasets.folders import (ImageFolderDataset, InfiniteSampler, collect_images,
                              resolve_cartoon_dir, split_holdout)
from training.config import Config
from training.distributed import DistInfo, barrier, broadcast_object
from utils.errors import ToonFaceError
from utils.lifetime import die_with_parent
from utils.run_dir import RunDir
from faces import (DetectorUnavailable, LandmarkCache, MISSING, resolve_detector,
                                topology_of)
from losses.registry import TERM_BY_NAME

log = logging.getLogger("toonface")

# Loader workers run at a lower priority: they have spare time (prefetching keeps the queue
# full), while the step's compute threads are what bounds a CPU step; at equal priority on a
# 2-core machine their decoding steals those threads' time.
WORKER_NICENESS = 10


def _init_worker(trainer_pid: int, _worker_id: int) -> None:
    die_with_parent(trainer_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer saves and stops; workers wait
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not permitted here: run at normal priority
        pass


def make_loader(dataset, batch_size: int, seed: int, info: DistInfo, start: int, workers: int,
                device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """One persistent iterator over ``dataset``, ``start`` batches into its seeded stream."""
    sampler = InfiniteSampler(len(dataset), seed, info.rank, info.world_size, start * batch_size)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs = {"multiprocessing_context": "spawn", "persistent_workers": True,
                  "prefetch_factor": 4,
                  "worker_init_fn": functools.partial(_init_worker, os.getpid())}
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        pin_memory=device.type == "cuda", drop_last=True, **kwargs)
    return iter(loader)


# ----------------------------------------------------------------------------- photo sets
@dataclass
class PhotoSplit:
    train: list[Path]
    held: list[Path]
    notes: list[str] = field(default_factory=list)  # for the run's log (a resume's changes)

    @property
    def sample(self) -> list[Path]:
        """The photos of the fixed grid batch: held-out ones when there are any."""
        return self.held or self.train


def heldout_people(spec: str | None) -> list[str]:
    """The stems of ``--heldout_people``: "a,b,c" or "@file" (one per line, # comments)."""
    if not spec:
        return []
    if spec.startswith("@"):
        path = Path(spec[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ToonFaceError(f"--heldout_people {spec}: cannot read {path} ({exc.strerror})") from None
        items = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    else:
        items = [x.strip() for x in spec.split(",")]
    stems = [x for x in items if x]
    if not stems:
        raise ToonFaceError(f"--heldout_people {spec!r}: no names in it")
    return stems


def split_photos(cfg: Config, run: RunDir | None = None) -> PhotoSplit:
    """Scan the photo folder (bad files reported once) and hold out ``--holdout`` photos, or
    the photos of ``--heldout_people`` (each stem must name exactly one photo).

    ``run``: the folder of a run being resumed. Its split is part of the run: the held-out
    photos are the ones its heldout.txt lists, never drawn again (the folder may have changed:
    a new draw would train on former held-out faces); see :func:`resumed_split`.
    """
    paths = collect_images(cfg.data.photo_dir, "photo")
    notes = []
    if run is not None:
        split = resumed_split(cfg, run, paths)
        if split is not None:
            return split
        notes.append(f"resume: {run.path} has no heldout.txt, so the held-out photos are drawn "
                     "again (photos held out before may now be trained on)")
    stems = heldout_people(cfg.data.heldout_people)
    if not stems:
        train, held = split_holdout(paths, cfg.data.holdout, cfg.run.seed)
        return PhotoSplit(train, held, notes)
    by_stem: dict[str, list[Path]] = {}
    for p in paths:
        by_stem.setdefault(p.stem, []).append(p)
    for stem in stems:
        found = by_stem.get(stem, [])
        if len(found) != 1:
            what = "no photo" if not found else f"{len(found)} photos ({', '.join(map(str, found))})"
            raise ToonFaceError(f"--heldout_people: {what} named {stem}.* in {cfg.data.photo_dir}; "
                                "each held-out person needs exactly one photo")
    held_set = set(stems)
    return PhotoSplit([p for p in paths if p.stem not in held_set],
                      [by_stem[s][0] for s in stems], notes)


def resumed_split(cfg: Config, run: RunDir, paths: list[Path]) -> PhotoSplit | None:
    """The split of a resumed run with the photos now in its folder (``paths``): the photos
    of its heldout.txt that still exist are held out, every other photo trains (new ones too;
    with ``--heldout_people`` no photo of a held-out person ever does). What changed since the
    run started (photos.txt) is one line of ``notes``. None when the run has no heldout.txt."""
    listed = run.read_heldout()
    if listed is None:
        return None
    now = {p.resolve(): p for p in paths}
    held_keys = [p.resolve() for p in listed]
    held_set = set(held_keys)
    people = set(heldout_people(cfg.data.heldout_people))
    held = [now[k] for k in held_keys if k in now]
    train = [p for k, p in now.items() if k not in held_set and p.stem not in people]
    if not train:
        raise ToonFaceError(f"resume: no photo left to train on in {cfg.data.photo_dir} (the "
                            f"held-out photos of {run.heldout_file} excluded)")
    gone_held = len(listed) - len(held)
    started = run.read_photos()
    parts = []
    if started is not None:
        before = {p.resolve() for p in started}
        added = len(now.keys() - before)
        missing = len(before - now.keys())
        if added:
            parts.append(f"{added} photo(s) added (trained on from now; never held out)")
        if missing:
            parts.append(f"{missing} missing" + (f", {gone_held} of them held out" if gone_held else ""))
    elif gone_held:
        parts.append(f"{gone_held} held-out photo(s) missing")
    notes = []
    if parts:
        notes.append(f"resume: the photo folder {cfg.data.photo_dir} changed since the run started: "
                     f"{', '.join(parts)}; the held-out split is kept ({run.heldout_file.name}: "
                     f"{len(held)} held out, {len(train)} to train on)")
    return PhotoSplit(train, held, notes)


def load_landmarks(photo_dir: Path, paths: list[Path], cache_file: str | None, detector,
                   info: DistInfo, progress: bool) -> tuple[dict[Path, np.ndarray | None], dict]:
    """Fill (rank 0) and read the landmark cache of ``detector`` (a DetectorSpec) for
    ``paths``; detection runs here, before any loader worker exists."""
    cache = LandmarkCache(photo_dir, cache_file, detector)
    summary = None
    if info.is_main:
        cache.load()
        summary = cache.fill(paths=paths, progress=progress)
    summary = broadcast_object(summary, info)
    barrier(info)
    if not info.is_main:
        cache.load()
    points = {}
    for p in paths:
        pts = cache.lookup(p)
        points[p] = None if pts is MISSING else pts
    return points, summary


def face_size(points: dict[Path, np.ndarray | None], load_size: int, limit: int = 1000) -> float | None:
    """Median inter-ocular distance (FaceMesh outer eye corners, whatever the detector's
    layout: Topology.face_size) at the training scale, px."""
    from PIL import Image


    sizes = []
    for path, pts in list(points.items())[:limit]:
        if pts is None:
            continue
        with Image.open(path) as im:
            w, h = im.size
        sizes.append(topology_of(pts).face_size(pts) * load_size / min(w, h))
    return float(np.median(sizes)) if sizes else None


@dataclass
class Landmarks:
    points: dict[Path, np.ndarray | None] | None   # per photo; None: no detector available
    face_size: float | None                          # median inter-ocular distance, px


def landmark_terms(cfg: Config) -> list:
    """The active terms (losses/registry.py ``Term``) that read the photos' landmarks."""
    return [TERM_BY_NAME[n] for n in cfg.loss.active() if TERM_BY_NAME[n].landmarks]


def _flag(term) -> str:
    return "--" + term.key.replace("_", "-")


def landmark_detector(cfg: Config, needed: bool | list = False):
    """The run's landmark detector (a DetectorSpec), checked before any work; None when none
    is available and no landmark term is on (the grid then shows no map).

    ``needed``: the active landmark terms (or a bool); each must be able to use the detector's
    points (``Term.topologies``), else one line names the term and the detector.
    """
    try:
        spec = resolve_detector(cfg.data.landmark_detector, cfg.data.landmark_model)
    except DetectorUnavailable:
        if needed or cfg.data.landmark_detector is not None:
            raise
        return None
    for term in needed if isinstance(needed, list) else ():
        if term.topologies and spec.topology.name not in term.topologies:
            raise ToonFaceError(
                f"{_flag(term)} > 0 needs landmarks it can map ({', '.join(term.topologies)}), but "
                f"--landmark-detector {spec.name} gives {spec.topology.name}: choose another "
                f"detector, or {_flag(term)} 0")
    return spec


def detect_landmarks(cfg: Config, split: PhotoSplit, detector, info: DistInfo,
                     needed: bool | list = False) -> Landmarks:
    """The landmark pass over every photo (cached). ``needed``: the active landmark terms (or
    a bool): then a photo set without faces stops the run with one line naming them."""
    if detector is None:
        return Landmarks(None, None)
    points, summary = load_landmarks(Path(cfg.data.photo_dir), split.train + split.held,
                                     cfg.data.landmark_cache, detector, info, cfg.run.progress)
    found = sum(points[p] is not None for p in split.train)
    rate = found / len(split.train)
    log.info("landmarks: faces found in %d of %d training photos (%.1f%%)", found,
             len(split.train), 100 * rate)
    if found == 0 and needed:
        flags = [_flag(t) for t in needed] if isinstance(needed, list) else ["--w5"]
        raise ToonFaceError(f"no face found in any photo of {cfg.data.photo_dir} while "
                            f"{' and '.join(f + ' > 0' for f in flags)}: use face photos, or "
                            f"{' and '.join(f + ' 0' for f in flags)}")
    size = face_size({p: points[p] for p in split.train}, cfg.data.load_size or cfg.data.image_size)
    return Landmarks(points, size)


def sample_batch(paths: list[Path], cfg: Config, landmarks=None) -> dict[str, torch.Tensor]:
    """The fixed grid batch: the first grid_size of ``paths``, centre crops."""
    ds = ImageFolderDataset(paths[: cfg.run.grid_size], cfg.data.image_size, cfg.data.load_size,
                            landmarks=landmarks, augment=False)
    items = [ds[i] for i in range(len(ds))]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


# ------------------------------------------------------------------------------- sources
class PhotoStream:
    """Pretraining's only source: photo batches from step ``start`` on."""

    def __init__(self, cfg: Config, split: PhotoSplit, info: DistInfo, device: torch.device, start: int):
        ds = ImageFolderDataset(split.train, cfg.data.image_size, cfg.data.load_size)
        self.photos = make_loader(ds, cfg.optim.batch_size, cfg.run.seed, info, start,
                                  cfg.data.workers, device)

    def next(self, step: int) -> dict[str, torch.Tensor]:
        return next(self.photos)


@dataclass(frozen=True)
class FaceSchedule:
    """Which steps take face batches when scenery is mixed in (white-box: 1 step in 5).

    Step s is a face step when floor((s + 1) r) > floor(s r): exactly r of the steps, spread
    evenly, the first at s = ceil(1 / r) - 1. Without scenery every step is a face step.
    """

    face_ratio: float
    scenery: bool

    def is_face_step(self, step: int) -> bool:
        if not self.scenery:
            return True
        r = self.face_ratio
        return math.floor((step + 1) * r) > math.floor(step * r)

    def face_batches_before(self, step: int) -> int:
        return math.floor(step * self.face_ratio) if self.scenery else step


class TrainStreams:
    """Training's sources: face photos and cartoons, plus scenery photos and cartoons when given.

    With scenery, steps alternate by :class:`FaceSchedule`; each source's stream position is the number of its batches before the step, so a resumed
    run continues every stream where it stopped.
    """

    def __init__(self, cfg: Config, split: PhotoSplit, cartoons: list[Path],
                 scenery: tuple[list[Path], list[Path]] | None, landmarks: dict | None,
                 info: DistInfo, device: torch.device, start: int):
        d, bs, wk, seed = cfg.data, cfg.optim.batch_size, cfg.data.workers, cfg.run.seed
        self.schedule = FaceSchedule(d.face_ratio, scenery is not None)
        n_face = self.schedule.face_batches_before(start)

        self.datasets: dict[str, ImageFolderDataset] = {}

        def loader(key, paths, lm, offset, before):
            ds = self.datasets[key] = ImageFolderDataset(paths, d.image_size, d.load_size, lm)
            return make_loader(ds, bs, seed + offset, info, before, wk, device)

        self.photos = loader("photos", split.train, landmarks, 0, n_face)
        self.cartoons = loader("cartoons", cartoons, None, 1, n_face)
        if scenery is not None:
            self.scn_photos = loader("scenery photos", scenery[0], None, 2, start - n_face)
            self.scn_cartoons = loader("scenery cartoons", scenery[1], None, 3, start - n_face)

    def next(self, step: int) -> tuple[dict, dict, bool]:
        """(photo batch, cartoon batch, is a face step) for ``step``."""
        if self.schedule.is_face_step(step):
            return next(self.photos), next(self.cartoons), True
        return next(self.scn_photos), next(self.scn_cartoons), False


def collect_cartoons(cfg: Config) -> tuple[list[Path], tuple[list[Path], list[Path]] | None]:
    """Scan the cartoon folder and the scenery folders (each checked, bad files reported once)."""
    cartoons = collect_images(resolve_cartoon_dir(cfg.data.cartoon_dir), "cartoon")
    held = set(heldout_people(cfg.data.heldout_people))
    if held:  # same name = same person: the held-out people's cartoons stay out of training too
        kept = [p for p in cartoons if p.stem not in held]
        log.info("--heldout_people: %d of %d cartoons left out", len(cartoons) - len(kept), len(cartoons))
        if not kept:
            raise ToonFaceError(f"cartoon folder {cfg.data.cartoon_dir}: every cartoon belongs to a "
                                "held-out person")
        cartoons = kept
    scenery = None
    if cfg.data.scenery_photo_dir:
        scenery = (collect_images(cfg.data.scenery_photo_dir, "scenery photo"),
                   collect_images(resolve_cartoon_dir(cfg.data.scenery_cartoon_dir), "scenery cartoon"))
    return cartoons, scenery
