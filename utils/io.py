"""Atomic writes: a temporary file in the same folder, fsync, then os.replace.

A process killed in the middle of a write leaves the previous file intact, never a
truncated one. Temporary files are named ``.<name>.<random>.tmp`` (:data:`TMP_SUFFIX`), so
leftovers of a killed process can be recognised and removed.

A write the system refuses (disk full, no permission, read-only file system) raises
:class:`WriteError`: one line naming the file and the system's reason, the previous file
intact and no temporary file left. :func:`check_writable` asks before any work is done.
"""
from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from utils.errors import ToonFaceError

TMP_SUFFIX = ".tmp"


class WriteError(ToonFaceError, OSError):
    """A file could not be written: ``cannot write <file>: <reason>`` (exit code 2 in the CLIs).

    Still an ``OSError`` (``errno``, ``strerror``, ``filename``), so code that handles OSError
    around a write keeps working.
    """

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def write_error(path: str | os.PathLike, exc: OSError) -> WriteError:
    """The :class:`WriteError` of ``exc`` raised while writing ``path``."""
    if isinstance(exc, WriteError):
        return exc
    return WriteError(exc.errno, exc.strerror or str(exc) or type(exc).__name__, str(path))


def marked_read_only(folder: str | os.PathLike) -> bool:
    """True when ``folder`` has no write permission bit at all: read-only by intent (honoured
    even by root, who may write anywhere)."""
    try:
        return not (Path(folder).stat().st_mode & 0o222)
    except OSError:
        return False


def check_writable(path: str | os.PathLike, what: str, folder: bool = False) -> None:
    """Raise ToonFaceError (one line, ``<what> <path>: ...``) unless a file (or, with
    ``folder``, files inside a folder) can be written at ``path``; creates nothing.

    Checks: the path is not a folder (a file expected) or a file (a folder expected), its
    nearest existing folder is a folder, not marked read-only (no write bit), and takes a probe
    file (created and removed at once, so the system's own answer is heard).
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise ToonFaceError(f"{what} {path}: is a file, not a folder")
    if not folder and path.is_dir():
        raise ToonFaceError(f"{what} {path}: is a folder, not a file")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ToonFaceError(f"{what} {path}: {existing} is not a folder")
    if marked_read_only(existing):
        raise ToonFaceError(f"{what} {path}: cannot write in {existing} (it is read-only: no write "
                            "permission)")
    probe = existing / f".toonface-probe.{secrets.token_hex(4)}{TMP_SUFFIX}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as exc:
        raise ToonFaceError(f"{what} {path}: cannot write in {existing} "
                            f"({exc.strerror or type(exc).__name__})") from None


def make_folder(path: str | os.PathLike, what: str) -> Path:
    """``mkdir -p path``; a refusal is one ToonFaceError line with the system's reason."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToonFaceError(f"{what} {path}: cannot create it ({exc.strerror or type(exc).__name__})") from None
    return path


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` (hidden, unique, ends in .tmp)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-folder temp file + rename)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0o666 through the process umask, as open() gives any new file: no chmod, no umask read.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | os.PathLike, writer: Callable[[io.BufferedIOBase], Any]) -> None:
    """Atomically write whatever ``writer(fileobj)`` writes, e.g. ``lambda f: torch.save(obj, f)``."""
    buf = io.BytesIO()
    writer(buf)
    atomic_write_bytes(path, buf.getvalue())


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (a log); a refused write raises :class:`WriteError`."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise write_error(path, exc) from None
