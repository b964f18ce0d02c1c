"""Transcoding a video through a frame function: decode -> process -> H.264, streaming.

:func:`transcode` hands ``batch`` frames of a :class:`media.video_reader.VideoReader` to a
process function and encodes its results with a :class:`media.video_writer.VideoWriter` as they
come, so memory holds ``batch`` frames plus x264's look-ahead (about 45 frames at preset medium)
whatever the length of the video: measured by ``bench/bench_video.py``, +82 MiB at 640x480 for
150 and for 1500 frames alike. Audio is copied, rotation honoured, time stamps kept.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from media.container import ffmpeg_reason
from media.video_reader import DecodedFrame, VideoInfo, VideoReader
from media.video_writer import DEFAULT_CRF, DEFAULT_PRESET, OUTPUT_EXTS, VideoWriter
from utils.errors import ToonFaceError


@dataclass
class TranscodeResult:
    """What :func:`transcode` wrote: ``path``, ``frames`` encoded, the input's ``info``,
    ``notices`` (one-line remarks for the user) and the output's coded ``size`` (width, height)."""

    path: Path
    frames: int
    info: VideoInfo
    size: tuple[int, int]
    notices: list[str] = field(default_factory=list)


def transcode(src: str | os.PathLike, dst: str | os.PathLike,
              process: Callable[[list[np.ndarray]], Sequence[np.ndarray]], *,
              batch: int = 1, progress: bool = True, crf: int = DEFAULT_CRF,
              preset: str = DEFAULT_PRESET, max_pixels: int | None = None,
              max_side: int | None = None,
              notice: Callable[[str], Any] | None = None) -> TranscodeResult:
    """Decode ``src``, run ``process`` on its frames, encode the results to ``dst``.

    ``process`` receives lists of up to ``batch`` upright RGB uint8 (H, W, 3) frames and must
    return as many frames of the same size, in order. Each output frame keeps its input frame's
    time stamp; audio is copied (see the module notes). ``dst`` must end in .mp4, .m4v or .mov;
    it appears only when complete. ``progress`` shows a tqdm bar (frames, frames/s, ETA).
    ``notice`` receives each one-line remark as it arises (they are also in the result).
    ``max_pixels``/``max_side``: every frame's limits (see :class:`VideoReader`).

    Raises :class:`ToonFaceError` for an unusable input or output (nothing is left at ``dst``),
    ``ValueError`` when ``process`` returns the wrong number or size of frames.
    """
    import av
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if dst.suffix.lower() not in OUTPUT_EXTS:
        raise ToonFaceError(f"{dst}: video output must be {', '.join(OUTPUT_EXTS)} "
                            f"(H.264 in MP4/QuickTime), not {dst.suffix or '(no extension)'}")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ToonFaceError(f"{dst}: the output would overwrite its input")
    notices: list[str] = []

    def remark(msg: str) -> None:
        notices.append(msg)
        if notice is not None:
            notice(msg)

    reader = VideoReader(src, max_pixels=max_pixels, max_side=max_side)
    info = reader.info
    writer = None
    try:
        writer = VideoWriter(dst, info.width, info.height, time_base=info.time_base,
                             frame_rate=info.average_rate, audio_from=reader.audio_streams,
                             crf=crf, preset=preset, display_matrix=info.display_matrix,
                             color_primaries=info.color_primaries, color_trc=info.color_trc)
        for msg in writer.notices:
            remark(msg)
        if info.display_matrix is not None:
            remark(f"display rotation of {info.rotation:g} degrees (clockwise) is not a right "
                   "angle; frames are kept as stored and the rotation is carried in the output's "
                   "metadata")
        if reader.unknown_audio_count:
            remark(f"{reader.unknown_audio_count} audio stream(s) in a codec FFmpeg does not know "
                   "left out")
        if reader.subtitle_count:
            remark(f"{reader.subtitle_count} subtitle stream(s) not carried over")
        bar = tqdm(total=info.expected_frames, desc=src.name, unit="frame", disable=not progress)
        pending: list[DecodedFrame] = []

        def flush() -> None:
            outs = list(process([f.rgb for f in pending]))
            if len(outs) != len(pending):
                raise ValueError(f"process returned {len(outs)} frames for {len(pending)}")
            for f, out in zip(pending, outs):
                writer.write(np.asarray(out), f.pts, f.duration)
            bar.update(len(pending))
            pending.clear()

        try:
            for item in reader.frames_and_audio():
                if isinstance(item, DecodedFrame):
                    pending.append(item)
                    if len(pending) >= batch:
                        flush()
                else:
                    writer.write_audio(item)
            if pending:
                flush()
        finally:
            bar.close()
        if reader.damaged_packets:
            remark(f"{reader.damaged_packets} damaged video packet(s) in the input (stream "
                   "errors); decoded with FFmpeg's error concealment")
        frames = writer.frames
        path = writer.close()
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        reader.close()
        if isinstance(exc, av.error.FFmpegError):  # muxing the input's streams failed
            raise ToonFaceError(f"{src}: cannot convert to {dst.name} ({ffmpeg_reason(exc)}; "
                                "the input's streams may be damaged)") from None
        raise
    return TranscodeResult(path, frames, info, writer.coded_size, notices)
