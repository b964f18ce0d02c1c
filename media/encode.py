"""Encoding pictures: sRGB-tagged PNG, animated PNG (frame by frame) and JPEG, written atomically.

Every RGB output carries LittleCMS's built-in sRGB profile (iCCP / ICC); gray outputs, where PNG
allows only a gray profile, carry the sRGB chunk (JPEG gray: none). Gray is written as L/LA,
alpha ((H, W) uint8, straight) is kept. Animations become APNG with every frame, the frame times
and the loop count kept (:class:`ApngWriter`: memory holds two frames, whatever the count).
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from utils.io import atomic_write_bytes, temporary_path, write_error

# JPEG answers of the service: quality 92 with 4:2:0 keeps flat cartoon areas free of blocks at
# about a third of the PNG's size.
JPEG_QUALITY = 92


def srgb_profile() -> bytes:
    """The ICC profile written into RGB outputs: LittleCMS's built-in sRGB (IEC 61966-2-1)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _output_image(rgb: np.ndarray, alpha: np.ndarray | None, gray: bool):
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if gray:
        im = im.convert("L")
    if alpha is not None:
        im.putalpha(Image.fromarray(np.ascontiguousarray(alpha), "L"))
    return im


def _srgb_tag(gray: bool) -> dict:
    """PNG save options declaring the pixels sRGB: an iCCP sRGB profile for RGB(A); for gray(A),
    where PNG allows only a gray ICC profile (Pillow cannot build one), the sRGB chunk."""
    if not gray:
        return {"icc_profile": srgb_profile()}
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add(b"sRGB", b"\x00")  # rendering intent 0 (perceptual), as the PNG spec suggests
    return {"pnginfo": info}


def encode_png(rgb: np.ndarray, alpha: np.ndarray | None = None, gray: bool = False) -> bytes:
    """sRGB-tagged PNG bytes of an (H, W, 3) uint8 image, written as L/LA when ``gray``, with
    ``alpha`` ((H, W) uint8) kept."""
    buf = io.BytesIO()
    _output_image(rgb, alpha, gray).save(buf, format="PNG", **_srgb_tag(gray))
    return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, gray: bool = False, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 image (4:2:0); RGB carries the sRGB profile, gray is
    written as L (no profile: JPEG has no gray sRGB tag)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    buf = io.BytesIO()
    if gray:
        im.convert("L").save(buf, format="JPEG", quality=quality)
    else:
        im.save(buf, format="JPEG", quality=quality, icc_profile=srgb_profile())
    return buf.getvalue()


class ApngWriter:
    """An sRGB-tagged animated PNG written frame by frame to a seekable binary file: memory
    holds the previous frame and the one being written, whatever the frame count.

    ``alpha``: every frame gets an alpha channel (a frame given without one is opaque);
    ``gray``: frames are written as L/LA; ``loop``: plays, 0 = forever. Each frame replaces the
    previous one whole (dispose none, blend source), so transparency never shows an older frame;
    only the rectangle that changed is stored. Identical consecutive frames become one longer
    frame (same timeline). :meth:`close` writes the frame count into acTL (it is not known
    before) and returns it.
    """

    def __init__(self, out: BinaryIO, *, alpha: bool, gray: bool, loop: int):
        self.out, self.alpha, self.gray, self.loop = out, alpha, gray, int(loop)
        self.frames = 0      # frames written (after merging)
        self._seq = 0        # APNG sequence number of the next fcTL/fdAT
        self._actl_at = None
        self._prev = None    # the last frame written, as stored (H, W, C)
        self._pending = None  # (pixels, duration): the newest frame, not written yet

    def _pixels(self, rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
        if self.alpha and alpha is None:
            alpha = np.full(rgb.shape[:2], 255, np.uint8)
        return np.asarray(_output_image(rgb, alpha if self.alpha else None, self.gray))

    def add(self, rgb: np.ndarray, alpha: np.ndarray | None, duration_ms: float) -> None:
        """Append an (H, W, 3) uint8 frame (all frames one size) shown for ``duration_ms``."""
        pixels = self._pixels(rgb, alpha)
        if self._pending is not None:
            if self._pending[0].shape != pixels.shape:
                raise ValueError(f"frame size {pixels.shape[1]}x{pixels.shape[0]} != "
                                 f"{self._pending[0].shape[1]}x{self._pending[0].shape[0]}")
            if np.array_equal(self._pending[0], pixels):
                self._pending = (self._pending[0], self._pending[1] + float(duration_ms))
                return
            self._write(*self._pending)
        self._pending = (pixels, float(duration_ms))

    def _write(self, pixels: np.ndarray, duration: float) -> None:
        from PIL import Image

        h, w = pixels.shape[:2]
        x0 = y0 = 0
        if self._prev is not None:
            changed = pixels != self._prev
            changed = changed.any(axis=-1) if changed.ndim == 3 else changed
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            if not rows.size:  # cannot happen (equal frames are merged); store one pixel
                rows = cols = np.zeros(1, np.int64)
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            pixels_to_store = pixels[y0:y1, x0:x1]
        else:
            pixels_to_store = pixels
        buf = io.BytesIO()
        stored = Image.fromarray(np.ascontiguousarray(pixels_to_store))
        if self._prev is None:  # the file's header and frame 0 as IDAT
            stored.save(buf, format="PNG", **_srgb_tag(self.gray))
        else:
            stored.save(buf, format="PNG")
        chunks = list(_png_chunks(buf.getvalue()))
        data = [payload for kind, payload in chunks if kind == b"IDAT"]
        if self._prev is None:
            first_idat = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
            header = chunks[:first_idat]
            self.out.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(*header[0]))
            self._actl_at = self.out.tell()
            self.out.write(_png_chunk(b"acTL", struct.pack(">II", 1, self.loop)))
            for chunk in header[1:]:
                self.out.write(_png_chunk(*chunk))
        ph, pw = pixels_to_store.shape[:2]
        num, den = _delay(duration)
        self.out.write(_png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", self._seq, pw, ph, int(x0), int(y0),
                                                        num, den, 0, 0)))
        self._seq += 1
        for payload in data:
            if self._prev is None:
                self.out.write(_png_chunk(b"IDAT", payload))
            else:
                self.out.write(_png_chunk(b"fdAT", struct.pack(">I", self._seq) + payload))
                self._seq += 1
        self._prev = pixels
        self.frames += 1

    def close(self) -> int:
        """Write the last frame, the frame count and IEND; returns the frame count."""
        if self._pending is None:
            raise ValueError("an animated PNG needs at least one frame")
        self._write(*self._pending)
        self._pending = None
        self.out.write(_png_chunk(b"IEND", b""))
        end = self.out.tell()
        self.out.seek(self._actl_at)
        self.out.write(_png_chunk(b"acTL", struct.pack(">II", self.frames, self.loop)))
        self.out.seek(end)
        return self.frames


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    i = 8
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        yield kind, data[i + 8:i + 8 + n]
        i += 12 + n


def _delay(ms: float) -> tuple[int, int]:
    """An APNG delay fraction (16-bit numerator and denominator) for ``ms`` milliseconds: in
    milliseconds up to 65.5 s, then coarser units."""
    for den in (1000, 100, 10, 1):
        num = round(ms * den / 1000)
        if num <= 0xFFFF:
            return num, den
    return 0xFFFF, 1


def encode_apng(frames: list[np.ndarray], alphas: list[np.ndarray | None], durations_ms: list[float],
                loop: int, gray: bool = False) -> bytes:
    """sRGB-tagged animated PNG of full (H, W, 3) uint8 frames, by :class:`ApngWriter`.

    alphas: per frame (H, W) uint8 or None (opaque; all frames get alpha when one has it).
    durations_ms: display time per frame; loop: plays, 0 = forever.
    """
    if not frames or len(alphas) != len(frames) or len(durations_ms) != len(frames):
        raise ValueError("encode_apng needs as many alphas and durations as frames (>= 1)")
    buf = io.BytesIO()
    writer = ApngWriter(buf, alpha=any(a is not None for a in alphas), gray=gray, loop=loop)
    for f, a, d in zip(frames, alphas, durations_ms):
        writer.add(f, a, d)
    writer.close()
    return buf.getvalue()


def write_image(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None,
                gray: bool = False) -> None:
    """Write a PNG atomically (see :func:`encode_png`)."""
    atomic_write_bytes(path, encode_png(rgb, alpha, gray))


def write_animation(path: str | os.PathLike, frames: list[np.ndarray], alphas: list[np.ndarray | None],
                    durations_ms: list[float], loop: int, gray: bool = False) -> None:
    """Write an animated PNG atomically (see :func:`encode_apng`)."""
    atomic_write_bytes(path, encode_apng(frames, alphas, durations_ms, loop, gray))


@contextlib.contextmanager
def animation_writer(path: str | os.PathLike, *, alpha: bool, gray: bool, loop: int
                     ) -> Iterator[ApngWriter]:
    """An :class:`ApngWriter` onto a temporary file beside ``path``, renamed to ``path`` when
    the block ends without an error (and removed otherwise)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(tmp, "xb")
    except OSError as exc:
        raise write_error(path, exc) from None
    done = False
    try:
        with f:
            writer = ApngWriter(f, alpha=alpha, gray=gray, loop=loop)
            yield writer  # the caller's errors (an unreadable frame ...) pass through as they are
            try:
                writer.close()
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                raise write_error(path, exc) from None
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise write_error(path, exc) from None
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)
