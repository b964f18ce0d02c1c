"""The service's own temporary folder, and the removal of the ones a killed service left.

Every service makes ``<tmp-dir>/toonface-serve-XXXXXXXX/`` at start (uploads, video jobs and
their ``.partial.mp4`` outputs live there) and removes it at shutdown. A service killed with
SIGKILL, or by the out-of-memory killer, cannot remove it, and nothing else would: each start
would leave one more folder of uploads and half-written videos.

So a service holds an exclusive ``flock`` on a file inside its folder for as long as it runs
(the kernel drops the lock when the process dies, however it dies), and at start it removes
every sibling folder whose lock it can take: their owner is gone. A folder without a lock file
is left alone: a service still between ``mkdtemp`` and its lock, or one of an older version.
The lock file is locked under a temporary name and only then renamed into place, so no other
service can ever take the lock of a live folder.

Where ``fcntl`` is missing (Windows) nothing is locked and nothing is removed.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from utils.io import make_folder

log = logging.getLogger("toonface.serve")

PREFIX = "toonface-serve-"
LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None where another process holds it (or
    the file cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale(parent: Path) -> list[Path]:
    """Remove the service folders in ``parent`` whose service is gone; returns them."""
    if fcntl is None:
        return []
    removed = []
    try:
        candidates = sorted(parent.glob(f"{PREFIX}*"))
    except OSError:
        return []
    for folder in candidates:
        lock = folder / LOCK_NAME
        if folder.is_symlink() or not folder.is_dir() or not lock.is_file():
            continue
        fd = _try_lock(lock)
        if fd is None:
            continue  # a live service holds it
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)
        if not folder.exists():
            removed.append(folder)
    return removed


class ServiceFolder:
    """This service's temporary folder under ``parent`` (None: the system's), locked while it
    lives; stale siblings are removed first (see the module notes). ``path`` is the folder;
    :meth:`close` removes it."""

    def __init__(self, parent: str | os.PathLike | None = None):
        base = make_folder(parent, "--tmp-dir") if parent is not None else Path(tempfile.gettempdir())
        stale = remove_stale(base)
        if stale:
            log.info("removed %d temporary folder(s) left by a service that was killed: %s",
                     len(stale), ", ".join(p.name for p in stale))
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
        self._fd = None
        if fcntl is not None:
            pending = self.path / f"{LOCK_NAME}.{os.getpid()}"
            self._fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(pending, self.path / LOCK_NAME)  # locked before anyone can see it

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
