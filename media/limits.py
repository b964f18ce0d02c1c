"""Limits checked before a pixel is decoded: file size, pixels, JPEG scans, and the defaults
of the command line and the service.

Within a decode our pixel limit replaces Pillow's decompression-bomb check: :func:`pixel_limit`
wraps ``PIL.Image._decompression_bomb_check`` once (the one place the project touches a private
Pillow hook), scoped to the calling thread's context, so a larger ``max_pixels`` really lifts it
and an oversize image is reported as such (:class:`~media.errors.ImageTooLarge`), not as corrupt.
"""
from __future__ import annotations

import contextlib
import contextvars
import re
import threading
from pathlib import Path
from typing import Iterator

from PIL import Image

from media.errors import ImageTooLarge, UnreadableImage, os_reason

# The seed's limits of cartoonize.py and the service; --max-pixels / --max-bytes raise them.
DEFAULT_MAX_PIXELS = 3000 * 3000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Frames x canvas pixels of an animation (--max-animation-pixels): decoding composes every frame
# on the whole canvas, so a 29 KB APNG of 300 one-pixel frames on 1500x1500 asks for 675 M.
# 100 M is about 11 frames of 3000x3000, 400 of 500x500, 48 of 1920x1080.
DEFAULT_MAX_ANIMATION_PIXELS = 100_000_000
# Scans a JPEG may have before it is refused undecoded (:func:`jpeg_scans_over`). Encoders write
# 1 (baseline) to about 10 (libjpeg's progression), jpegtran scripts a few dozen; 100 is the
# bound LibreOffice and others took from libjpeg-turbo's report on the issue (LJT-01-003).
MAX_JPEG_SCANS = 100


class OverPixelLimit(Image.DecompressionBombError):
    """Raised inside Pillow by our scoped check; Pillow lets DecompressionBombError through."""

    def __init__(self, size: tuple[int, int]):
        super().__init__(f"{size[0]}x{size[1]}")
        self.size = size


# The pixel limit of the decode running in this context (None: no decode of ours is running,
# Pillow's own check applies). A ContextVar is per thread, so the folder scan's pool threads and
# any other code in the process each see their own value.
_PIXEL_LIMIT: contextvars.ContextVar[tuple[int | None] | None] = contextvars.ContextVar(
    "toonface_pixel_limit", default=None)
_HOOK_LOCK = threading.Lock()


def _install_scoped_bomb_check() -> None:
    """Wrap ``PIL.Image._decompression_bomb_check`` once so that, inside :func:`pixel_limit`,
    our limit replaces Pillow's (at every place Pillow checks: open, GIF frames, TIFF tiles, crop).

    Outside our decodes the wrapper calls Pillow's own check unchanged, so no other code in the
    process sees a different limit; ``Image.MAX_IMAGE_PIXELS`` is never written (setting it would
    leak into every thread for the duration of a decode).
    """
    with _HOOK_LOCK:
        original = Image._decompression_bomb_check
        if getattr(original, "_toonface_scoped", False):
            return

        def scoped_check(size, *args, **kwargs):
            scope = _PIXEL_LIMIT.get()
            if scope is None:
                return original(size, *args, **kwargs)
            limit = scope[0]
            if limit is not None and max(1, size[0]) * max(1, size[1]) > limit:
                raise OverPixelLimit((int(size[0]), int(size[1])))
            return None

        scoped_check._toonface_scoped = True  # type: ignore[attr-defined]
        Image._decompression_bomb_check = scoped_check


@contextlib.contextmanager
def pixel_limit(limit: int | None) -> Iterator[None]:
    _install_scoped_bomb_check()
    token = _PIXEL_LIMIT.set((limit,))
    try:
        yield
    finally:
        _PIXEL_LIMIT.reset(token)


def check_bytes(path: Path, max_bytes: int | None) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        reason = os_reason(path, exc)
        raise UnreadableImage(reason if "symbolic link" in reason else f"cannot read ({reason})") from None
    if size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise ImageTooLarge("bytes", size, max_bytes)


def check_pixels(size: tuple[int, int], limit: int | None, default_limit: bool) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise UnreadableImage(f"zero-size image ({w}x{h})")
    if limit is not None and w * h > limit:
        raise ImageTooLarge("pixels", w * h, limit, (w, h), default_limit)


# ------------------------------------------------------------------------------ JPEG scans
# A marker as a decoder finds it: 0xFF, any fill 0xFFs, then a code that is neither a stuffed
# zero nor a restart marker (those two occur inside entropy-coded data).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")


def jpeg_scans_over(data: bytes, limit: int) -> bool:
    """True when the first image of JPEG data has more than ``limit`` scans (SOS segments).

    The segments are walked as libjpeg reads them: each marker's length is skipped, a scan's
    entropy-coded data is skipped up to the next marker, bytes between segments are skipped
    to the next marker, and the walk stops at EOI (an MPO's further pictures are not read).
    Cost: one pass over the bytes; when the file does not even hold ``limit`` + 1 SOS byte pairs
    anywhere, none at all. Why: every progressive scan is another pass over the whole image's
    coefficients (EOB runs let one cover the image in a few bytes), so a 500 KB file of 20,000
    scans keeps a decoder busy for minutes; libjpeg-turbo's answer is a scan limit
    (``TJPARAM_SCANLIMIT``, ``djpeg -maxscans``), which Pillow does not expose.
    """
    if data.count(b"\xff\xda") <= limit:
        return False
    scans, i, n = 0, 2, len(data)
    while True:
        m = _JPEG_MARKER.search(data, i)
        if m is None or m.end() + 2 > n:
            return False
        code, i = data[m.end() - 1], m.end()
        if code == 0xD9:                                 # EOI
            return False
        if code in (0x01, 0xD8):                         # TEM, SOI: no length
            continue
        if code == 0xDA:
            scans += 1
            if scans > limit:
                return True
        i += int.from_bytes(data[i:i + 2], "big")
