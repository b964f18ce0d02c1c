"""Finding and decoding image files: the one decoding path of the project.

Training (:mod:`datasets.folders`, the landmark cache), evaluation (``load_crops``) and
inference (:func:`inference.io.read_image`) all call :func:`decode_image` (or
:func:`decode_frames` for every frame of an animation), so one file gives the same RGB array
everywhere. The rules, in the order they apply:

1. Limits, before any pixel is decoded: the file size (``max_bytes``), the pixel count from
   the header (``max_pixels``; default ``PIL.Image.MAX_IMAGE_PIXELS``, read at call time) and
   the longer side (``max_side``), for every frame; an animation's frame count (``max_frames``)
   and frames x canvas pixels (``max_total_pixels``: what decoding all of it costs, counted from
   the file's structure, :func:`picture_count`); a JPEG's scans (``max_scans``, default
   :data:`MAX_JPEG_SCANS`: each scan is another pass over the image, so a small file of
   thousands of scans would keep the decoder busy for minutes, :func:`jpeg_scans_over`).
   Within a call our pixel limit replaces Pillow's decompression-bomb check (scoped to the
   calling thread's context, see :func:`_pixel_limit`), so a larger ``max_pixels`` really
   lifts it, and an oversize image is reported as such (:class:`ImageTooLarge`), not as corrupt.
2. Samples to 8 bits: 16-bit values (gray, colour and alpha alike) -> ``rint(v * 255 / 65535)``;
   mode "1" -> 0 / 255; mode "I" (32-bit integers) is taken as 8-bit when no value exceeds 255,
   else as 16-bit (clipped to [0, 65535]); mode "F" as [0, 1] when no value exceeds 1, else as
   [0, 255] (clipped, NaN -> 0). Palette images are expanded through their palette.
3. EXIF orientation applied (the arrays are turned as a viewer shows the file).
4. Colour to sRGB: an embedded ICC profile (RGB, gray or CMYK) is converted to sRGB with
   LittleCMS (``PIL.ImageCms``), relative colorimetric intent without black-point compensation
   (what the profile says the colours are; for the usual matrix RGB profiles, Adobe RGB,
   Display P3, ProPhoto, all intents agree). No profile: RGB and gray are taken as sRGB, CMYK is
   inverted naively (Pillow). A profile that cannot be read or does not match the pixels' colour
   space is ignored with one note (:attr:`DecodedImage.notes`): the pixels are read as sRGB.
   PNG gAMA/cHRM chunks and EXIF colour-space tags are not interpreted.
5. Grayscale -> R = G = B (``gray`` remembers it, so inference can write gray back).
6. Alpha (RGBA, LA, PA, palettes and gray/RGB with a transparent colour): the 8-bit straight
   alpha is returned unchanged. Pixels with alpha > 0 keep their straight colour; pixels with
   alpha == 0 are invisible and get the colour of the nearest visible pixel (Euclidean distance,
   :func:`fill_invisible`), so the RGB handed to the generator or to training never depends on
   what a program happened to store under alpha = 0. A fully transparent image is
   :data:`TRANSPARENT_FILL` gray.
7. Frames: :func:`decode_image` decodes the first frame and says how many pictures the file holds
   (:attr:`DecodedImage.frames`). :func:`open_frames` decodes an animation (GIF, APNG, WebP)
   one frame at a time, each with its display time, and knows the loop count; memory holds one
   frame. :func:`decode_frames` collects them all. Other multi-frame files (multi-page TIFF, ...)
   raise :class:`MultiFrameImage`. Not counted as frames: the extra pictures of an MPO (camera
   previews, stereo pairs) and reduced-resolution TIFF subfiles (thumbnails).

Every problem raises :class:`UnreadableImage` (never a PIL, cv2 or LittleCMS error) with a short
reason, so folder scans can skip and report files.
"""
from __future__ import annotations

import contextlib
import contextvars
import io
import os
import re
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Formats whose frames are an animation with display times; they are written back as APNG.
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")
# The colour of a fully transparent image: the generator's zero input ((128 / 127.5) - 1 ~ 0).
TRANSPARENT_FILL = 128

# Scans a JPEG may have before it is refused undecoded (:func:`jpeg_scans_over`). Encoders write
# 1 (baseline) to about 10 (libjpeg's progression), jpegtran scripts a few dozen; 100 is the
# bound LibreOffice and others took from libjpeg-turbo's report on the issue (LJT-01-003).
MAX_JPEG_SCANS = 100

_EXIF_ORIENTATION = 0x0112
_TIFF_NEW_SUBFILE_TYPE = 254
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


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


@dataclass(frozen=True)
class DecodedImage:
    """One decoded picture (see the module docstring for the rules).

    rgb: (H, W, 3) uint8 sRGB; where ``alpha == 0`` it holds the nearest visible colour.
    alpha: (H, W) uint8 straight alpha as stored (16-bit alpha rounded to 8 bits), or None.
    gray: the file stores one colour channel (modes 1, L, LA, I;16, I, F).
    bit_depth: bits per sample in the file (1, 8, 16 or 32).
    frames: pictures in the file (animation frames, TIFF pages); this is the first.
    notes: one-line remarks about things read differently from the file (e.g. an unreadable
        colour profile), for the caller to show.
    duration_ms: display time of an animation frame in milliseconds (0 when none is given).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    gray: bool = False
    bit_depth: int = 8
    frames: int = 1
    notes: tuple[str, ...] = ()
    duration_ms: float = 0.0


@dataclass(frozen=True)
class DecodedFrames:
    """Every frame of an animation (or the one picture of a still file).

    frames: :class:`DecodedImage` per frame, each the full canvas as shown at that time
        (the format's disposal and blending already applied by Pillow).
    durations_ms: display time of each frame in milliseconds (0 when the file gives none).
    loop: times the animation is played, 0 = forever (APNG's ``num_plays``). GIF: no NETSCAPE
        block = 1 play; a NETSCAPE count n > 0 repeats n times after the first play = n + 1.
        WebP and APNG: their loop count as stored.
    format: Pillow's format name ("GIF", "PNG", "WEBP", ...).
    """

    frames: list[DecodedImage]
    durations_ms: list[float] = field(default_factory=list)
    loop: int = 0
    format: str = ""

    @property
    def notes(self) -> tuple[str, ...]:
        return self.frames[0].notes if self.frames else ()


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension, any case), sorted; hidden files and folders
    (names starting with '.') are skipped.

    Broken and looping symbolic links with an image name are listed (the decode check reports
    them, :func:`os_reason`). Subfolders that cannot be read and symbolic links to folders (not
    followed: a link may lead back up the tree) are left out with one warning naming them.
    Raises ToonFaceError (one line, the system's reason) when ``folder`` itself cannot be read.
    """
    from utils.errors import ToonFaceError

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
        import logging

        logging.getLogger(__name__).warning("%s: left out %d subfolder(s): %s", root, len(left_out),
                                            "; ".join(left_out))
    return sorted(out)


def os_reason(path: str | os.PathLike, exc: OSError) -> str:
    """The system's reason a file cannot be read, with what a symbolic link adds: "broken
    symbolic link to x (no such file)", "symbolic link loop"."""
    import errno

    path = Path(path)
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"broken symbolic link to {os.readlink(path)} (no such file)"
    return exc.strerror or type(exc).__name__


# ------------------------------------------------------------------------- sample scaling
def sixteen_to_eight(a: np.ndarray) -> np.ndarray:
    """16-bit samples -> uint8 by ``rint(v * 255 / 65535)`` (full range kept: 0 -> 0, 65535 -> 255;
    Pillow's own reduction keeps the high byte, ``v >> 8``, half a level darker on average)."""
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, 65535.0)
    return np.rint(a * (255.0 / 65535.0)).astype(np.uint8)


def to_uint8_rgb(img) -> np.ndarray:
    """Convert an image array to the contiguous uint8 ``(H, W, 3)`` RGB that mediapipe needs.

    For arrays already in memory; files go through :func:`decode_image`.
    Accepted (converted, never rejected): grayscale ``(H, W)`` / ``(H, W, 1)``, gray+alpha
    ``(H, W, 2)``, RGB, RGBA (alpha dropped); uint8; 16-bit (uint16 or wider integers, clipped to
    [0, 65535], scaled as :func:`sixteen_to_eight`); bool; float in [0, 1] (clipped). A PIL image
    is accepted too. Raises ``ValueError`` only for arrays that are not images at all (e.g. 1-D,
    5 channels).
    """
    if not isinstance(img, np.ndarray):
        img = np.asarray(img.convert("RGB")) if img.mode not in ("I;16", "I", "F") else np.array(img)
    a = img
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 2:          # gray + alpha
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 4:          # RGBA
        a = a[:, :, :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or min(a.shape[:2]) < 1:
        raise ValueError(f"expected an image (H, W), (H, W, 1|2|3|4), got shape {img.shape}")

    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0)
        a = np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        if a.dtype.itemsize == 1:                 # int8
            a = np.clip(a, 0, 255).astype(np.uint8)
        else:                                     # 16-bit data (also PIL's int32 mode "I")
            a = sixteen_to_eight(a)
    else:
        raise ValueError(f"unsupported image dtype {a.dtype}")

    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a)


# --------------------------------------------------------------------------- invisible pixels
def fill_invisible(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Give every pixel with ``alpha == 0`` the colour of the nearest pixel with ``alpha > 0``.

    rgb: (H, W, 3) uint8; alpha: (H, W) uint8. Returns a new (H, W, 3) uint8 array; visible
    pixels are unchanged. Nearest is by Euclidean distance (``scipy.ndimage.distance_transform_edt``
    with ``return_indices``; ties go the way scipy's exact EDT resolves them, deterministically).
    A fully transparent image becomes :data:`TRANSPARENT_FILL` gray. Why: the colour under
    alpha = 0 is arbitrary (white, black, noise, an old layer) yet the generator sees it and, with
    its ~60 px receptive field, lets it bleed into visible pixels near the alpha edge; a
    continuation of the visible colours is what the edge pixels would have around them.
    """
    invisible = alpha == 0
    if not invisible.any():
        return rgb.copy()
    if invisible.all():
        return np.full_like(rgb, TRANSPARENT_FILL)
    from scipy import ndimage

    iy, ix = ndimage.distance_transform_edt(invisible, return_distances=False, return_indices=True)
    return np.ascontiguousarray(rgb[iy, ix])


# ------------------------------------------------------------------------------- limits
class _OverLimit(Image.DecompressionBombError):
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
    """Wrap ``PIL.Image._decompression_bomb_check`` once so that, inside :func:`_pixel_limit`,
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
                raise _OverLimit((int(size[0]), int(size[1])))
            return None

        scoped_check._toonface_scoped = True  # type: ignore[attr-defined]
        Image._decompression_bomb_check = scoped_check


@contextlib.contextmanager
def _pixel_limit(limit: int | None) -> Iterator[None]:
    _install_scoped_bomb_check()
    token = _PIXEL_LIMIT.set((limit,))
    try:
        yield
    finally:
        _PIXEL_LIMIT.reset(token)


def _check_bytes(path: Path, max_bytes: int | None) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        reason = os_reason(path, exc)
        raise UnreadableImage(reason if "symbolic link" in reason else f"cannot read ({reason})") from None
    if size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise ImageTooLarge("bytes", size, max_bytes)


def _check_pixels(size: tuple[int, int], limit: int | None, default_limit: bool) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise UnreadableImage(f"zero-size image ({w}x{h})")
    if limit is not None and w * h > limit:
        raise ImageTooLarge("pixels", w * h, limit, (w, h), default_limit)


# ------------------------------------------------------------------------------- frames
# Counting pictures reads the file's structure only, never a pixel: Pillow's own n_frames walks
# every GIF frame and TIFF page through its Python decoder state, so a GIF is read with
# _gif_layout (which also finds the canvas that frames reaching past the screen grow to) and
# TIFF pages are counted up to _TIFF_PAGE_CAP. APNG (acTL) and WebP (the demuxer's frame
# count) give their counts in the header.
_TIFF_PAGE_CAP = 1000
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass(frozen=True)
class _Layout:
    count: int                   # pictures in the file (see picture_count)
    canvas: tuple[int, int]      # the size every frame is composed on
    transparency: bool = False   # a GIF frame declares a transparent index
    palettes: bool = False       # a GIF has a global or local colour table
    capped: bool = False         # count is _TIFF_PAGE_CAP or more


def _skip_sub_blocks(data: bytes, i: int) -> int:
    n = len(data)
    while i < n:
        size = data[i]
        i += 1 + size
        if size == 0:
            break
    return i


def _gif_layout(data: bytes) -> _Layout:
    """Frames, canvas, transparency and colour tables of GIF data from its blocks, as Pillow
    reads them (GIF89a section 17 onwards; bytes between blocks skipped one by one, as Pillow
    does). The canvas is the logical screen grown to every frame's extent, as Pillow grows it."""
    w, h = struct.unpack_from("<HH", data, 6)
    flags = data[10]
    palettes = bool(flags & 0x80)
    i = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    frames, cw, ch, transparency = 0, w, h, False
    n = len(data)
    while i < n:
        block = data[i]
        i += 1
        if block == 0x3B:                          # trailer
            break
        if block == 0x21 and i < n:                # extension: label, then sub-blocks
            label = data[i]
            i += 1
            if label == 0xF9 and i + 1 < n and data[i] >= 4 and data[i + 1] & 1:
                transparency = True                # graphic control: transparent index set
            i = _skip_sub_blocks(data, i)
        elif block == 0x2C and i + 9 <= n:         # image: descriptor, colour table, LZW data
            x, y, fw, fh, fl = struct.unpack_from("<HHHHB", data, i)
            i += 9
            frames += 1
            cw, ch = max(cw, x + fw), max(ch, y + fh)
            if fl & 0x80:
                palettes = True
                i += 3 << ((fl & 7) + 1)
            i = _skip_sub_blocks(data, i + 1)      # after the LZW minimum code size
    return _Layout(max(frames, 1), (cw, ch), transparency, palettes)


def _layout(im: Image.Image, path: Path) -> _Layout:
    """What an opened file holds, read without decoding a pixel. Leaves ``im`` on frame 0."""
    if im.format == "GIF":
        with open(path, "rb") as f:
            return _gif_layout(f.read())
    if im.format == "MPO":  # the extra pictures are previews and stereo pairs
        return _Layout(1, im.size)
    if im.format == "TIFF":
        full = pages = 0
        try:
            while pages < _TIFF_PAGE_CAP:
                im.seek(pages)
                pages += 1
                full += not (int(im.tag_v2.get(_TIFF_NEW_SUBFILE_TYPE, 0)) & 1)
        except EOFError:
            pass
        im.seek(0)
        return _Layout(max(full, 1), im.size, capped=pages >= _TIFF_PAGE_CAP)
    return _Layout(int(getattr(im, "n_frames", 1) or 1), im.size)


def picture_count(im: Image.Image, path: str | os.PathLike | None = None) -> int:
    """Pictures in an opened file: its frames, less MPO extras and reduced-resolution TIFF
    subfiles (NewSubfileType bit 0, thumbnails), counted without decoding pixels (TIFF pages up
    to 1000). ``path``: the file (needed for GIF; default ``im.filename``). Leaves ``im`` on
    frame 0."""
    return _layout(im, Path(path or im.filename)).count


def _play_count(im: Image.Image) -> int:
    loop = im.info.get("loop")
    if im.format == "GIF":
        return 1 if loop is None else (0 if int(loop) == 0 else int(loop) + 1)
    return 0 if loop is None else int(loop)


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


# ----------------------------------------------------------------------------- decoding
def _rawmode(im: Image.Image) -> str:
    if not im.tile:
        return ""
    args = im.tile[0][3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""


def _sixteen_bit_colour(path: Path, im: Image.Image) -> np.ndarray | None:
    """(H, W, C) uint16 samples of a single-picture 16-bit RGB, RGBA or gray+alpha PNG/TIFF.

    Pillow has no 16-bit colour modes and keeps only the high byte of each sample; OpenCV reads
    the full samples (``IMREAD_UNCHANGED``: no EXIF rotation, no conversion). None when the file
    is not such an image or OpenCV cannot read it (Pillow's 8-bit reading is used then).
    """
    if (im.format not in ("PNG", "TIFF") or im.mode not in ("RGB", "RGBA", "LA")
            or ";16" not in _rawmode(im) or "transparency" in im.info
            or getattr(im, "n_frames", 1) != 1):
        return None
    import cv2

    try:
        a = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    want = 2 if im.mode == "LA" else len(im.mode)
    if a is None or a.dtype != np.uint16 or a.shape[:2] != (im.height, im.width):
        return None
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        return None
    if im.mode == "LA":  # OpenCV expands gray+alpha to BGRA
        return np.dstack([a[..., 0], a[..., 3]]) if a.shape[2] == 4 else None
    a = a[..., [2, 1, 0, 3][:a.shape[2]]]
    return a if a.shape[2] == want else None


def _samples(im: Image.Image, sixteen: np.ndarray | None):
    """The loaded frame as 8-bit samples in its own colour space.

    Returns (colour, cms_mode, alpha, gray, bit_depth): colour is (H, W) for gray and
    (H, W, 3|4) for "RGB" / "CMYK"; alpha (H, W) uint8 or None.
    """
    mode = im.mode
    trns = im.info.get("transparency")
    if sixteen is not None:
        s8 = sixteen_to_eight(sixteen)
        if mode == "LA":
            return s8[..., 0], "L", s8[..., 1], True, 16
        return s8[..., :3], "RGB", (s8[..., 3] if mode == "RGBA" else None), False, 16
    if mode.startswith("I;16") or mode == "I":
        raw = np.asarray(im)
        alpha = None if trns is None else np.where(raw == trns, 0, 255).astype(np.uint8)
        if mode == "I" and raw.max(initial=0) <= 255:
            return np.clip(raw, 0, 255).astype(np.uint8), "L", alpha, True, 8
        return sixteen_to_eight(raw), "L", alpha, True, 16 if mode != "I" else 32
    if mode == "F":
        raw = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0)
        scale = 255.0 if raw.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.rint(raw * scale), 0, 255).astype(np.uint8), "L", None, True, 32
    if mode == "CMYK":
        return np.asarray(im), "CMYK", None, False, 8
    if mode in ("1", "L", "LA", "La"):
        if mode in ("LA", "La") or trns is not None:
            la = np.asarray(im.convert("LA"))
            return la[..., 0], "L", la[..., 1], True, 1 if mode == "1" else 8
        return np.asarray(im.convert("L")), "L", None, True, 1 if mode == "1" else 8
    if mode in _ALPHA_MODES or trns is not None:
        rgba = np.asarray(im.convert("RGBA"))
        return rgba[..., :3], "RGB", rgba[..., 3], False, 8
    return np.asarray(im.convert("RGB")), "RGB", None, False, 8


def _orient(a: np.ndarray | None, orientation: int) -> np.ndarray | None:
    """Turn (H, W[, C]) as EXIF orientation 1..8 says (the transposes of ImageOps.exif_transpose)."""
    if a is None or orientation in (0, 1) or orientation > 8:
        return a
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return np.rot90(a, 2).swapaxes(0, 1)
    return np.rot90(a, 1)  # 8


_PROFILE_SPACE = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}


def _srgb_transform(icc: bytes | None, cms_mode: str):
    """(LittleCMS transform from the embedded profile to sRGB, or None; a note or None)."""
    if not icc:
        return None, None
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = src.profile.xcolor_space.strip()
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
        return None, f"embedded colour profile is unreadable ({_first_line(exc)}); pixels read as sRGB"
    want = _PROFILE_SPACE[cms_mode]
    if space.upper() != want:
        return None, (f"embedded colour profile is for {space} data but the pixels are "
                      f"{want}; profile ignored, pixels read as sRGB")
    try:
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        return ImageCms.buildTransform(src, srgb, cms_mode, "RGB",
                                       renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC), None
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
        return None, f"embedded colour profile cannot be used ({_first_line(exc)}); pixels read as sRGB"


def _to_srgb(colour: np.ndarray, cms_mode: str, transform) -> tuple[np.ndarray, str | None]:
    """(H, W, 3) uint8 sRGB of 8-bit samples in ``cms_mode``; a note if the profile failed."""
    if transform is not None:
        from PIL import ImageCms

        try:
            src = Image.fromarray(np.ascontiguousarray(colour), cms_mode)
            return np.asarray(ImageCms.applyTransform(src, transform)), None
        except (OSError, ValueError, ImageCms.PyCMSError) as exc:
            note = f"colour conversion with the embedded profile failed ({_first_line(exc)}); pixels read as sRGB"
            return _naive_rgb(colour, cms_mode), note
    return _naive_rgb(colour, cms_mode), None


def _naive_rgb(colour: np.ndarray, cms_mode: str) -> np.ndarray:
    if cms_mode == "L":
        return np.repeat(colour[..., None], 3, axis=2)
    if cms_mode == "CMYK":
        return np.asarray(Image.fromarray(np.ascontiguousarray(colour), "CMYK").convert("RGB"))
    return colour


def _decode_loaded(im: Image.Image, sixteen, orientation: int, transform_for) -> DecodedImage:
    colour, cms_mode, alpha, gray, bits = _samples(im, sixteen)
    colour, alpha = _orient(colour, orientation), _orient(alpha, orientation)
    transform, note = transform_for(cms_mode)
    rgb, failed = _to_srgb(colour, cms_mode, transform)
    note = note or failed
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha, dtype=np.uint8)
        rgb = fill_invisible(rgb, alpha)
    rgb = np.array(rgb, dtype=np.uint8, order="C", copy=True)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise UnreadableImage("zero-size image")
    return DecodedImage(rgb, alpha, gray, bits, 1, (note,) if note else ())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class FrameReader:
    """An image file opened for decoding one frame at a time (:func:`open_frames`).

    Every limit is checked when the reader is made, from the file's header and structure,
    before a pixel is decoded; iterating yields :class:`DecodedImage` s one by one (each with
    its ``duration_ms``), so memory holds one frame, whatever the frame count. Use as a context
    manager or call :meth:`close`.

    Attributes (known before any decoding): ``format`` (Pillow's name), ``count`` (pictures in
    the file, :func:`picture_count`), ``frames`` (how many iteration yields: ``count`` for an
    animation read with ``every_frame``, else 1), ``canvas`` (width, height every frame is
    composed on), ``loop`` (plays, as :class:`DecodedFrames`), ``has_alpha`` (some frame may
    carry alpha: give every output frame one), ``gray`` (the frames are gray).
    """

    def __init__(self, path: str | os.PathLike, *, max_pixels: int | None = None,
                 max_bytes: int | None = None, max_side: int | None = None,
                 max_frames: int | None = None, max_total_pixels: int | None = None,
                 max_scans: int | None = MAX_JPEG_SCANS, every_frame: bool = True):
        self.path = Path(path)
        _check_bytes(self.path, max_bytes)
        self._default_limit = max_pixels is None
        self._limit = Image.MAX_IMAGE_PIXELS if self._default_limit else int(max_pixels)
        if self._limit is not None and self._limit <= 0:
            raise ValueError(f"max_pixels must be > 0, got {self._limit}")
        self._max_side = max_side
        self._im: Image.Image | None = None
        self._next = 0
        with self._decoding():
            self._im = Image.open(self.path)
            try:
                self._check(max_side, max_frames, max_total_pixels, max_scans, every_frame)
            except BaseException:
                self.close()
                raise

    def _check(self, max_side, max_frames, max_total_pixels, max_scans, every_frame) -> None:
        im = self._im
        self._check_size(im.size)
        layout = _layout(im, self.path)
        self.format, self.count, self.canvas = im.format or "", layout.count, layout.canvas
        if every_frame and self.count > 1 and self.format not in ANIMATED_FORMATS:
            unit = "pages" if self.format == "TIFF" else "frames"
            count = f"{self.count}{'+' if layout.capped else ''}"
            raise MultiFrameImage(
                f"holds {count} {unit} ({self.format}, not an animation); only single images "
                f"and animations ({', '.join(ANIMATED_FORMATS)}) are supported: save the "
                f"{unit} as separate files")
        self.frames = self.count if every_frame and self.format in ANIMATED_FORMATS else 1
        size = self.canvas if self.frames > 1 else im.size
        self._check_size(size)
        w, h = size
        if max_frames is not None and self.frames > max_frames:
            raise ImageTooLarge("frames", self.frames, max_frames, size)
        if max_total_pixels is not None and self.frames * w * h > max_total_pixels:
            raise ImageTooLarge("animation-pixels", self.frames * w * h, max_total_pixels, size,
                                frames=self.frames)
        if self.format in ("JPEG", "MPO") and max_scans is not None:
            with open(self.path, "rb") as f:
                if jpeg_scans_over(f.read(), max_scans):
                    raise ImageTooLarge("scans", max_scans + 1, max_scans, size)
        self.loop = _play_count(im)
        self.has_alpha = (im.mode in _ALPHA_MODES or "transparency" in im.info
                          or layout.transparency)
        self.gray = im.mode in _GRAY_MODES and not layout.palettes
        self._icc = im.info.get("icc_profile")
        self._transforms: dict[str, tuple] = {}
        self._orientation = 1

    def _check_size(self, size: tuple[int, int]) -> None:
        if self._max_side is not None and max(size) > self._max_side:  # the side first: the
            raise ImageTooLarge("side", max(size), self._max_side, size)  # limit a user sets
        _check_pixels(size, self._limit, self._default_limit)

    @contextlib.contextmanager
    def _decoding(self) -> Iterator[None]:
        """Our pixel limit in place of Pillow's, and every failure as UnreadableImage."""
        from PIL import UnidentifiedImageError

        try:
            with _pixel_limit(self._limit):
                yield
        except UnreadableImage:
            raise
        except _OverLimit as exc:
            self._check_size(exc.size)  # over the side limit: say that
            raise ImageTooLarge("pixels", exc.size[0] * exc.size[1], self._limit, exc.size,
                                self._default_limit) from None
        except Image.DecompressionBombError as exc:  # Pillow's own check, should ours be bypassed
            raise UnreadableImage(f"too many pixels ({_first_line(exc)})") from None
        except UnidentifiedImageError:
            raise UnreadableImage("not a readable image (unsupported format or corrupt)") from None
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
            raise UnreadableImage(f"cannot decode image (corrupt or truncated: {_first_line(exc)})") from None

    def _transform_for(self, cms_mode: str):
        if cms_mode not in self._transforms:
            self._transforms[cms_mode] = _srgb_transform(self._icc, cms_mode)
        return self._transforms[cms_mode]

    def read(self) -> DecodedImage | None:
        """The next frame, decoded; None after the last."""
        if self._im is None:
            raise ValueError("the reader is closed")
        i = self._next
        if i >= self.frames:
            return None
        im = self._im
        with self._decoding():
            if i == 0:
                sixteen = _sixteen_bit_colour(self.path, im) if self.count == 1 else None
                im.load()  # truncated files fail here, not in a worker
                self._orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            else:
                sixteen = None
                im.seek(i)
                self._check_size(im.size)
                im.load()
            frame = _decode_loaded(im, sixteen, self._orientation, self._transform_for)
            duration = float(im.info.get("duration") or 0.0)
        self._next += 1
        return DecodedImage(frame.rgb, frame.alpha, frame.gray, frame.bit_depth,
                            self.count if i == 0 else 1, frame.notes, duration)

    def __iter__(self) -> Iterator[DecodedImage]:
        while (frame := self.read()) is not None:
            yield frame

    def close(self) -> None:
        if self._im is not None:
            self._im.close()
            self._im = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_frames(path: str | os.PathLike, *, max_pixels: int | None = None,
                max_bytes: int | None = None, max_side: int | None = None,
                max_frames: int | None = None, max_total_pixels: int | None = None,
                max_scans: int | None = MAX_JPEG_SCANS) -> FrameReader:
    """Open an image file for decoding frame by frame (every frame of a GIF, APNG or WebP
    animation; the one picture of a still file): a :class:`FrameReader`.

    Limits, all checked before any pixel is decoded (None = no limit):
        max_bytes: the file size. max_pixels: width x height of each picture (None: Pillow's
        ``MAX_IMAGE_PIXELS`` at call time; governs Pillow's decompression-bomb check within
        this reader only); for an animation, of its canvas. max_side: the longer side.
        max_frames: an animation's frames. max_total_pixels: frames x canvas pixels, what
        decoding the whole animation composes (a 29 KB APNG of 300 one-pixel frames on a
        1500x1500 canvas asks for 675 M). max_scans: a JPEG's scans (:func:`jpeg_scans_over`;
        default :data:`MAX_JPEG_SCANS`).
    Raises: :class:`ImageTooLarge` (over a limit), :class:`MultiFrameImage` (several pictures
        that are not an animation), :class:`UnreadableImage` (missing, empty, not an image,
        corrupt or truncated; also while iterating).
    """
    return FrameReader(path, max_pixels=max_pixels, max_bytes=max_bytes, max_side=max_side,
                       max_frames=max_frames, max_total_pixels=max_total_pixels,
                       max_scans=max_scans)


def decode_image(path: str | os.PathLike, *, max_pixels: int | None = None,
                 max_bytes: int | None = None, max_side: int | None = None,
                 max_scans: int | None = MAX_JPEG_SCANS) -> DecodedImage:
    """Decode the first picture of an image file by the rules of this module.

    Args:
        path: the file (any format Pillow opens; content decides, not the extension).
        max_pixels: refuse pictures with more pixels (width x height); None means Pillow's
            ``Image.MAX_IMAGE_PIXELS`` at call time (about 89.5 M; no limit if it is None).
            Governs Pillow's decompression-bomb check within this call only.
        max_bytes: refuse files larger than this; None = no limit.
        max_side: refuse pictures with a longer side; None = no limit.
        max_scans: refuse JPEGs with more scans (:func:`jpeg_scans_over`); None = no limit.
    Returns: :class:`DecodedImage` (``frames`` says how many pictures the file holds).
    Raises: :class:`ImageTooLarge` (over a limit), :class:`UnreadableImage` (missing, empty,
        not an image, corrupt or truncated).
    """
    with FrameReader(path, max_pixels=max_pixels, max_bytes=max_bytes, max_side=max_side,
                     max_scans=max_scans, every_frame=False) as reader:
        return reader.read()


def decode_frames(path: str | os.PathLike, *, max_pixels: int | None = None,
                  max_bytes: int | None = None, max_side: int | None = None,
                  max_frames: int | None = None, max_total_pixels: int | None = None,
                  max_scans: int | None = MAX_JPEG_SCANS) -> DecodedFrames:
    """Decode every frame of an animated GIF, APNG or WebP (a still file gives one frame) into
    memory: for large animations iterate :func:`open_frames` instead.

    Limits as :func:`open_frames`. Frames share the first frame's colour profile and EXIF
    orientation.
    Raises: :class:`MultiFrameImage` for several pictures that are not an animation (multi-page
        TIFF and the like), and what :func:`decode_image` raises.
    """
    with open_frames(path, max_pixels=max_pixels, max_bytes=max_bytes, max_side=max_side,
                     max_frames=max_frames, max_total_pixels=max_total_pixels,
                     max_scans=max_scans) as reader:
        frames = list(reader)
        return DecodedFrames(frames, [f.duration_ms for f in frames], reader.loop, reader.format)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """``decode_image(path).rgb``: uint8 (H, W, 3) sRGB of the first picture (training's view).

    Raises :class:`UnreadableImage`.
    """
    return decode_image(path).rgb


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


# torch is imported inside the converters: reading images and rendering landmark maps must not
# pay for importing torch (the landmark cache and prepare.py run without it).
def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) in [-1, 1] (x / 127.5 - 1), a copy."""
    import torch

    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (B, 3, H, W) in [-1, 1] (clamped) -> uint8 (H, W, 3) or (B, H, W, 3)."""
    import torch

    u8 = ((x.detach().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return u8.movedim(-3, -1).cpu().numpy()
