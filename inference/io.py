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

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.images import (DecodedFrames, DecodedImage, ImageTooLarge, UnreadableImage,
                             decode_frames, decode_image)
from utils.errors import ToonFaceError
from utils.io import atomic_write_bytes

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv")
# The seed's limits; --max-pixels / --max-bytes raise them.
DEFAULT_MAX_PIXELS = 3000 * 3000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


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
    if isinstance(exc, ImageTooLarge):
        msg += f"; raise it with --max-{exc.what}"
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
                max_bytes: int | None = DEFAULT_MAX_BYTES) -> DecodedFrames:
    """Every frame of an image file (one for a still), by :func:`datasets.images.decode_frames`.

    Limits and errors as :func:`read_image` (``max_pixels`` per frame); several pictures that are
    not an animation (a multi-page TIFF) are one ToonFaceError line naming the count.
    """
    try:
        return decode_frames(path, max_pixels=max_pixels, max_bytes=max_bytes)
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


def encode_apng(frames: list[np.ndarray], alphas: list[np.ndarray | None], durations_ms: list[float],
                loop: int, gray: bool = False) -> bytes:
    """sRGB-tagged animated PNG of full (H, W, 3) uint8 frames.

    alphas: per frame (H, W) uint8 or None (opaque; all frames get alpha when one has it).
    durations_ms: display time per frame; loop: plays, 0 = forever. Each frame replaces the
    previous one whole (dispose none, blend source), so transparency never shows an older
    frame. Pillow merges identical consecutive frames into one longer frame (same timeline).
    """
    if not frames or len(alphas) != len(frames) or len(durations_ms) != len(frames):
        raise ValueError("encode_apng needs as many alphas and durations as frames (>= 1)")
    if any(a is not None for a in alphas):
        opaque = np.full(frames[0].shape[:2], 255, np.uint8)
        alphas = [opaque if a is None else a for a in alphas]
    ims = [_output_image(f, a, gray) for f, a in zip(frames, alphas)]
    buf = io.BytesIO()
    ims[0].save(buf, format="PNG", save_all=True, append_images=ims[1:],
                duration=[float(d) for d in durations_ms], loop=int(loop), disposal=0, blend=0,
                **_srgb_tag(gray))
    return buf.getvalue()


def write_image(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None,
                gray: bool = False) -> None:
    """Write a PNG atomically (see :func:`encode_png`)."""
    atomic_write_bytes(path, encode_png(rgb, alpha, gray))


def write_animation(path: str | os.PathLike, frames: list[np.ndarray], alphas: list[np.ndarray | None],
                    durations_ms: list[float], loop: int, gray: bool = False) -> None:
    """Write an animated PNG atomically (see :func:`encode_apng`)."""
    atomic_write_bytes(path, encode_apng(frames, alphas, durations_ms, loop, gray))


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
