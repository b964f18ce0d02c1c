"""Atomic writes: a temporary file in the same folder, fsync, then os.replace.

A process killed in the middle of a write leaves the previous file intact, never a
truncated one. Temporary files are named ``.<name>.<random>.tmp`` (:data:`TMP_SUFFIX`), so
leftovers of a killed process can be recognised and removed.
"""
from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import Any, Callable

TMP_SUFFIX = ".tmp"


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` (hidden, unique, ends in .tmp)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-folder temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    # 0o666 through the process umask, as open() gives any new file: no chmod, no umask read.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | os.PathLike, writer: Callable[[io.BufferedIOBase], Any]) -> None:
    """Atomically write whatever ``writer(fileobj)`` writes, e.g. ``lambda f: torch.save(obj, f)``."""
    buf = io.BytesIO()
    writer(buf)
    atomic_write_bytes(path, buf.getvalue())
