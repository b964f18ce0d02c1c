"""The run folder: one object that knows where everything of a run lives.

A run lives in ``<checkpoints_dir>/<name>/``::

    config.json              every resolved option, written before step 1
    stats.jsonl  log.txt     one line per log tick; the log
    heldout.txt              the photos held out of training (kept as they are on --resume)
    photos.txt               every photo the run started with (a resume says what changed)
    loss_curves.png          the loss curves, redrawn at every snapshot
    samples/step_XXXXXX.png  the side-by-side grids
    ckpt/latest.pt           the whole training state (+ rotated ckpt/step_XXXXXX.pt)
    generator/latest.pt      small generator files (+ generator/step_XXXXXX.pt, all kept)
    tensorboard/             TensorBoard events
    test/step_XXXXXX/        what test.py writes for a generator of that step

Nothing else in the project spells these paths. The folder a run is found in is the run's
folder: a copied or moved run is that run at its new place, whatever its config.json says.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from utils.errors import ToonFaceError
from utils.io import atomic_write_text

STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


class RunDir:
    """``RunDir(path)`` or ``RunDir.of(checkpoints_dir, name)``; creating nothing by itself."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def of(cls, checkpoints_dir: str | os.PathLike, name: str) -> "RunDir":
        return cls(Path(checkpoints_dir) / name)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # ---------------------------------------------------------------------------- layout
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoints_dir(self) -> Path:
        return self.path.parent

    config_file = property(lambda self: self.path / "config.json")
    stats_file = property(lambda self: self.path / "stats.jsonl")
    log_file = property(lambda self: self.path / "log.txt")
    heldout_file = property(lambda self: self.path / "heldout.txt")
    photos_file = property(lambda self: self.path / "photos.txt")
    loss_curves = property(lambda self: self.path / "loss_curves.png")
    ckpt_dir = property(lambda self: self.path / "ckpt")
    generator_dir = property(lambda self: self.path / "generator")
    samples_dir = property(lambda self: self.path / "samples")
    tensorboard_dir = property(lambda self: self.path / "tensorboard")
    latest_checkpoint = property(lambda self: self.ckpt_dir / "latest.pt")
    latest_generator = property(lambda self: self.generator_dir / "latest.pt")

    def checkpoint(self, step: int) -> Path:
        return self.ckpt_dir / f"step_{step:06d}.pt"

    def generator(self, step: int) -> Path:
        return self.generator_dir / f"step_{step:06d}.pt"

    def sample(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:06d}.png"

    def test_dir(self, step: int | None, label: str = "latest") -> Path:
        return self.path / "test" / (f"step_{step:06d}" if isinstance(step, int) else label)

    # ------------------------------------------------------------------------- contents
    def is_run(self) -> bool:
        """A folder holding a config.json (what every run writes first)."""
        return self.config_file.is_file()

    def read_config(self) -> dict[str, Any] | None:
        """config.json as a dict, None when there is none; ToonFaceError when unreadable."""
        if not self.config_file.is_file():
            return None
        try:
            cfg = json.loads(self.config_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ToonFaceError(f"{self.config_file}: unreadable ({exc})") from None
        if not isinstance(cfg, dict):
            raise ToonFaceError(f"{self.config_file}: not a JSON object")
        return cfg

    def kind(self) -> str | None:
        """"pretrain" or "train" as recorded in config.json, None for an unreadable one."""
        try:
            cfg = self.read_config()
        except ToonFaceError:
            return None
        return cfg.get("kind") if cfg else None

    def write_heldout(self, paths: list[Path]) -> None:
        """heldout.txt: one resolved path per line; a path that holds a line break (or starts
        with a quote or a blank) is written as a JSON string, so any file name round-trips."""
        _write_paths(self.heldout_file, paths)

    def read_heldout(self) -> list[Path] | None:
        """The held-out photos (see :meth:`write_heldout`), None without a heldout.txt."""
        return _read_paths(self.heldout_file)

    def write_photos(self, paths: list[Path]) -> None:
        """photos.txt: every photo of the run's photo folder when it started (held-out ones
        too), in heldout.txt's format; what a resumed run compares the folder with."""
        _write_paths(self.photos_file, paths)

    def read_photos(self) -> list[Path] | None:
        """The photos the run started with (see :meth:`write_photos`), None without a record."""
        return _read_paths(self.photos_file)

    def steps(self, folder: str = "generator") -> list[tuple[int, Path]]:
        """(step, path) of the ``step_XXXXXX.pt`` files in ``ckpt`` or ``generator``, oldest first."""
        where = self.path / folder
        if not where.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in where.iterdir() if (m := STEP_FILE.match(p.name))]
        return sorted(found)

    def rotate_checkpoints(self, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` full-state step checkpoints; returns the deleted."""
        doomed = [p for _, p in self.steps("ckpt")[:-keep]] if keep > 0 else []
        for p in doomed:
            p.unlink(missing_ok=True)
        return doomed

    # Generator files inside a run folder, in order of preference. The last two are the
    # seed's names; they are still found.
    def generator_candidates(self) -> list[Path]:
        return [self.latest_generator, self.latest_checkpoint, self.path / "G_latest.pt",
                self.path / "pretrain" / "G_final.pt"]

    def find_generator(self, step: int | None = None) -> Path:
        """The generator of ``step`` (generator/step_XXXXXX.pt), or the newest one there is.

        Raises ToonFaceError naming what it looked for.
        """
        if step is not None:
            path = self.generator(step)
            if not path.is_file():
                have = ", ".join(str(s) for s, _ in self.steps()) or "none"
                raise ToonFaceError(f"no generator for step {step} of run '{self.name}': looked "
                                    f"for {path}; steps there: {have}")
            return path
        for c in self.generator_candidates():
            if c.is_file():
                return c
        looked = ", ".join(str(c.relative_to(self.path)) for c in self.generator_candidates())
        raise ToonFaceError(f"run '{self.name}' ({self.path}) has no generator yet: looked for {looked}")

    def mkdirs(self) -> None:
        for d in (self.ckpt_dir, self.generator_dir, self.samples_dir):
            d.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------------- finding runs
    @staticmethod
    def runs_in(checkpoints_dir: str | os.PathLike) -> Iterator["RunDir"]:
        """Every run folder directly under ``checkpoints_dir`` (folders with a config.json)."""
        root = Path(checkpoints_dir)
        if not root.is_dir():
            return
        for cfg in sorted(root.glob("*/config.json")):
            yield RunDir(cfg.parent)

    @staticmethod
    def containing(path: str | os.PathLike) -> "RunDir | None":
        """The run a file belongs to (``<run>/generator/x.pt``, ``<run>/ckpt/x.pt``) or that a
        folder is, or None."""
        p = Path(path)
        for cand in ((p,) if p.is_dir() else (p.parent.parent, p.parent)):
            if RunDir(cand).is_run():
                return RunDir(cand)
        return None


def _write_paths(file: Path, paths: list[Path]) -> None:
    def line(p: Path) -> str:
        s = str(Path(p).resolve())
        plain = s == s.strip() and not s.startswith('"') and not any(c in s for c in "\r\n")
        return (s if plain else json.dumps(s)) + "\n"

    atomic_write_text(file, "".join(line(p) for p in paths))


def _read_paths(file: Path) -> list[Path] | None:
    if not file.is_file():
        return None
    out = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.startswith('"'):
            out.append(Path(json.loads(line)))
        elif line.strip():
            out.append(Path(line.strip()))
    return out


def resolve_generator(path: str | os.PathLike) -> Path:
    """A generator / training checkpoint file as given, or the newest generator inside a run
    folder (:meth:`RunDir.find_generator`). ToonFaceError when there is neither."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        return RunDir(p).find_generator()
    raise ToonFaceError(f"checkpoint not found: {p} (a generator .pt file or a run folder)")
