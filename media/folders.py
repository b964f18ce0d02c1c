"""Listing the picture files of a folder and checking them in one pass."""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from media.decode import decode_image
from media.errors import UnreadableImage
from utils.errors import ToonFaceError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension, any case), sorted; hidden files and folders
    (names starting with '.') are skipped.

    Broken and looping symbolic links with an image name are listed (the decode check reports
    them, :func:`media.errors.os_reason`). Subfolders that cannot be read and symbolic links to folders (not
    followed: a link may lead back up the tree) are left out with one warning naming them.
    Raises ToonFaceError (one line, the system's reason) when ``folder`` itself cannot be read.
    """
    root = Path(folder)
    out: list[Path] = []
    left_out: list[str] = []

    def unreadable(exc: OSError) -> None:
        if Path(exc.filename) == root:
            raise ToonFaceError(f"{root}: cannot read this folder ({exc.strerror or type(exc).__name__})")
        left_out.append(f"{Path(exc.filename).relative_to(root)} ({exc.strerror or type(exc).__name__})")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        linked = [d for d in dirnames if not d.startswith(".") and os.path.islink(os.path.join(dirpath, d))]
        left_out += [f"{(Path(dirpath) / d).relative_to(root)} (a symbolic link to a folder: not "
                     "followed)" for d in linked] if recursive else []
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in linked] if recursive else []
        out += [Path(dirpath) / f for f in filenames
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    if left_out:
        logging.getLogger(__name__).warning("%s: left out %d subfolder(s): %s", root, len(left_out),
                                            "; ".join(left_out))
    return sorted(out)


def _check(path: Path) -> tuple[str | None, str | None]:
    """(why it cannot be read, or None; a note for a readable file, or None)."""
    try:
        img = decode_image(path)
    except UnreadableImage as exc:
        return str(exc), None
    notes = list(img.notes)
    if img.frames > 1:
        notes.append(f"holds {img.frames} pictures; the first is used")
    return None, "; ".join(notes) or None


def scan_images(paths: list[Path], workers: int = 4
                ) -> tuple[list[Path], list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Decode every file once; returns (good paths, [(bad path, reason)], [(good path, note)]),
    order kept. Notes: files read with a remark (several pictures, an unusable colour profile).

    Threads suffice: PIL releases the GIL while decoding (and the pixel limit is per thread).
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(_check, paths, chunksize=16))
    good = [p for p, (r, _) in zip(paths, results) if r is None]
    bad = [(p, r) for p, (r, _) in zip(paths, results) if r is not None]
    notes = [(p, n) for p, (r, n) in zip(paths, results) if r is None and n]
    return good, bad, notes
