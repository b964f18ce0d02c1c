"""The one clip pipeline: a video or an animated picture, frame by frame in order, through a
:class:`inference.cartoonizer.VideoStylizer` (``Cartoonizer.video``: face tracking and smoothing
in portrait mode, the ``--temporal`` stabiliser, the strength blend).

The command line (cartoonize.py, through ``inference.files.cartoonize_files``) and the
service (serving/jobs.py for video jobs, serving/app.py for animated uploads) both run their
clips through these two functions, so one file and one set of options give the same frames
whichever way it came in:

- :func:`stylize_animation`: decoded frames (an animated PNG/GIF/WebP's) -> ``add(frame,
  cartoon)`` in order, ``batch`` frames per call of the clip;
- :func:`transcode_clip`: a video file -> an H.264 file (:func:`media.transcode.transcode`:
  audio copied, time stamps kept), ``batch`` frames per call of the clip.

Decoding and encoding stay the caller's: the command line reads animations in its own process,
the service in a decoder process (serving/decoder.py) under its deadline.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from media.transcode import TranscodeResult, transcode


class Clip(Protocol):
    """What runs a clip's frames (``Cartoonizer.video()`` gives one): consecutive (H, W, 3)
    uint8 frames in, as many cartoons out; ``notices()``: its remarks about the whole clip."""

    def __call__(self, frames: list[np.ndarray]) -> Sequence[np.ndarray]: ...

    def notices(self) -> list[str]: ...


def stylize_animation(frames: Iterable[Any], clip: Callable[[list[np.ndarray]], Sequence[np.ndarray]], add: Callable[[Any, np.ndarray], Any], *,
                      batch: int = 1, before_batch: Callable[[list[Any]], Any] | None = None) -> int:
    """Run decoded ``frames`` (objects with ``.rgb``, (H, W, 3) uint8) through ``clip`` in
    order, ``batch`` at a time, and call ``add(frame, cartoon)`` for each, in order.

    ``before_batch(pending)`` runs before each batch goes to the clip (a deadline or a cancel
    flag: it raises to stop). Memory holds one batch, not the animation. Returns the number
    of frames done. Raises ValueError for ``batch`` < 1.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    pending: list[Any] = []
    done = 0

    def flush() -> None:
        nonlocal done
        if before_batch is not None:
            before_batch(pending)
        for frame, cartoon in zip(pending, clip([f.rgb for f in pending])):
            add(frame, cartoon)
        done += len(pending)
        pending.clear()

    for frame in frames:
        pending.append(frame)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return done


def transcode_clip(src: str | os.PathLike, dst: str | os.PathLike, clip: Clip, *, batch: int = 1,
                   progress: bool = False, before_batch: Callable[[list[np.ndarray]], Any] | None = None,
                   after_batch: Callable[[list[np.ndarray]], Any] | None = None,
                   notice: Callable[[str], Any] | None = None, max_pixels: int | None = None,
                   max_side: int | None = None) -> TranscodeResult:
    """The video ``src`` through ``clip`` into ``dst`` (H.264 MP4/MOV, see
    :func:`media.transcode.transcode`), ``batch`` frames per call.

    ``before_batch(frames)`` runs before each batch goes to the clip (a cancel flag, a frame
    limit: it raises to stop; transcode then leaves nothing at ``dst``), ``after_batch(frames)``
    after the clip returned their cartoons (progress). ``notice`` receives the
    reader's and writer's one-line remarks as they arise; the result's ``notices`` hold them
    and, after them, the clip's own (``clip.notices()`` where it has one: frames without a
    face). ``max_pixels``/``max_side``: every frame's limits. Raises ToonFaceError for an
    unusable input or output.
    """

    def process(frames: list[np.ndarray]) -> Sequence[np.ndarray]:
        if before_batch is not None:
            before_batch(frames)
        outs = clip(frames)
        if after_batch is not None:
            after_batch(frames)
        return outs

    result = transcode(src, dst, process, batch=batch, progress=progress, max_pixels=max_pixels,
                       max_side=max_side, notice=notice)
    clip_notices = clip.notices()
    for msg in clip_notices:
        if notice is not None:
            notice(msg)
    result.notices.extend(clip_notices)
    return result
