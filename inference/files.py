"""The batch file driver of ``cartoonize.py``: files and folders in, cartoons out.

:func:`collect_jobs` turns the inputs into :class:`Job` s (where each result goes, never over an
input); :func:`cartoonize_files` runs them one by one through a
:class:`inference.cartoonizer.Cartoonizer`: images are decoded by :mod:`media.decode` (the same
RGB that training and evaluation see: EXIF orientation, sRGB, 16-bit scaled, invisible pixels
filled, alpha and the gray flag kept) and written as sRGB-tagged PNGs (:mod:`media.encode`; gray
stays gray, alpha is re-attached unchanged); animations (GIF, APNG, WebP) become animated PNGs
with every frame, the frame times and the loop count kept; videos are transcoded to H.264 by
:func:`media.transcode.transcode`, ``.mov`` staying ``.mov`` and every other video becoming
``.mp4`` (H.264 needs an MP4 or QuickTime container).

Every problem with one file becomes one line naming it (and, for a limit, the option that raises
it), so the batch reports it and goes on.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from inference.cartoonizer import Cartoonizer
from inference.temporal import DEFAULT_FLOW_MAX_SIDE
from media.decode import DecodedFrames, DecodedImage, FrameReader, decode_frames, decode_image, open_frames
from media.encode import animation_writer, write_image
from media.errors import ImageTooLarge, UnreadableImage, os_reason
from media.limits import DEFAULT_MAX_ANIMATION_PIXELS, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from inference.clips import stylize_animation, transcode_clip
from media.transcode import TranscodeResult
from utils.errors import ToonFaceError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv")
# Each limit of media.decode and the option that raises it.
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
    """The first picture of an image file, by :func:`media.decode.decode_image` (the one
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
    """Every frame of an image file (one for a still), by :func:`media.decode.decode_frames`,
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
    """An image file opened for decoding frame by frame (:func:`media.decode.open_frames`):
    iterate the reader for the frames of an animation, or the one picture of a still file.

    ``max_pixels`` (per frame; None: Pillow's ``MAX_IMAGE_PIXELS``), ``max_bytes`` and
    ``max_animation_pixels`` (frames x canvas pixels) are checked before any pixel is decoded,
    and JPEGs with more than ``media.limits.MAX_JPEG_SCANS`` scans are refused. Every
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


def cartoonize_files(toon: Cartoonizer, jobs: list[Job], *, max_pixels: int | None, max_bytes: int | None,
                     max_animation_pixels: int | None = None,
                     batch: int = 1, progress: bool = True, temporal: float = 0.0,
                     flow_max_side: int | None = DEFAULT_FLOW_MAX_SIDE,
                     report: Callable[[str], Any] = print,
                     on_video: Callable[[Any, Any], Any] | None = None) -> list[str]:
    """Process ``inference.files.Job`` s one by one; returns one error line per failed job.

    Videos are transcoded by :func:`inference.clips.transcode_clip` (H.264, audio kept) through
    :meth:`Cartoonizer.video`; animations go through it as well, decoded and written frame by
    frame. ``max_pixels`` (per image or frame), ``max_bytes`` (image files) and
    ``max_animation_pixels`` (frames x canvas pixels; None: ``media.limits``'s default) are
    checked before decoding. ``temporal``/``flow_max_side``:
    the stabiliser (:class:`inference.temporal.TemporalStabilizer`; 0 = off). ``on_video(job,
    result)`` is called after each video is written (``result``: its
    :class:`media.transcode.TranscodeResult`). A failure (unreadable file, limit exceeded, ...)
    is reported through ``report`` and the batch goes on.
    """
    from tqdm import tqdm

    errors: list[str] = []
    for job in tqdm(jobs, desc="files", unit="file", disable=not progress or len(jobs) < 2):
        toon.notice = lambda msg, src=job.src: report(f"notice: {src}: {msg}")
        try:
            if job.kind == "image":
                _cartoonize_image(toon, job, max_pixels, max_bytes, max_animation_pixels, batch,
                                  temporal, flow_max_side, report)
            else:
                result = _cartoonize_video(toon, job, max_pixels, batch, progress, temporal,
                                           flow_max_side, report)
                if on_video is not None:
                    on_video(job, result)
        except ToonFaceError as exc:
            errors.append(str(exc))
            report(f"error: {exc}")
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            msg = f"{job.src}: failed ({type(exc).__name__}: {exc})"
            errors.append(msg)
            report(f"error: {msg}")
    return errors


def _cartoonize_image(toon: Cartoonizer, job: Job, max_pixels: int | None, max_bytes: int | None,
                      max_animation_pixels: int | None, batch: int, temporal: float,
                      flow_max_side: int | None, report: Callable[[str], Any]) -> None:
    """A still image -> PNG; an animation -> animated PNG, every frame, its times and loop kept.

    The decoded RGB is sRGB with invisible pixels filled (:mod:`media.decode`), so the cartoon
    depends only on what is visible; the file's alpha is re-attached unchanged. An animation's
    frames are a clip: they go through :meth:`Cartoonizer.video` (face tracking, ``temporal``),
    ``batch`` at a time, decoded and written as they go (memory holds a batch, not the
    animation).
    """
    budget = DEFAULT_MAX_ANIMATION_PIXELS if max_animation_pixels is None else max_animation_pixels
    with image_frames(job.src, max_pixels=max_pixels, max_bytes=max_bytes,
                      max_animation_pixels=budget) as reader:
        if reader.frames == 1:
            frame = reader.read()
            for note in frame.notes:
                report(f"notice: {job.src}: {note}")
            write_image(job.dst, toon.stylize_batch([frame.rgb])[0], frame.alpha, frame.gray)
            return
        clip = toon.video(temporal, flow_max_side)
        with animation_writer(job.dst, alpha=reader.has_alpha, gray=reader.gray,
                              loop=reader.loop) as out:
            stylize_animation(_noted(reader, job.src, report), clip,
                              lambda f, cartoon: out.add(cartoon, f.alpha, f.duration_ms),
                              batch=max(1, batch))
        for note in clip.notices():
            report(f"notice: {job.src}: {note}")
        loop = "forever" if reader.loop == 0 else f"{reader.loop} play(s)"
        report(f"notice: {job.src}: {reader.frames}-frame {reader.format} animation written as an "
               f"animated PNG (frame times kept, loop {loop})")


def _cartoonize_video(toon: Cartoonizer, job: Job, max_pixels: int | None, batch: int, progress: bool,
                      temporal: float, flow_max_side: int | None, report: Callable[[str], Any]
                      ) -> TranscodeResult:
    """One video -> H.264 MP4/MOV at ``job.dst`` (see :mod:`media.transcode`); returns its
    :class:`media.transcode.TranscodeResult`. Nothing is left at ``job.dst`` on failure."""

    def notice(msg: str) -> None:
        report(f"notice: {job.src}: {msg}")

    return transcode_clip(job.src, job.dst, toon.video(temporal, flow_max_side), batch=batch,
                          progress=progress, max_pixels=max_pixels, notice=notice)


def _noted(frames, src, report: Callable[[str], Any]):
    """An animation's frames, its file's notes reported as the frames come (the first frame
    carries them)."""
    for frame in frames:
        if frame.frames > 1:
            for note in frame.notes:
                report(f"notice: {src}: {note}")
        yield frame
