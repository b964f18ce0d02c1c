"""The on-disk landmark cache: detect each photo once, read it in every later run.

One ``.npz`` file per (photo folder, detector). Where:

- ``--cache-file`` / ``cache_file=`` when given (checked writable before any detection);
- else ``<photo_dir>/.toonface_landmarks.<detector>.npz`` when the folder is writable *and*
  has a write bit (a folder marked read-only, such as the shared fixtures, stays untouched even
  for root, for whom ``os.access`` always says yes);
- else the user cache folder: ``$XDG_CACHE_HOME/toonface/landmarks/<sha1 of the absolute
  folder>.<detector>.npz`` (``~/.cache`` without XDG_CACHE_HOME).

The file records the detector's key (``DetectorSpec.key``: the detector name, and for
mediapipe-tasks the model file's SHA-256), so the points of two detectors never mix: a file
written by another detector is not used but rebuilt, and one log line says so. Entries are
keyed by the path relative to the folder (POSIX separators) and validated against the file's
size and mtime_ns at every lookup: a changed file is a miss and is detected again. "No face"
and "unreadable" are cached too, so they are not retried until the file changes. A truncated,
corrupt or foreign cache file is ignored (and rebuilt), never trusted. Writes are atomic.

Datasets read the cache (``lookup``) and never detect: detection happens in ``fill``, in the
prepare step or in the trainer's main process before any DataLoader worker exists (see
faces/landmark_detectors.py for why).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from types import MappingProxyType
from typing import Sequence

import numpy as np

from media.decode import read_image_rgb
from media.folders import list_images
from faces.landmark_detectors import DetectorSpec, resolve_detector
from utils.errors import ToonFaceError
from utils.io import atomic_write_bytes, temporary_path

log = logging.getLogger(__name__)

CACHE_FILE_STEM = ".toonface_landmarks"
CACHE_FORMAT_VERSION = 2   # 2: the file records its detector and point count


class _Missing:
    """Sentinel: no valid cache entry (never detected, or the file changed since)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self):
        return "MISSING"


MISSING = _Missing()

FOUND, NO_FACE, UNREADABLE = 0, 1, 2
_STATUS_NAMES = MappingProxyType({FOUND: "found", NO_FACE: "no_face", UNREADABLE: "unreadable"})


def marked_read_only(folder: str | os.PathLike) -> bool:
    """True when ``folder`` has no write permission bit at all: read-only by intent."""
    try:
        return not (Path(folder).stat().st_mode & 0o222)
    except OSError:
        return False


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/toonface`` (``~/.cache/toonface`` without XDG_CACHE_HOME)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toonface"


def _detector_name(detector: str | DetectorSpec) -> str:
    return detector.name if isinstance(detector, DetectorSpec) else str(detector)


def user_cache_file(photo_dir: str | os.PathLike, detector: str | DetectorSpec) -> Path:
    """The cache file of ``photo_dir`` in the user cache folder (for data that is not ours)."""
    digest = hashlib.sha1(str(Path(photo_dir).resolve()).encode("utf-8")).hexdigest()
    return user_cache_dir() / "landmarks" / f"{digest}.{_detector_name(detector)}.npz"


def default_cache_file(photo_dir: str | os.PathLike, detector: str | DetectorSpec) -> Path:
    """``<photo_dir>/.toonface_landmarks.<detector>.npz`` if the folder is writable and not
    marked read-only, else :func:`user_cache_file`."""
    root = Path(photo_dir).resolve()
    if root.is_dir() and os.access(root, os.W_OK) and not marked_read_only(root):
        return root / f"{CACHE_FILE_STEM}.{_detector_name(detector)}.npz"
    return user_cache_file(root, detector)


def check_writable(path: str | os.PathLike) -> None:
    """Make sure a file can be (atomically) written at ``path``, before any work is done.

    Creates the missing parent folders and a probe file beside ``path`` (removed at once).
    Raises ToonFaceError (one line) when ``path`` is a folder, a parent is a file, the nearest
    existing folder is marked read-only, or the folder refuses the write.
    """
    path = Path(path)
    advice = "(choose another place with --cache-file)"
    if path.is_dir():
        raise ToonFaceError(f"cannot write the landmark cache {path}: it is a folder {advice}")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ToonFaceError(f"cannot write the landmark cache {path}: {existing} is not a folder {advice}")
    if marked_read_only(existing):
        raise ToonFaceError(f"cannot write the landmark cache {path}: {existing} is marked "
                            f"read-only {advice}")
    probe = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as e:
        raise ToonFaceError(f"cannot write the landmark cache {path}: {e.strerror or e} {advice}") from None


class LandmarkCache:
    """Landmarks of every image of one photo folder, by one detector, in one ``.npz`` file.

    photo_dir: the folder; cache_file: where the cache lives (default
    :func:`default_cache_file`); detector: a name, a :class:`DetectorSpec`, or None for the
    default detector (see ``resolve_detector``).

    Datasets: ``cache = LandmarkCache(root).load()`` then ``cache.lookup(relpath)`` -> points
    ``(N, 2)`` float32 (N = 468 or 68, the detector's topology), ``None`` (no face /
    unreadable) or ``MISSING`` (not cached or stale: run prepare.py).
    The prepare step: ``cache.load(); cache.fill()`` (detects what is missing, then saves).
    After ``load``: ``load_error`` says why an unreadable file was discarded,
    ``other_detector`` names the detector of a file that was discarded for being another's.
    """

    def __init__(self, photo_dir: str | os.PathLike, cache_file: str | os.PathLike | None = None,
                 detector: str | DetectorSpec | None = None):
        # Absolute from the start: keys and reads must not depend on how the folder was spelled
        # (a relative folder used to turn every listed path into a doubled one, photos/photos/...)
        self.photo_dir = Path(os.path.abspath(photo_dir))
        self.detector = resolve_detector(detector)
        self.cache_file = (Path(cache_file) if cache_file is not None
                           else default_cache_file(photo_dir, self.detector))
        # relpath -> (size, mtime_ns, status, points (N, 2) float32 or None)
        self._entries: dict[str, tuple[int, int, int, np.ndarray | None]] = {}
        self.load_error: str | None = None      # why an existing cache file was unreadable
        self.other_detector: str | None = None  # key of the detector of a discarded file
        self._dirty = False

    @property
    def num_points(self) -> int:
        return self.detector.topology.num_points

    def __len__(self) -> int:
        return len(self._entries)

    # -- keys ----------------------------------------------------------------------------
    def relpath(self, path: str | os.PathLike) -> str:
        """Key of ``path``: relative to the photo folder, POSIX separators.

        ``path`` is absolute, a key (relative to the folder: ``"sub/b.png"``), or relative to
        the current directory as :func:`list_images` gives it for a relatively named folder
        (``"../photos/sub/b.png"``). A relative path is read from the current directory when it
        climbs (``..``, which no key holds) or names no file inside the folder but lies inside it
        seen from the current directory.
        """
        p = Path(path)
        if not p.is_absolute() and (".." in p.parts or not (self.photo_dir / p).is_file()):
            here = Path(os.path.abspath(p))
            try:
                here.relative_to(self.photo_dir)
            except ValueError:
                pass
            else:
                p = here
        if p.is_absolute():
            rel = os.path.relpath(p, self.photo_dir)
            if rel.startswith(".."):               # e.g. one side reached through a symlink
                rel = os.path.relpath(p.resolve(), self.photo_dir.resolve())
            p = Path(rel)
        return p.as_posix()

    def _stat(self, rel: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.photo_dir / rel)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    # -- reading -------------------------------------------------------------------------
    def status(self, path: str | os.PathLike) -> str:
        """'found' | 'no_face' | 'unreadable' | 'missing' (not cached, stale or file gone)."""
        rel = self.relpath(path)
        entry = self._entries.get(rel)
        if entry is None or self._stat(rel) != entry[:2]:
            return "missing"
        return _STATUS_NAMES[entry[2]]

    def lookup(self, path: str | os.PathLike):
        """Points ``(N, 2)`` float32 (a copy), ``None`` (no face or unreadable) or ``MISSING``."""
        rel = self.relpath(path)
        entry = self._entries.get(rel)
        if entry is None or self._stat(rel) != entry[:2]:
            return MISSING
        return None if entry[3] is None else entry[3].copy()

    # -- persistence ---------------------------------------------------------------------
    def load(self) -> "LandmarkCache":
        """Read the cache file if there is one; a corrupt or foreign file, or one written by
        another detector, is ignored (and rebuilt by ``fill``) with one log line."""
        self._entries = {}
        self.load_error = self.other_detector = None
        if not self.cache_file.exists():
            return self
        try:
            with np.load(self.cache_file, allow_pickle=False) as z:
                version = int(z["format_version"])
                if version != CACHE_FORMAT_VERSION:
                    raise ValueError(f"format version {version}, expected {CACHE_FORMAT_VERSION}")
                stored = str(z["detector"])
                if stored != self.detector.key:
                    self.other_detector = stored
                    log.info("landmark cache %s was built with the %s detector; rebuilding it "
                                "with %s", self.cache_file, stored, self.detector.key)
                    self._dirty = True
                    return self
                paths, sizes, mtimes = z["paths"], z["sizes"], z["mtimes"]
                status, points = z["status"], z["points"]
            n = len(paths)
            if not (len(sizes) == len(mtimes) == len(status) == len(points) == n) or \
                    points.shape[1:] != (self.num_points, 2):
                raise ValueError("inconsistent array shapes")
            entries = {}
            for i in range(n):
                st = int(status[i])
                if st not in _STATUS_NAMES:
                    raise ValueError(f"bad status {st}")
                pts = None
                if st == FOUND:
                    pts = np.asarray(points[i], dtype=np.float32)
                    if not np.isfinite(pts).all():
                        raise ValueError("non-finite landmarks")
                entries[str(paths[i])] = (int(sizes[i]), int(mtimes[i]), st, pts)
        except Exception as e:  # truncated zip, bad arrays, anything: rebuild, never trust
            self.load_error = f"{type(e).__name__}: {e}"
            log.info("landmark cache %s is unreadable (%s); it will be rebuilt",
                        self.cache_file, self.load_error)
            self._dirty = True
            return self
        self._entries = entries
        self._dirty = False
        return self

    def save(self) -> None:
        """Write the cache file atomically. Raises ToonFaceError (one line) if it cannot."""
        keys = sorted(self._entries)
        n = len(keys)
        points = np.full((n, self.num_points, 2), np.nan, dtype=np.float32)
        for i, k in enumerate(keys):
            if self._entries[k][3] is not None:
                points[i] = self._entries[k][3]
        buf = io.BytesIO()
        np.savez(buf,
                 format_version=np.int64(CACHE_FORMAT_VERSION),
                 detector=np.str_(self.detector.key),
                 topology=np.str_(self.detector.topology.name),
                 paths=np.array(keys, dtype=np.str_) if n else np.zeros(0, dtype="<U1"),
                 sizes=np.array([self._entries[k][0] for k in keys], dtype=np.int64),
                 mtimes=np.array([self._entries[k][1] for k in keys], dtype=np.int64),
                 status=np.array([self._entries[k][2] for k in keys], dtype=np.int8),
                 points=points)
        try:
            atomic_write_bytes(self.cache_file, buf.getvalue())
        except OSError as e:
            raise ToonFaceError(f"cannot write the landmark cache {self.cache_file}: {e} "
                                "(choose another place with --cache-file)") from e
        self._dirty = False

    # -- filling (the prepare step; never inside DataLoader workers) ---------------------
    def fill(self, detector=None, paths: Sequence[str | os.PathLike] | None = None,
             progress: bool = True, recursive: bool = True, save_every: int = 2000) -> dict:
        """Detect landmarks of every image that has no valid entry, then save.

        The cache file is checked writable first, so a bad place fails before any detection.
        detector: anything with ``detect(rgb) -> (N, 2) | None`` giving this cache's point
            count; default: ``self.detector.build()``, built only if something needs
            detecting, closed afterwards.
        paths: images to cover (absolute or relative to the folder); default: every image of
            the folder (``list_images``). Entries of files that no longer exist are dropped.
        Returns ``{"total", "found", "not_found", "unreadable": [relpaths], "cached",
        "detected"}``: found / not_found / unreadable count every image covered; ``cached``
        of them came from the cache and ``detected`` were (re)computed now.
        Raises ToonFaceError for a missing photo folder or an unwritable cache file.
        """
        if not self.photo_dir.is_dir():
            raise ToonFaceError(f"photo folder not found: {self.photo_dir}")
        check_writable(self.cache_file)
        if paths is None:
            paths = list_images(self.photo_dir, recursive=recursive)
        rels = [self.relpath(p) for p in paths]
        gone = [rel for rel in self._entries if self._stat(rel) is None]
        for rel in gone:                           # files deleted since they were cached
            del self._entries[rel]
        self._dirty |= bool(gone)

        summary = {"total": len(rels), "found": 0, "not_found": 0, "unreadable": [],
                   "cached": 0, "detected": 0}
        own_detector = detector is None
        since_save = 0
        try:
            it = rels
            if progress:
                from tqdm import tqdm
                it = tqdm(rels, desc=f"landmarks ({self.detector.name})", unit="img",
                          dynamic_ncols=True)
            for rel in it:
                key = self._stat(rel)
                entry = self._entries.get(rel)
                if entry is not None and key is not None and key == entry[:2]:
                    summary["cached"] += 1
                    st = entry[2]
                else:
                    if detector is None:
                        detector = self.detector.build()
                    st = self._detect_one(rel, key, detector)
                    summary["detected"] += 1
                    since_save += 1
                    if since_save >= save_every:   # a crash loses at most save_every images
                        self.save()
                        since_save = 0
                if st == FOUND:
                    summary["found"] += 1
                elif st == NO_FACE:
                    summary["not_found"] += 1
                else:
                    summary["unreadable"].append(rel)
        finally:
            if own_detector and detector is not None:
                detector.close()
        if self._dirty or not self.cache_file.exists():
            self.save()
        return summary

    def _detect_one(self, rel: str, key: tuple[int, int] | None, detector) -> int:
        self._dirty = True
        try:
            rgb = read_image_rgb(self.photo_dir / rel)
        except OSError as e:
            log.info("unreadable image %s", e)
            if key is not None:                    # a vanished file is simply not cached
                self._entries[rel] = (key[0], key[1], UNREADABLE, None)
            return UNREADABLE
        pts = detector.detect(rgb)
        if pts is None:
            entry = (key[0], key[1], NO_FACE, None)
        else:
            pts = np.asarray(pts, dtype=np.float32)
            if pts.shape != (self.num_points, 2):
                raise ValueError(f"detector returned shape {pts.shape}, expected "
                                 f"({self.num_points}, 2) for {self.detector.key}")
            entry = (key[0], key[1], FOUND, pts.copy())
        self._entries[rel] = entry
        return entry[2]
