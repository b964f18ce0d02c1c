"""Opening a run: the folder, the resume policy, the lock, the log.

``open_run`` decides what a start means before anything is written:

- a new run gets its folder and config.json only after every check has passed (see
  training/loop.py: data, weights files and the starting generator are checked first), so a
  failed start leaves nothing behind;
- ``--resume`` takes every option from the checkpoint, except the runtime ones
  (config.RUNTIME_OPTIONS) the command line may change; any other option the user typed with
  a different value is refused with one line naming it (a typed ``--content-network auto`` is
  compared as the network auto picks here). The folder the checkpoint is in is the
  run's folder, whatever the saved config says (a copied or moved run stays where it is);
- a run of the other kind (a pretraining run resumed by train.py, or the reverse) is refused;
- one process per run folder: an advisory lock (flock) held for the whole run, which the
  kernel releases when the process dies, however it dies.
"""
from __future__ import annotations

import copy
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from training.config import RUNTIME_OPTIONS, Config, typed_differences
from training.distributed import DistInfo, barrier
from utils.errors import ToonFaceError
from utils.io import TMP_SUFFIX, atomic_write_text, check_writable
from utils.run_dir import RunDir
from models.checkpoint import load_checkpoint_file, load_generator, weights_hash
from models.content_network import resolve_content_network
from training.state import required_keys

log = logging.getLogger("toonface")

LOCK_FILE = ".lock"
# Loggers of the packages whose messages belong in a run's log.
PACKAGE_LOGGERS = ("models", "datasets", "representations", "training")


def setup_logging(log_file: Path | None, is_main: bool) -> None:
    """The "toonface" logger (and the packages' loggers) to stderr and, on rank 0, log.txt."""
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.propagate = False
    if not is_main:
        log.addHandler(logging.NullHandler())
    else:
        fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        stream = logging.StreamHandler()
        stream.setFormatter(fmt)
        log.addHandler(stream)
        if log_file is not None:
            fh = logging.FileHandler(log_file)
            fh.setFormatter(fmt)
            log.addHandler(fh)
    for name in PACKAGE_LOGGERS:
        lg = logging.getLogger(name)
        lg.handlers = log.handlers
        lg.setLevel(logging.INFO)
        lg.propagate = False


class RunLock:
    """An exclusive, non-blocking flock on ``<run>/.lock`` for this process's lifetime."""

    def __init__(self, run: RunDir):
        self.path = run.path / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ToonFaceError(f"run {self.path.parent} is in use by another process (pid "
                                f"{holder}): wait for it to finish, or choose another --name") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    __del__ = release


def remove_stale_temporaries(run: RunDir) -> list[Path]:
    """Delete the temporary files a killed writer left (``.<name>.<random>.tmp``)."""
    gone = []
    for folder in (run.path, run.ckpt_dir, run.generator_dir, run.samples_dir):
        if folder.is_dir():
            for p in folder.glob(f".*{TMP_SUFFIX}"):
                p.unlink(missing_ok=True)
                gone.append(p)
    return gone


def check_training_state(path: Path, state: dict[str, Any], kind: str) -> None:
    """Raise ToonFaceError (one line) unless ``state`` is a full checkpoint of a ``kind`` run."""
    if state.get("format") == "toonface-generator":
        raise ToonFaceError(f"{path} is a generator file, not a training checkpoint: --resume needs "
                            "the full state written by pretrain.py/train.py (ckpt/latest.pt)")
    saved_kind = state.get("kind") or (state.get("config") or {}).get("kind")
    if saved_kind and saved_kind != kind:
        other = "pretrain.py" if saved_kind == "pretrain" else "train.py"
        raise ToonFaceError(f"run {path.parent.parent} is a {saved_kind} run: resume it with "
                            f"{other}, or choose another --name for a new {kind} run")

    missing = [k for k in required_keys(kind) if k not in state]
    if missing or not isinstance(state.get("config"), dict):
        raise ToonFaceError(f"{path}: not a complete {kind} checkpoint (missing "
                            f"{', '.join(missing) or 'config'})")


def open_run(cfg: Config, info: DistInfo) -> tuple[Config, dict | None, RunDir, RunLock | None]:
    """(config to use, checkpoint state or None, run folder, lock) for ``cfg``.

    Nothing is written here: :func:`create_run` makes the folder of a new run once the
    caller's checks have passed. Raises ToonFaceError for a resume the checkpoint does not
    allow, a run in use, or a name already taken without ``--resume``.
    """
    run = RunDir.of(cfg.run.checkpoints_dir, cfg.run.name)
    if info.is_main:  # an unwritable place fails here, before the data and weights are read
        check_writable(run.path, "run folder", folder=True)
    lock = None
    if info.is_main and run.path.is_dir():
        lock = RunLock(run).acquire()
    barrier(info)
    try:
        cfg, state = _resume_policy(cfg, run)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return cfg, state, run, lock


def _resume_policy(cfg: Config, run: RunDir) -> tuple[Config, dict | None]:
    latest = run.latest_checkpoint
    if cfg.run.resume and latest.is_file():
        state = load_checkpoint_file(latest)
        check_training_state(latest, state, cfg.kind)
        saved = Config.from_flat(state["config"])
        refused = typed_differences(saved, _resolve_typed_network(cfg, saved), cfg.typed)
        moved_init = _moved_pretraining(saved, cfg) if any(r[0] == "init" for r in refused) else None
        if moved_init is not None:
            refused = [r for r in refused if r[0] != "init"]
        if refused:
            name, was, now = refused[0]
            raise ToonFaceError(f"--resume keeps the run's options, but --{name} differs: the run has "
                                f"{was!r}, the command line {now!r} (only runtime options may change "
                                "on resume: total_iter, device, workers, logging and save intervals; "
                                "start a new run with another --name to change it)")
        for name in RUNTIME_OPTIONS:
            saved.set(name, cfg.get(name))
        # where the run was found is where it is (a copied or moved folder stays put)
        saved.run.name, saved.run.checkpoints_dir = cfg.run.name, cfg.run.checkpoints_dir
        if moved_init is not None:  # and its pretraining, copied or moved with it
            saved.model.init, saved.model.init_resolved = cfg.model.init, moved_init
        saved.typed = cfg.typed
        return saved.validate(), state
    if cfg.run.resume:
        log.info("--resume: no checkpoint in %s, starting a new run", run.ckpt_dir)
    elif latest.is_file():
        raise ToonFaceError(f"run {run.path} already has checkpoints: pass --resume to continue "
                            "it, or choose another --name")
    return cfg, None


def resolve_init(cfg: Config) -> tuple[str | None, str | None]:
    """(the generator file a new training run starts from, the hash of its pretrained root),
    the file checked loadable; (None, None) for --init none.

    The root is the file itself when it is a pretrained generator, and the root recorded in
    it when it is a trained style (a style fine-tuned from another shares its parent's root).
    """
    init = cfg.model.init
    if init == "none":
        return None, None
    path = Path(init) if init else find_latest_pretrained(cfg.run.checkpoints_dir)
    if path is None:
        raise ToonFaceError(
            f"no pretrained generator found under {cfg.run.checkpoints_dir}/*/generator/"
            "latest.pt: run pretrain.py first, or pass --init PATH (or --init none)")
    if not path.is_file():
        raise ToonFaceError(f"--init {path}: file not found")
    G, meta = load_generator(path)  # a file that is not a generator stops us here
    root = meta.get("pretrained_hash") if meta.get("kind") == "train" else None
    return str(path), root or weights_hash(G.state_dict())


def _moved_pretraining(saved: Config, cfg: Config) -> str | None:
    """The typed ``--init`` file, when it is the run's own starting generator in another place
    (a run copied or moved with its pretraining, e.g. a study's run continued in another sweep
    folder): the same pretrained root hash as the run recorded. None otherwise (a file that
    differs, is missing or is no generator), and the typed ``--init`` is refused as before."""
    if not saved.model.pretrained_hash or cfg.model.init in (None, "", "none"):
        return None
    try:
        path, root = resolve_init(cfg)
    except ToonFaceError:
        return None
    return path if root == saved.model.pretrained_hash else None


def _resolve_typed_network(cfg: Config, saved: Config) -> Config:
    """``cfg`` with a typed ``--content-network auto`` replaced by the network auto picks here
    (a copy): a resumed run compares networks, and its config holds the one it trained with."""
    if cfg.kind != "train" or "content_network" not in cfg.typed or cfg.loss.content_network != "auto":
        return cfg

    cfg = copy.deepcopy(cfg)
    if saved.loss.content_network is None:  # the run's terms use no network: auto picks none
        cfg.loss.content_network = None
    else:
        cfg.loss.content_network = resolve_content_network(
            "auto", cfg.loss.vgg_weights, cfg.run.checkpoints_dir, quiet=True)[0]
    return cfg


def create_run(cfg: Config, run: RunDir, info: DistInfo, lock: RunLock | None) -> RunLock | None:
    """Make the run's folders, take its lock, write config.json (rank 0); returns the lock."""
    if info.is_main:
        try:
            run.mkdirs()
            if lock is None:
                lock = RunLock(run).acquire()
            remove_stale_temporaries(run)
        except OSError as exc:  # e.g. the folder became unwritable, or the disk is full
            raise ToonFaceError(f"cannot create the run folder {run.path}: "
                                f"{exc.strerror or type(exc).__name__}") from None
        atomic_write_text(run.config_file, json.dumps(cfg.flat(), indent=2, sort_keys=True) + "\n")
    barrier(info)
    return lock


def find_latest_pretrained(checkpoints_dir: str | os.PathLike) -> Path | None:
    """Newest ``<run>/generator/latest.pt`` whose run is a pretraining run."""
    found = [(r.latest_generator.stat().st_mtime, r.latest_generator)
             for r in RunDir.runs_in(checkpoints_dir)
             if r.kind() == "pretrain" and r.latest_generator.is_file()]
    return max(found)[1] if found else None
