"""Finding and decoding image files: the one decoding path of the project.

Training (:mod:`datasets.folders`, the landmark cache), evaluation (``load_crops``),
inference (:func:`inference.files.read_image`) and the service (:mod:`serving.decoder`) all call :func:`decode_image` (or
:func:`decode_frames` for every frame of an animation), so one file gives the same RGB array
everywhere. The rules, in the order they apply:

1. Limits, before any pixel is decoded: the file size (``max_bytes``), the pixel count from
   the header (``max_pixels``; default ``PIL.Image.MAX_IMAGE_PIXELS``, read at call time) and
   the longer side (``max_side``), for every frame; an animation's frame count (``max_frames``)
   and frames x canvas pixels (``max_total_pixels``: what decoding all of it costs, counted from
   the file's structure, :func:`media.layout.picture_count`); a JPEG's scans (``max_scans``, default
   :data:`media.limits.MAX_JPEG_SCANS`: each scan is another pass over the image, so a small file of
   thousands of scans would keep the decoder busy for minutes, :func:`media.limits.jpeg_scans_over`).
   Within a call our pixel limit replaces Pillow's decompression-bomb check (scoped to the
   calling thread's context, see :func:`media.limits.pixel_limit`), so a larger ``max_pixels`` really
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
   :func:`media.colour.fill_invisible`), so the RGB handed to the generator or to training never depends on
   what a program happened to store under alpha = 0. A fully transparent image is
   :data:`media.colour.TRANSPARENT_FILL` gray.
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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from media.colour import fill_invisible, sixteen_to_eight, srgb_transform, to_srgb
from media.errors import ImageTooLarge, MultiFrameImage, UnreadableImage, first_line
from media.layout import play_count, read_layout
from media.limits import (MAX_JPEG_SCANS, OverPixelLimit, check_bytes, check_pixels, jpeg_scans_over,
                          pixel_limit)


# Formats whose frames are an animation with display times; they are written back as APNG.
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")

_EXIF_ORIENTATION = 0x0112
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


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


def _decode_loaded(im: Image.Image, sixteen, orientation: int, transform_for) -> DecodedImage:
    colour, cms_mode, alpha, gray, bits = _samples(im, sixteen)
    colour, alpha = _orient(colour, orientation), _orient(alpha, orientation)
    transform, note = transform_for(cms_mode)
    rgb, failed = to_srgb(colour, cms_mode, transform)
    note = note or failed
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha, dtype=np.uint8)
        rgb = fill_invisible(rgb, alpha)
    rgb = np.array(rgb, dtype=np.uint8, order="C", copy=True)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise UnreadableImage("zero-size image")
    return DecodedImage(rgb, alpha, gray, bits, 1, (note,) if note else ())


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
        check_bytes(self.path, max_bytes)
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
        layout = read_layout(im, self.path)
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
        self.loop = play_count(im)
        self.has_alpha = (im.mode in _ALPHA_MODES or "transparency" in im.info
                          or layout.transparency)
        self.gray = im.mode in _GRAY_MODES and not layout.palettes
        self._icc = im.info.get("icc_profile")
        self._transforms: dict[str, tuple] = {}
        self._orientation = 1

    def _check_size(self, size: tuple[int, int]) -> None:
        if self._max_side is not None and max(size) > self._max_side:  # the side first: the
            raise ImageTooLarge("side", max(size), self._max_side, size)  # limit a user sets
        check_pixels(size, self._limit, self._default_limit)

    @contextlib.contextmanager
    def _decoding(self) -> Iterator[None]:
        """Our pixel limit in place of Pillow's, and every failure as UnreadableImage."""
        from PIL import UnidentifiedImageError

        try:
            with pixel_limit(self._limit):
                yield
        except UnreadableImage:
            raise
        except OverPixelLimit as exc:
            self._check_size(exc.size)  # over the side limit: say that
            raise ImageTooLarge("pixels", exc.size[0] * exc.size[1], self._limit, exc.size,
                                self._default_limit) from None
        except Image.DecompressionBombError as exc:  # Pillow's own check, should ours be bypassed
            raise UnreadableImage(f"too many pixels ({first_line(exc)})") from None
        except UnidentifiedImageError:
            raise UnreadableImage("not a readable image (unsupported format or corrupt)") from None
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
            raise UnreadableImage(f"cannot decode image (corrupt or truncated: {first_line(exc)})") from None

    def _transform_for(self, cms_mode: str):
        if cms_mode not in self._transforms:
            self._transforms[cms_mode] = srgb_transform(self._icc, cms_mode)
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
