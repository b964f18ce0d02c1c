"""What goes wrong with a picture file: the decoder's errors and the system's reasons.

Every problem of :mod:`media.decode` raises :class:`UnreadableImage` (never a PIL, cv2 or
LittleCMS error) with a short reason, so folder scans can skip and report files.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path


class UnreadableImage(OSError):
    """The file is not a decodable image; the message says why in a few words."""


class ImageTooLarge(UnreadableImage):
    """A valid image over a limit, refused before its pixels are decoded.

    ``what`` names the limit: "bytes" (the file), "pixels" (one picture, width x height),
    "side" (the longer side of a picture), "frames" (an animation's frame count),
    "animation-pixels" (frames x canvas pixels: what decoding the animation costs) or "scans"
    (a JPEG's scans). ``count`` and ``limit`` are in that unit; ``size`` is (width, height) of
    the picture or canvas; ``frames`` the frame count for "animation-pixels";
    ``default_limit`` is True when the pixel limit is Pillow's ``MAX_IMAGE_PIXELS`` (no limit
    was given).
    """

    def __init__(self, what: str, count: int, limit: int, size: tuple[int, int] | None = None,
                 default_limit: bool = False, frames: int | None = None):
        self.what, self.count, self.limit, self.size = what, count, limit, size
        self.default_limit, self.frames = default_limit, frames
        w, h = size or (count, 1)
        if what == "pixels":
            source = " (PIL.Image.MAX_IMAGE_PIXELS)" if default_limit else ""
            msg = f"image is {w}x{h} = {count:,} pixels, over the limit of {limit:,} pixels{source}"
        elif what == "side":
            msg = f"image is {w}x{h}, over the limit of {limit:,} px per side"
        elif what == "frames":
            msg = f"animation has {count:,} frames, over the limit of {limit:,} frames"
        elif what == "animation-pixels":
            msg = (f"animation is {frames:,} frames of {w}x{h} = {count:,} pixels to decode, over "
                   f"the limit of {limit:,} (frames x canvas pixels)")
        elif what == "scans":
            msg = (f"JPEG has over {limit:,} scans (each scan is another pass over the whole "
                   "image; real photos have at most a few dozen)")
        else:
            msg = f"file is {count / 2**20:.1f} MB, over the limit of {limit / 2**20:.1f} MB"
        super().__init__(msg)


class MultiFrameImage(UnreadableImage):
    """A file of several pictures that are not an animation (e.g. a multi-page TIFF)."""


def os_reason(path: str | os.PathLike, exc: OSError) -> str:
    """The system's reason a file cannot be read, with what a symbolic link adds: "broken
    symbolic link to x (no such file)", "symbolic link loop"."""
    path = Path(path)
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"broken symbolic link to {os.readlink(path)} (no such file)"
    return exc.strerror or type(exc).__name__


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
