"""Finding and decoding image files: the one decoding path of the project.

Training (:mod:`datasets.folders`, the landmark cache), evaluation (``load_crops``) and
inference (:func:`inference.io.read_image`) all call :func:`decode_image` (or
:func:`decode_frames` for every frame of an animation), so one file gives the same RGB array
everywhere. The rules, in the order they apply:

1. Limits, before any pixel is decoded: the file size (``max_bytes``) and the pixel count from
   the header (``max_pixels``; default ``PIL.Image.MAX_IMAGE_PIXELS``, read at call time), for
   every frame. Within a call our limit replaces Pillow's decompression-bomb check (scoped to
   the calling thread's context, see :func:`_pixel_limit`), so a larger ``max_pixels`` really
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
   (:attr:`DecodedImage.frames`). :func:`decode_frames` decodes every frame of an animation
   (GIF, APNG, WebP) with its display time and loop count; other multi-frame files (multi-page
   TIFF, ...) raise :class:`MultiFrameImage`. Not counted as frames: the extra pictures of an
   MPO (camera previews, stereo pairs) and reduced-resolution TIFF subfiles (thumbnails).

Every problem raises :class:`UnreadableImage` (never a PIL, cv2 or LittleCMS error) with a short
reason, so folder scans can skip and report files.
"""
from __future__ import annotations

import contextlib
import contextvars
import io
import os
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

_EXIF_ORIENTATION = 0x0112
_TIFF_NEW_SUBFILE_TYPE = 254
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class UnreadableImage(OSError):
    """The file is not a decodable image; the message says why in a few words."""


class ImageTooLarge(UnreadableImage):
    """A valid image over a pixel or byte limit. ``what`` is "pixels" or "bytes"; ``size`` is
    (width, height) for pixels; ``count`` and ``limit`` are in ``what``; ``default_limit`` is True
    when the pixel limit is Pillow's ``MAX_IMAGE_PIXELS`` (no limit was given)."""

    def __init__(self, what: str, count: int, limit: int, size: tuple[int, int] | None = None,
                 default_limit: bool = False):
        self.what, self.count, self.limit, self.size = what, count, limit, size
        self.default_limit = default_limit
        if what == "pixels":
            w, h = size or (count, 1)
            source = " (PIL.Image.MAX_IMAGE_PIXELS)" if default_limit else ""
            msg = f"image is {w}x{h} = {count:,} pixels, over the limit of {limit:,} pixels{source}"
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
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    gray: bool = False
    bit_depth: int = 8
    frames: int = 1
    notes: tuple[str, ...] = ()


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
def picture_count(im: Image.Image) -> int:
    """Pictures in an opened file: its frames, less MPO extras and reduced-resolution TIFF
    subfiles (NewSubfileType bit 0, thumbnails). Leaves ``im`` on frame 0."""
    n = int(getattr(im, "n_frames", 1) or 1)
    if n <= 1 or im.format == "MPO":
        return 1
    if im.format == "TIFF":
        full = 0
        for i in range(n):
            im.seek(i)
            full += not (int(im.tag_v2.get(_TIFF_NEW_SUBFILE_TYPE, 0)) & 1)
        im.seek(0)
        return max(full, 1)
    return n


def _play_count(im: Image.Image) -> int:
    loop = im.info.get("loop")
    if im.format == "GIF":
        return 1 if loop is None else (0 if int(loop) == 0 else int(loop) + 1)
    return 0 if loop is None else int(loop)


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


def _decode(path: str | os.PathLike, max_pixels: int | None, max_bytes: int | None,
            every_frame: bool) -> DecodedFrames:
    from PIL import UnidentifiedImageError

    path = Path(path)
    _check_bytes(path, max_bytes)
    default_limit = max_pixels is None
    limit = Image.MAX_IMAGE_PIXELS if default_limit else int(max_pixels)
    if limit is not None and limit <= 0:
        raise ValueError(f"max_pixels must be > 0, got {limit}")
    try:
        with _pixel_limit(limit), Image.open(path) as im:
            _check_pixels(im.size, limit, default_limit)
            count = picture_count(im)
            if every_frame and count > 1 and im.format not in ANIMATED_FORMATS:
                unit = "pages" if im.format == "TIFF" else "frames"
                raise MultiFrameImage(
                    f"holds {count} {unit} ({im.format}, not an animation); only single images "
                    f"and animations ({', '.join(ANIMATED_FORMATS)}) are supported: save the "
                    f"{unit} as separate files")
            icc = im.info.get("icc_profile")
            sixteen = _sixteen_bit_colour(path, im) if count == 1 else None
            im.load()  # full decode of frame 0: truncated files fail here, not in a worker
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            transforms: dict[str, tuple] = {}

            def transform_for(cms_mode: str):
                if cms_mode not in transforms:
                    transforms[cms_mode] = _srgb_transform(icc, cms_mode)
                return transforms[cms_mode]

            loop = _play_count(im)
            frames, durations = [], []
            for i in range(count if every_frame and im.format in ANIMATED_FORMATS else 1):
                if i:
                    im.seek(i)
                    _check_pixels(im.size, limit, default_limit)
                    im.load()
                frames.append(_decode_loaded(im, sixteen if i == 0 else None, orientation, transform_for))
                durations.append(float(im.info.get("duration") or 0.0))
            fmt = im.format or ""
    except UnreadableImage:
        raise
    except _OverLimit as exc:
        raise ImageTooLarge("pixels", exc.size[0] * exc.size[1], limit, exc.size, default_limit) from None
    except Image.DecompressionBombError as exc:  # Pillow's own check, should ours be bypassed
        raise UnreadableImage(f"too many pixels ({_first_line(exc)})") from None
    except UnidentifiedImageError:
        raise UnreadableImage("not a readable image (unsupported format or corrupt)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise UnreadableImage(f"cannot decode image (corrupt or truncated: {_first_line(exc)})") from None
    first = frames[0]
    frames[0] = DecodedImage(first.rgb, first.alpha, first.gray, first.bit_depth, count, first.notes)
    return DecodedFrames(frames, durations, loop, fmt)


def decode_image(path: str | os.PathLike, *, max_pixels: int | None = None,
                 max_bytes: int | None = None) -> DecodedImage:
    """Decode the first picture of an image file by the rules of this module.

    Args:
        path: the file (any format Pillow opens; content decides, not the extension).
        max_pixels: refuse pictures with more pixels (width x height, per frame); None means
            Pillow's ``Image.MAX_IMAGE_PIXELS`` at call time (about 89.5 M; no limit if it is
            None). Governs Pillow's decompression-bomb check within this call only.
        max_bytes: refuse files larger than this; None = no limit.
    Returns: :class:`DecodedImage` (``frames`` says how many pictures the file holds).
    Raises: :class:`ImageTooLarge` (over a limit), :class:`UnreadableImage` (missing, empty,
        not an image, corrupt or truncated).
    """
    return _decode(path, max_pixels, max_bytes, every_frame=False).frames[0]


def decode_frames(path: str | os.PathLike, *, max_pixels: int | None = None,
                  max_bytes: int | None = None) -> DecodedFrames:
    """Decode every frame of an animated GIF, APNG or WebP (a still file gives one frame).

    Limits as :func:`decode_image` (``max_pixels`` applies to each frame). Frames share the first
    frame's colour profile and EXIF orientation.
    Raises: :class:`MultiFrameImage` for several pictures that are not an animation (multi-page
        TIFF and the like), and what :func:`decode_image` raises.
    """
    return _decode(path, max_pixels, max_bytes, every_frame=True)


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
