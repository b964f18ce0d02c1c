"""The training loops: ``pretrain(cfg)`` (pixel L1 reconstruction) and ``train(cfg)`` (the
white-box recipe plus the landmark loss). ``cfg`` is the dict of :func:`training.config.resolve`.

One persistent iterator per loader over an endless seeded sampler; one "tick" block does all
periodic work (stats, grids, checkpoints). White-box order per step: G step, then D step on a
fresh forward of the updated G (under no_grad).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from datasets.folders import (ImageFolderDataset, InfiniteSampler, collect_images,
                              resolve_cartoon_dir, split_holdout)
from losses.adversarial import lsgan_d_loss, lsgan_g_loss
from losses.content import feature_l1
from representations.surface import surface
from representations.texture import texture, texture_weights
from losses.variation import total_variation_loss
from models import Discriminator, Generator, build_vgg, guided_filter, resolve_vgg_weights
from models import checkpoint as ckpt
from utils.io import atomic_save
from utils.run_dir import RunDir
from training.config import describe, weights as weights_of
from training.distributed import DistInfo, barrier, broadcast_object, init_distributed, shutdown
from training.stats import NonFiniteLoss, PhaseTimer, StatsAccumulator, StatsWriter
from training.visuals import COLUMNS, PRETRAIN_COLUMNS, make_grid, representations, save_png
from utils.errors import ToonFaceError
from utils.io import atomic_write_text
from utils.memory import retain_freed_memory

log = logging.getLogger("toonface")

# Options a resumed run may change; everything else comes from the run's config.json.
RUNTIME_OPTIONS = ("total_iter", "device", "workers", "progress", "log_every", "sample_every",
                   "save_every", "keep_ckpt", "tensorboard", "resume", "reuse_host_memory")


class TrainingDiverged(ToonFaceError):
    exit_code = 3


# ----------------------------------------------------------------------------- run folders
def run_dir(cfg: dict[str, Any]) -> Path:
    return Path(cfg["checkpoints_dir"]) / cfg["name"]


def setup_logging(folder: Path | None, is_main: bool) -> None:
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.propagate = False
    if not is_main:
        log.addHandler(logging.NullHandler())
        return
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    stream = logging.StreamHandler()
    stream.setFormatter(fmt)
    log.addHandler(stream)
    if folder is not None:
        fh = logging.FileHandler(folder / "log.txt")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    for name in ("models.vgg", "datasets.folders", "datasets.landmarks", "losses.structure"):
        lg = logging.getLogger(name)
        lg.handlers = log.handlers
        lg.setLevel(logging.INFO)
        lg.propagate = False


def find_latest_pretrained(checkpoints_dir: str | os.PathLike) -> Path | None:
    """Newest ``<run>/generator/latest.pt`` whose run is a pretraining run."""
    found = []
    for cfg_file in Path(checkpoints_dir).glob("*/config.json"):
        try:
            kind = json.loads(cfg_file.read_text()).get("kind")
        except (OSError, json.JSONDecodeError):
            continue
        g = cfg_file.parent / "generator" / "latest.pt"
        if kind == "pretrain" and g.is_file():
            found.append((g.stat().st_mtime, g))
    return max(found)[1] if found else None


def prepare_run(cfg: dict[str, Any], info: DistInfo, complete=None) -> tuple[dict[str, Any], dict | None]:
    """Create or reopen the run folder; returns (config to use, checkpoint state or None).

    ``complete(cfg)`` fills derived options of a new run before config.json is written.
    """
    folder = run_dir(cfg)
    latest = folder / "ckpt" / "latest.pt"
    state = None
    if cfg["resume"] and latest.is_file():
        state = ckpt.load_checkpoint_file(latest)
        saved = dict(state["config"])
        saved.update({k: cfg[k] for k in RUNTIME_OPTIONS if k in cfg})
        cfg = saved
    elif cfg["resume"]:
        log.info("--resume: no checkpoint in %s, starting a new run", folder / "ckpt")
    elif latest.is_file():
        raise ToonFaceError(f"run {folder} already has checkpoints: pass --resume to continue "
                            "it, or choose another --name")
    if state is None and complete is not None:
        cfg = complete(dict(cfg))
    if info.is_main:
        (folder / "ckpt").mkdir(parents=True, exist_ok=True)
        (folder / "generator").mkdir(exist_ok=True)
        (folder / "samples").mkdir(exist_ok=True)
        atomic_write_text(folder / "config.json", json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    barrier(info)
    return cfg, state


# ------------------------------------------------------------------------------------ data
# Loader workers run at a lower priority: they have spare time (prefetching keeps the queue
# full), while the step's compute threads are what bounds a CPU step; at equal priority on a
# 2-core machine their decoding steals those threads' time.
WORKER_NICENESS = 10


def _lower_priority(worker_id: int) -> None:
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not permitted here: run at normal priority
        pass


def make_loader(dataset, batch_size: int, seed: int, info: DistInfo, start: int, workers: int,
                device: torch.device):
    sampler = InfiniteSampler(len(dataset), seed, info.rank, info.world_size, start * batch_size)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        # forkserver: workers never inherit a mediapipe graph built by this process (fork rule).
        kwargs = {"multiprocessing_context": "forkserver", "persistent_workers": True,
                  "prefetch_factor": 4, "worker_init_fn": _lower_priority}
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        pin_memory=device.type == "cuda", drop_last=True, **kwargs)
    return iter(loader)


def load_landmarks(photo_dir: Path, paths: list[Path], cache_file: str | None, info: DistInfo,
                   progress: bool) -> tuple[dict[Path, np.ndarray | None], dict]:
    """Fill (rank 0) and read the landmark cache for ``paths``; detection runs here, before
    any loader worker exists."""
    from datasets.landmarks import MISSING, LandmarkCache

    cache = LandmarkCache(photo_dir, cache_file)
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
    """Median inter-ocular distance (outer eye corners 33, 263) at the training scale, px."""
    from PIL import Image

    from datasets.landmarks import inter_ocular_distance

    sizes = []
    for path, pts in list(points.items())[:limit]:
        if pts is None:
            continue
        with Image.open(path) as im:
            w, h = im.size
        sizes.append(inter_ocular_distance(pts) * load_size / min(w, h))
    return float(np.median(sizes)) if sizes else None


# ---------------------------------------------------------------------------------- models
def autocast_ctx(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def wrap_ddp(model: torch.nn.Module, info: DistInfo, device: torch.device):
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def rng_state(texture_gen: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "texture": texture_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], texture_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    texture_gen.set_state(state["texture"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------ the loops
class Loop:
    """What pretraining and training share: run folder, data, checkpoints, ticks."""

    kind = "pretrain"
    columns = PRETRAIN_COLUMNS

    def __init__(self, cfg: dict[str, Any]):
        self.info, self.device = init_distributed(cfg["device"])
        setup_logging(None, self.info.is_main)
        self.cfg, self.state = prepare_run(cfg, self.info, self.complete_config)
        cfg = self.cfg
        self.folder = run_dir(cfg)
        setup_logging(self.folder, self.info.is_main)
        log.info("%s run %s on %s (world size %d)\n%s", self.kind, self.folder, self.device,
                 self.info.world_size, describe(cfg))
        if cfg["reuse_host_memory"] and self.device.type == "cpu" and not retain_freed_memory():
            log.info("--reuse_host_memory: no glibc here, malloc left as it is")
        self.seed = cfg["seed"] + self.info.rank
        torch.manual_seed(self.seed)
        self.texture_gen = torch.Generator().manual_seed(cfg["seed"])
        self.step = int(self.state["step"]) if self.state else 0
        self.precision = autocast_ctx(self.device, cfg["precision"])
        self.memory_format = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
        self.face_size: float | None = None
        self.build_data()
        self.build_models()
        if self.state:
            self.load_state(self.state)
            log.info("resumed from step %d", self.step)
        self.state = None
        self.timer = PhaseTimer(self.device)
        self.acc = StatsAccumulator()
        self.writer = None
        if self.info.is_main:
            self.writer = StatsWriter(self.folder / "stats.jsonl",
                                      self.folder / "tensorboard" if cfg["tensorboard"] else None)
            self.writer.truncate_after(self.step)

    def complete_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return cfg

    # -- data
    def photo_paths(self) -> tuple[list[Path], list[Path]]:
        cfg = self.cfg
        paths = collect_images(cfg["photo_dir"], "photo")
        train, held = split_holdout(paths, cfg["holdout"], cfg["seed"])
        if self.info.is_main:
            atomic_write_text(self.folder / "heldout.txt", "".join(f"{p.resolve()}\n" for p in held))
        return train, held

    def build_data(self) -> None:
        cfg = self.cfg
        train, held = self.photo_paths()
        self.photos = ImageFolderDataset(train, cfg["image_size"], cfg["load_size"])
        self.sample_photos = held or train
        self.photo_iter = make_loader(self.photos, cfg["batch_size"], cfg["seed"], self.info,
                                      self.step, cfg["workers"], self.device)

    def sample_batch(self, landmarks=None) -> dict[str, torch.Tensor]:
        """The fixed grid batch: the first grid_size held-out photos, centre crops."""
        paths = self.sample_photos[: self.cfg["grid_size"]]
        ds = ImageFolderDataset(paths, self.cfg["image_size"], self.cfg["load_size"],
                                landmarks=landmarks, augment=False)
        items = [ds[i] for i in range(len(ds))]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    # -- models
    def new_generator(self) -> Generator:
        cfg = self.cfg
        return Generator(output_act=cfg["output_act"], upsample=cfg["upsample"])

    def build_models(self) -> None:
        self.G_raw = self.new_generator().to(self.device, memory_format=self.memory_format)
        self.G = wrap_ddp(self.G_raw, self.info, self.device)
        self.opt_G = self.adam(self.G_raw.parameters())

    def adam(self, params) -> torch.optim.Adam:
        """Adam with the run's lr and betas, fused (one kernel over every tensor; 5 -> 2 ms per
        G update on 2 CPU cores) on the devices torch fuses it for."""
        cfg = self.cfg
        return torch.optim.Adam(params, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]),
                                fused=self.device.type in ("cpu", "cuda"))

    def model_state(self) -> dict[str, Any]:
        return {"G": self.G_raw.state_dict(), "opt_G": self.opt_G.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.G_raw.load_state_dict(state["G"])
        self.opt_G.load_state_dict(state["opt_G"])
        set_rng_state(state["rng"], self.texture_gen)

    # -- periodic work
    def save(self) -> None:
        if not self.info.is_main:
            return
        self.acc.check_finite()  # never write a checkpoint of a diverged run
        state = {**self.model_state(), "step": self.step, "config": self.cfg, "kind": self.kind,
                 "generator_config": ckpt.generator_config(self.G_raw),
                 "face_size": self.face_size, "rng": rng_state(self.texture_gen)}
        name = f"step_{self.step:06d}.pt"
        atomic_save(self.folder / "ckpt" / name, lambda f: torch.save(state, f))
        atomic_save(self.folder / "ckpt" / "latest.pt", lambda f: torch.save(state, f))
        RunDir(self.folder).rotate_checkpoints(self.cfg["keep_ckpt"])
        meta = {"image_size": self.cfg["image_size"], "face_size": self.face_size,
                "step": self.step, "run": self.cfg["name"], "kind": self.kind,
                "gf_eps": self.cfg["gf_eps"]}
        for gname in (name, "latest.pt"):
            ckpt.save_generator(self.folder / "generator" / gname, self.G_raw, **meta)

    def snapshot(self) -> Path | None:
        if not self.info.is_main:
            return None
        cols = representations(self.G_raw, self.to_device(self.sample["image"]),
                               self.sample.get("lmap"), self.cfg["gf_eps"],
                               self.cfg.get("superpixel", "fast"), self.cfg.get("seg_num", 200),
                               self.columns, self.precision)
        path = self.folder / "samples" / f"step_{self.step:06d}.png"
        save_png(path, make_grid(cols))
        try:
            from training.curves import plot_loss_curves

            if (self.folder / "stats.jsonl").exists():
                plot_loss_curves(self.folder / "stats.jsonl", self.folder / "loss_curves.png")
        except ImportError:
            pass
        return path

    def tick(self, bar) -> None:
        values = self.acc.tick()
        phases = self.timer.collect()
        n = max(1, self._since_tick)
        record = {"step": self.step, "kimg": self.step * self.cfg["batch_size"] *
                  self.info.world_size / 1000.0, **values}
        record.update({f"time/{k}": v / n for k, v in phases.items()})
        record["time/step"] = (time.perf_counter() - self._tick_t0) / n
        self._tick_t0, self._since_tick = time.perf_counter(), 0
        if self.writer is not None:
            self.writer.write(record)
        if bar is not None:
            bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items()
                             if k in self.bar_keys})

    bar_keys = ("G/l1",)

    def run_step(self) -> dict[str, torch.Tensor]:
        with self.timer("data"):
            photo = self.to_device(next(self.photo_iter)["image"])
        with self.timer("g_forward"), self.precision:
            raw = self.G(photo)
        loss = F.l1_loss(raw.float(), photo.float())
        self.optimize(loss, self.opt_G)
        return {"G/l1": loss}

    def optimize(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        with self.timer("backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        with self.timer("optimizer"):
            opt.step()

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.sample = self.sample_batch(getattr(self, "landmarks", None) if self.kind == "train" else None)
        if self.info.is_main and self.step == 0:
            self.snapshot()
        bar = None
        if cfg["progress"] and self.info.is_main:
            from tqdm import tqdm
            bar = tqdm(total=cfg["total_iter"], initial=self.step, desc=self.kind,
                       dynamic_ncols=True, unit="step")
        self._tick_t0, self._since_tick = time.perf_counter(), 0
        check_each_step = self.device.type != "cuda"  # CUDA: check at ticks (no per-step sync)
        try:
            while self.step < cfg["total_iter"]:
                values = self.run_step()
                self.step += 1
                self._since_tick += 1
                self.acc.add(self.step, values)
                if check_each_step:
                    self.acc.check_finite(last_only=True)
                if bar is not None:
                    bar.update(1)
                last = self.step == cfg["total_iter"]
                if self.step % cfg["log_every"] == 0 or last:
                    self.acc.check_finite()
                    self.tick(bar)
                if self.step % cfg["save_every"] == 0 or last:
                    self.save()
                if self.step % cfg["sample_every"] == 0 or last:
                    self.snapshot()
        except NonFiniteLoss as exc:
            raise TrainingDiverged(f"{exc}; stopped, the last good checkpoint is "
                                   f"{self.folder / 'ckpt' / 'latest.pt'}") from None
        finally:
            if bar is not None:
                bar.close()
            if self.writer is not None:
                self.writer.close()
        barrier(self.info)
        result = {"run_dir": str(self.folder), "step": self.step,
                  "generator": str(self.folder / "generator" / "latest.pt"),
                  "grid": str(self.folder / "samples" / f"step_{self.step:06d}.png"),
                  "loss_curves": str(self.folder / "loss_curves.png")}
        shutdown(self.info)
        return result


class TrainLoop(Loop):
    kind = "train"
    columns = COLUMNS
    bar_keys = ("G/total", "D/total", "G/landmark")

    def build_data(self) -> None:
        cfg = self.cfg
        self.w = weights_of(cfg)
        self.vgg_path = None
        if self.w["content"] > 0 or self.w["structure"] > 0:  # a missing file stops us before any work
            self.vgg_path = resolve_vgg_weights(cfg["vgg_weights"], cfg["checkpoints_dir"])
        train, held = self.photo_paths()
        cartoons = collect_images(resolve_cartoon_dir(cfg["cartoon_dir"]), "cartoon")
        self.landmarks = None
        try:
            self.landmarks, summary = load_landmarks(Path(cfg["photo_dir"]), train + held,
                                                     cfg["landmark_cache"], self.info, cfg["progress"])
        except ImportError as exc:  # mediapipe missing: only fatal when the loss needs it
            if self.w["landmark"] > 0:
                raise ToonFaceError(f"--w5 > 0 needs mediapipe==0.10.21 ({exc})") from None
            summary = None
        if summary is not None:
            found = sum(self.landmarks[p] is not None for p in train)
            rate = found / len(train)
            self.landmark_found_rate = rate
            log.info("landmarks: faces found in %d of %d training photos (%.1f%%)",
                     found, len(train), 100 * rate)
            if found == 0 and self.w["landmark"] > 0:
                raise ToonFaceError(f"no face found in any photo of {cfg['photo_dir']} while "
                                    "--w5 > 0: use face photos, or --w5 0")
            self.face_size = face_size({p: self.landmarks[p] for p in train},
                                       cfg["load_size"] or cfg["image_size"])
        use_lm = self.landmarks if self.w["landmark"] > 0 else None
        self.photos = ImageFolderDataset(train, cfg["image_size"], cfg["load_size"], use_lm)
        self.cartoons = ImageFolderDataset(cartoons, cfg["image_size"], cfg["load_size"])
        self.sample_photos = held or train
        start, bs, wk = self.step, cfg["batch_size"], cfg["workers"]
        seed = cfg["seed"]
        self.scenery = bool(cfg.get("scenery_photo_dir"))
        if self.scenery and not cfg.get("scenery_cartoon_dir"):
            raise ToonFaceError("--scenery_photo_dir needs --scenery_cartoon_dir too")
        n_face = self.face_batches_before(start)
        self.photo_iter = make_loader(self.photos, bs, seed, self.info, n_face, wk, self.device)
        self.cartoon_iter = make_loader(self.cartoons, bs, seed + 1, self.info, n_face, wk, self.device)
        if self.scenery:
            sp = collect_images(cfg["scenery_photo_dir"], "scenery photo")
            sc = collect_images(resolve_cartoon_dir(cfg["scenery_cartoon_dir"]), "scenery cartoon")
            n_scn = start - n_face
            self.scn_photo_iter = make_loader(ImageFolderDataset(sp, cfg["image_size"], cfg["load_size"]),
                                              bs, seed + 2, self.info, n_scn, wk, self.device)
            self.scn_cartoon_iter = make_loader(ImageFolderDataset(sc, cfg["image_size"], cfg["load_size"]),
                                                bs, seed + 3, self.info, n_scn, wk, self.device)

    def is_face_step(self, step: int) -> bool:
        """With scenery, face batches come at the rate face_ratio (white-box: every 5th)."""
        if not self.scenery:
            return True
        r = self.cfg["face_ratio"]
        return math.floor((step + 1) * r) > math.floor(step * r)

    def face_batches_before(self, step: int) -> int:
        if not self.cfg.get("scenery_photo_dir"):
            return step
        return math.floor(step * self.cfg["face_ratio"])

    def build_models(self) -> None:
        super().build_models()
        cfg, dev, mf = self.cfg, self.device, self.memory_format
        if not self.state:
            self.load_init()
        self.Ds_raw = Discriminator(3).to(dev, memory_format=mf)
        self.Dt_raw = Discriminator(1).to(dev, memory_format=mf)
        self.Ds, self.Dt = wrap_ddp(self.Ds_raw, self.info, dev), wrap_ddp(self.Dt_raw, self.info, dev)
        d_params = list(self.Ds_raw.parameters()) + list(self.Dt_raw.parameters())
        self.opt_D = self.adam(d_params)
        self.vgg = None
        if self.vgg_path is not None:
            self.vgg = build_vgg(self.vgg_path, cfg["checkpoints_dir"], seed=cfg["seed"]).to(
                dev, memory_format=mf)
            if cfg["precision"] == "bf16":
                # Frozen weights: cast once here instead of by autocast at every forward (the
                # preprocessing constants stay float32).
                self.vgg.convs.to(torch.bfloat16)
        if self.w["landmark"] > 0:
            from losses.landmark import landmark_loss
            self.landmark_loss = landmark_loss

    def complete_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Record which generator a new run starts from (config.json says it)."""
        init = cfg["init"]
        if init == "none":
            cfg["init_resolved"] = None
            return cfg
        path = Path(init) if init else find_latest_pretrained(cfg["checkpoints_dir"])
        if path is None:
            raise ToonFaceError(
                f"no pretrained generator found under {cfg['checkpoints_dir']}/*/generator/"
                "latest.pt: run pretrain.py first, or pass --init PATH (or --init none)")
        if not path.is_file():
            raise ToonFaceError(f"--init {path}: file not found")
        cfg["init_resolved"] = str(path)
        return cfg

    def load_init(self) -> None:
        path = self.cfg.get("init_resolved")
        if path is None:
            log.info("generator starts from random weights (--init none)")
            return
        G, meta = ckpt.load_generator(path)
        self.G_raw.load_state_dict(G.state_dict())
        log.info("generator initialised from %s (step %s)", path, meta.get("step"))

    def model_state(self) -> dict[str, Any]:
        return {**super().model_state(), "Ds": self.Ds_raw.state_dict(),
                "Dt": self.Dt_raw.state_dict(), "opt_D": self.opt_D.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.Ds_raw.load_state_dict(state["Ds"])
        self.Dt_raw.load_state_dict(state["Dt"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.face_size = state.get("face_size", self.face_size)

    def next_batches(self, face: bool):
        if face:
            p, c = next(self.photo_iter), next(self.cartoon_iter)
        else:
            p, c = next(self.scn_photo_iter), next(self.scn_cartoon_iter)
        return p, c

    def run_step(self) -> dict[str, torch.Tensor]:
        cfg, w, timer = self.cfg, self.w, self.timer
        face = self.is_face_step(self.step)
        with timer("data"):
            pb, cb = self.next_batches(face)
            photo, cartoon = self.to_device(pb["image"]), self.to_device(cb["image"])
        # One triple per step, fake and cartoon share it; drawn on the CPU generator (seeded,
        # resumable) and moved once, without a blocking copy on CUDA.
        tex_w = texture_weights(self.texture_gen).to(self.device, non_blocking=True)
        values: dict[str, torch.Tensor] = {}

        # ---- G step (discriminators frozen: no parameter gradients are computed for them)
        self.Ds_raw.requires_grad_(False)
        self.Dt_raw.requires_grad_(False)
        with timer("g_forward"), self.precision:
            raw = self.G(photo)
        out = guided_filter(photo.float(), raw.float(), 1, cfg["gf_eps"])
        terms: dict[str, torch.Tensor] = {}
        if w["tv"] > 0:
            terms["tv"] = total_variation_loss(out)
        with timer("discriminators"), self.precision:
            if w["surface"] > 0:
                terms["surface"] = lsgan_g_loss(self.Ds_raw(surface(out)))
            if w["texture"] > 0:
                terms["texture"] = lsgan_g_loss(self.Dt_raw(texture(out, weights=tex_w)[0]))
        if w["content"] > 0 or w["structure"] > 0:
            targets = []
            if w["structure"] > 0:
                with timer("structure"):
                    from representations.structure import structure
                    targets.append(structure(out.detach(), method=cfg["superpixel"],
                                             seg_num=cfg["seg_num"], power=cfg["sscolor_power"]))
            if w["content"] > 0:
                targets.append(photo)
            with timer("vgg"), self.precision:
                with torch.no_grad():  # photo and structure features in one batched forward
                    feats = self.vgg(torch.cat(targets).contiguous(memory_format=self.memory_format))
                feat_out = self.vgg(out.contiguous(memory_format=self.memory_format))
            feats = feats.chunk(len(targets))
            if w["structure"] > 0:
                terms["structure"] = feature_l1(feats[0], feat_out)
            if w["content"] > 0:
                terms["content"] = feature_l1(feats[-1], feat_out)
        if w["landmark"] > 0 and face:
            with timer("landmark"):
                lmap, valid = self.to_device(pb["lmap"]), pb["valid"].to(self.device, non_blocking=True)
                terms["landmark"] = self.landmark_loss(out, photo, lmap, valid)
                values["landmark/found"] = valid.float().mean()
        g_total = sum(w[k] * v for k, v in terms.items())
        self.optimize(g_total, self.opt_G)
        for k, v in terms.items():
            values[f"G/{k}"] = v.detach()
            values[f"G/{k}_weighted"] = w[k] * v.detach()
        values["G/total"] = g_total.detach()

        # ---- D step on the updated generator
        if w["surface"] > 0 or w["texture"] > 0:
            self.Ds_raw.requires_grad_(True)
            self.Dt_raw.requires_grad_(True)
            with torch.no_grad():
                if cfg["d_fresh_forward"]:
                    with timer("g_forward"), self.precision:
                        raw_d = self.G_raw(photo)
                    fake = guided_filter(photo.float(), raw_d.float(), 1, cfg["gf_eps"])
                else:
                    fake = out.detach()
            d_terms = {}
            b = photo.shape[0]

            def judge(name: str, disc, real_then_fake: torch.Tensor) -> None:
                # One forward over cartoons and fakes together: one spectral-norm power
                # iteration per step, and half the kernel launches.
                logits = disc(real_then_fake)
                d_terms[name] = lsgan_d_loss(logits[:b], logits[b:])
                values[f"D/{name}_real"] = logits[:b].detach().float().mean()
                values[f"D/{name}_fake"] = logits[b:].detach().float().mean()

            with timer("discriminators"), self.precision:
                if w["surface"] > 0:
                    judge("surface", self.Ds, surface(torch.cat([cartoon.float(), fake])))
                if w["texture"] > 0:
                    judge("texture", self.Dt, torch.cat(texture(cartoon.float(), fake, weights=tex_w)))
            d_total = sum(d_terms.values())
            self.optimize(d_total, self.opt_D)
            for k, v in d_terms.items():
                values[f"D/{k}"] = v.detach()
            values["D/total"] = d_total.detach()
        return values


def pretrain(cfg: dict[str, Any]) -> dict[str, Any]:
    """Pixel-L1 pretraining of G; returns paths of what it wrote."""
    return Loop(cfg).run()


def train(cfg: dict[str, Any]) -> dict[str, Any]:
    """The full recipe; returns paths of what it wrote."""
    return TrainLoop(cfg).run()
