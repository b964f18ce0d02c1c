"""Reading and writing the user's images and videos for ``cartoonize.py``.

Images are decoded by the project's one decoding path, :mod:`datasets.images` (the same RGB
that training and evaluation see): EXIF orientation applied, embedded colour profiles converted
to sRGB, 16-bit scaled to 8 bits, invisible pixels (alpha = 0) filled from their visible
neighbours, alpha and the gray flag kept so the output is written in the same kind (gray stays
gray, alpha is re-attached unchanged). Every output image is an sRGB-tagged PNG (lossless;
holds gray and alpha); animations (GIF, APNG, WebP) become animated PNGs with every frame, the
frame times and the loop count kept.

Videos are read and written by :mod:`inference.video` (FFmpeg through PyAV); here only their
output names are decided: H.264 needs an MP4 or QuickTime container, so ``.mov`` stays ``.mov``
and every other video becomes ``.mp4``.

Every problem with one file raises :class:`~utils.errors.ToonFaceError` with a one-line
message, so the batch can report it and go on.
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from datasets.images import (DecodedFrames, DecodedImage, FrameReader, ImageTooLarge,
                             UnreadableImage, decode_frames, decode_image, open_frames)
from utils.errors import ToonFaceError
from utils.io import atomic_write_bytes, temporary_path, write_error

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv")
# The seed's limits; --max-pixels / --max-bytes raise them.
DEFAULT_MAX_PIXELS = 3000 * 3000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Frames x canvas pixels of an animation (--max-animation-pixels): decoding composes every frame
# on the whole canvas, so a 29 KB APNG of 300 one-pixel frames on 1500x1500 asks for 675 M.
# 100 M is about 11 frames of 3000x3000, 400 of 500x500, 48 of 1920x1080.
DEFAULT_MAX_ANIMATION_PIXELS = 100_000_000
# Each limit of datasets.images and the option that raises it.
_LIMIT_OPTIONS = {"pixels": "--max-pixels", "bytes": "--max-bytes",
                  "animation-pixels": "--max-animation-pixels"}


def kind_of(path: str | os.PathLike) -> str | None:
    """"image", "video" or None, from the file extension."""
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return None


def video_output(rel: Path) -> Path:
    """The output name of a video: H.264 in MP4 (``.mp4``), or QuickTime for ``.mov`` inputs."""
    return rel if rel.suffix.lower() == ".mov" else rel.with_suffix(".mp4")


def _image_error(path: str | os.PathLike, exc: UnreadableImage) -> ToonFaceError:
    msg = f"{path}: {exc}"
    if isinstance(exc, ImageTooLarge) and exc.what in _LIMIT_OPTIONS:
        msg += f"; raise it with {_LIMIT_OPTIONS[exc.what]}"
    return ToonFaceError(msg)


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               max_bytes: int | None = DEFAULT_MAX_BYTES) -> DecodedImage:
    """The first picture of an image file, by :func:`datasets.images.decode_image` (the one
    decoding path: sRGB, invisible pixels filled, alpha and the gray flag kept).

    ``max_pixels`` (None: Pillow's ``MAX_IMAGE_PIXELS``) and ``max_bytes`` (None: no limit) are
    checked before any pixel is decoded. Raises ToonFaceError with one line naming the file and,
    for a limit, the option that raises it.
    """
    try:
        return decode_image(path, max_pixels=max_pixels, max_bytes=max_bytes)
    except UnreadableImage as exc:
        raise _image_error(path, exc) from None


def read_frames(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                max_bytes: int | None = DEFAULT_MAX_BYTES,
                max_animation_pixels: int | None = DEFAULT_MAX_ANIMATION_PIXELS) -> DecodedFrames:
    """Every frame of an image file (one for a still), by :func:`datasets.images.decode_frames`,
    all in memory (for large animations use :func:`image_frames`).

    Limits and errors as :func:`image_frames`.
    """
    try:
        return decode_frames(path, max_pixels=max_pixels, max_bytes=max_bytes,
                             max_total_pixels=max_animation_pixels)
    except UnreadableImage as exc:
        raise _image_error(path, exc) from None


@contextlib.contextmanager
def image_frames(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 max_bytes: int | None = DEFAULT_MAX_BYTES,
                 max_animation_pixels: int | None = DEFAULT_MAX_ANIMATION_PIXELS
                 ) -> Iterator[FrameReader]:
    """An image file opened for decoding frame by frame (:func:`datasets.images.open_frames`):
    iterate the reader for the frames of an animation, or the one picture of a still file.

    ``max_pixels`` (per frame; None: Pillow's ``MAX_IMAGE_PIXELS``), ``max_bytes`` and
    ``max_animation_pixels`` (frames x canvas pixels) are checked before any pixel is decoded,
    and JPEGs with more than ``datasets.images.MAX_JPEG_SCANS`` scans are refused. Every
    problem, when opening or at any frame, raises ToonFaceError with one line naming the file
    and, for a limit, the option that raises it; several pictures that are not an animation (a
    multi-page TIFF) are one line naming the count.
    """
    try:
        with open_frames(path, max_pixels=max_pixels, max_bytes=max_bytes,
                         max_total_pixels=max_animation_pixels) as reader:
            yield reader
    except UnreadableImage as exc:
        raise _image_error(path, exc) from None


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


# ----------------------------------------------------------------------------------- batch


@dataclass
class Job:
    """One input file and where its result goes."""

    src: Path
    kind: str   # "image" | "video"
    dst: Path


def collect_jobs(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, overwrite: bool = False
                 ) -> tuple[list[Job], list[str]]:
    """Files to process and one-line errors for inputs that cannot be used.

    Files keep their name; files found in a folder (recursively) keep their path relative to
    that folder. Images become ``<out>/<rel>/<stem>.png``; videos ``<out>/<rel>/<stem>.mp4``
    (``.mov`` stays ``.mov``). Files already inside ``out_dir`` are skipped when walking
    folders (the results of an earlier run), so a folder that is ``out_dir`` or inside it is an
    error, not "no images". Broken and looping symbolic links with a media name are an error
    each (symbolic links to folders are not followed). A result that would land on any input
    file is an error for that file, never an overwrite; so is one that would replace an
    existing file, unless ``overwrite``.
    """
    from datasets.images import os_reason

    out_dir = Path(out_dir)
    out_res = out_dir.resolve()
    found: list[tuple[Path, str, Path]] = []
    errors: list[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            if p.resolve() == out_res or out_res in p.resolve().parents:
                errors.append(f"{p}: this folder is --out {out_dir} or inside it, whose files are "
                              "skipped as results of an earlier run: choose an --out outside it")
                continue
            files = []
            for f in sorted(p.rglob("*")):
                if not kind_of(f):
                    continue
                if f.is_symlink() and not f.exists():
                    try:
                        os.stat(f)
                    except OSError as exc:
                        errors.append(f"{f}: {os_reason(f, exc)}")
                    continue
                if f.is_file() and out_res not in f.resolve().parents:
                    files.append(f)
            if not files and not any(e.startswith(f"{p}{os.sep}") for e in errors):
                errors.append(f"{p}: no images ({', '.join(IMAGE_EXTS)}) or videos "
                              f"({', '.join(VIDEO_EXTS)}) in this folder")
            found += [(f, kind_of(f), f.relative_to(p)) for f in files]
        elif p.is_file():
            k = kind_of(p)
            if k is None:
                errors.append(f"{p}: unsupported file type {p.suffix or '(no extension)'!r}; "
                              f"images: {' '.join(IMAGE_EXTS)}; videos: {' '.join(VIDEO_EXTS)}")
            else:
                found.append((p, k, Path(p.name)))
        elif p.is_symlink():
            try:
                os.stat(p)
            except OSError as exc:
                errors.append(f"{p}: {os_reason(p, exc)}")
        else:
            errors.append(f"{p}: no such file or folder")
    sources = {src.resolve() for src, _, _ in found}
    planned: set[Path] = set()
    jobs: list[Job] = []
    for src, k, rel in found:
        dst = out_dir / (rel.with_suffix(".png") if k == "image" else video_output(rel))
        if dst.resolve() in planned:  # a.jpg and a.png (a.avi and a.mp4) in one folder
            dst = out_dir / rel.with_name(rel.name + (".png" if k == "image" else ".mp4"))
        if dst.resolve() in planned:
            errors.append(f"{src}: its output {dst} is also another input's output; skipped")
            continue
        if dst.resolve() in sources:
            errors.append(f"{src}: its output {dst} would overwrite an input file; choose another --out")
            continue
        if not overwrite and os.path.lexists(dst):
            errors.append(f"{src}: its output {dst} already exists (not written by this run); skipped: "
                          "pass --overwrite to replace it")
            continue
        planned.add(dst.resolve())
        jobs.append(Job(src, k, dst))
    return jobs, errors
