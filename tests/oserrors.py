"""Simulated operating-system refusals for tests that must also pass as root.

Root reads any folder whatever its permission bits, and a real full disk needs a small mounted
file system (a 64 KiB tmpfs does it, ``mount -t tmpfs -o size=64k tmpfs DIR``, but only root
may mount one). So the tests make the system calls refuse instead:

- :func:`deny_reading`: ``os.scandir`` of a folder and ``os.stat`` of anything inside it raise
  ``PermissionError`` (EACCES), as for a folder without read and search permission;
- :func:`disk_full`: ``os.fsync`` in utils/io.py raises ENOSPC for the files chosen, which is
  where a full disk shows up for file systems with delayed allocation (ext4, xfs, tmpfs
  report it at write(); the atomic writer handles both the same way).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable


def _inside(path, folder: Path) -> bool:
    if not isinstance(path, (str, bytes, os.PathLike)) or isinstance(path, bytes):
        return False
    p = Path(os.path.abspath(os.fspath(path)))
    return folder in p.parents


def deny_reading(monkeypatch, folder: str | os.PathLike) -> None:
    """``folder`` behaves as mode 000 for this process: it cannot be listed, nothing inside it
    can be reached (its own stat still works, as the parent's permissions allow it)."""
    folder = Path(os.path.abspath(folder))
    real_scandir, real_stat = os.scandir, os.stat

    def scandir(path="."):
        if Path(os.path.abspath(os.fspath(path))) == folder or _inside(path, folder):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    def stat(path, *args, **kwargs):
        if _inside(path, folder):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat)


def disk_full(monkeypatch, when: Callable[[str], bool] = lambda path: True) -> None:
    """Writes through utils.io (atomic writes) fail with ENOSPC where ``when(path)`` is true;
    ``path`` is the temporary file being written (``.<name>.<hex>.tmp`` beside the target)."""
    from utils import io as uio

    real_fsync = os.fsync

    def fsync(fd):
        if when(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(uio.os, "fsync", fsync)
