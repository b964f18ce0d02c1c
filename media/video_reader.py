"""Reading a video: upright RGB frames of its first video stream, with their time stamps, and
its audio packets for copying (FFmpeg through PyAV).

Frames come out as RGB uint8 (H, W, 3), upright: the stream's display matrix (phones store
portrait clips landscape with a 90 degree rotation in it) is applied with the rule FFmpeg's own
command line uses (``fftools/ffmpeg_filter.c``, ``autorotate``; :mod:`media.orientation`), so a
model sees upright faces. Each frame keeps its presentation time stamp. Colours are converted
with the matrix and range the stream declares (BT.601 when it declares none); primaries and
transfer are left as they are and carried to the output's tags (so HDR stays tagged HDR).

Damaged input: a file cut short is refused before decoding (:mod:`media.container`). A packet
flagged corrupt in the middle of the stream (an MPEG-TS continuity error) is decoded with
FFmpeg's error concealment and reported in ``damaged_packets``; one at the very end (a cut frame)
is an error.

Every problem with the input raises :class:`~utils.errors.ToonFaceError` with a one-line message.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np

from media.container import AVCOL_UNSPECIFIED, check_input_path, declared_end, ffmpeg_reason
from media.orientation import apply_orientation, frame_display_matrix, orientation_filters
from utils.errors import ToonFaceError

# FFmpeg's decoders refuse frames over this many times a reader's pixel limit before allocating
# them (their check counts the row stride, up to 63 px wider than the frame, so the cap cannot
# be the limit itself without refusing frames within it).
DECODER_CAP_FACTOR = 2


class DecodedFrame(NamedTuple):
    """One decoded video frame.

    ``rgb``: (H, W, 3) uint8, upright. ``pts``: presentation time stamp in
    :attr:`VideoInfo.time_base` units (strictly increasing). ``time``: ``pts`` in seconds.
    ``index``: 0-based position in decoding output order. ``duration``: how long the frame is
    shown, in ``time_base`` units (0 when the container does not say).
    """

    rgb: np.ndarray
    pts: int
    time: float
    index: int
    duration: int = 0


@dataclass(frozen=True)
class VideoInfo:
    """What the container and the first decoded frame say about a video stream.

    ``width``/``height``: pixels of the frames :class:`VideoReader` yields (after rotation).
    ``stored_width``/``stored_height``: as coded. ``frame_count``: from the container header,
    ``None`` when the container does not say (Matroska/WebM, some AVI). ``average_rate``: frames
    per second over the whole stream, exact (the container's average; 0 when unknown; for a
    variable frame rate the real per-frame times are in :attr:`DecodedFrame.pts`).
    ``time_base``: seconds per ``pts`` unit. ``duration``: seconds, ``None`` when unknown.
    ``rotation``: clockwise degrees the display matrix asks for (0 when none). ``orientation``:
    the FFmpeg filters applied to make frames upright, e.g. ``("transpose=clock",)``; empty
    when none. ``display_matrix``: the raw matrix (9 int32) when it is carried to the output
    instead of applied, else ``None``. ``audio_codecs``: one name per copied audio stream.
    ``color_primaries``/``color_trc``: FFmpeg enum values of the stream (2: unspecified).
    """

    path: Path
    codec: str
    width: int
    height: int
    stored_width: int
    stored_height: int
    frame_count: int | None
    average_rate: Fraction
    time_base: Fraction
    duration: float | None
    rotation: float
    orientation: tuple[str, ...]
    display_matrix: tuple[int, ...] | None
    audio_codecs: tuple[str, ...]
    color_primaries: int = AVCOL_UNSPECIFIED
    color_trc: int = AVCOL_UNSPECIFIED

    @property
    def average_fps(self) -> float:
        return float(self.average_rate)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_codecs)

    @property
    def expected_frames(self) -> int | None:
        """``frame_count``, or an estimate from duration x average fps (for a progress bar)."""
        if self.frame_count:
            return self.frame_count
        if self.duration and self.average_fps:
            return max(1, round(self.duration * self.average_fps))
        return None



class VideoReader:
    """Upright RGB frames of a video file's first video stream, with their time stamps.

    Opening decodes the first frame, so a file that cannot give one (no video stream, 0 frames,
    unknown codec, corrupt data) fails here with a :class:`ToonFaceError` rather than later.
    Iterate once over the reader for :class:`DecodedFrame` s; data that ends mid-frame or that
    the decoder rejects also raises :class:`ToonFaceError` there. Damaged packets inside the
    stream are concealed by the decoder and counted in ``damaged_packets``. Use as a context
    manager or call :meth:`close`.

    ``max_pixels``: refuse frames with more pixels than this; ``max_side``: with a longer side
    than this (``None``: no limit). Every frame is checked, not only the first (a stream may
    change size at any frame): the size the container declares before anything is decoded,
    then each frame's own size before it is converted. A frame's size is only known once the
    decoder has read its header, and the decoder allocates the frame right then, so FFmpeg's
    own cap (the codec option ``max_pixels``, which ``ff_get_buffer`` and ``ff_set_dimensions``
    check before allocating, also while the container is probed) is set to
    :data:`DECODER_CAP_FACTOR` x the limit: a frame far over the limit is refused before any
    memory is given to it, one just over it is decoded (at most twice the limit) and refused.
    """

    def __init__(self, path: str | os.PathLike, max_pixels: int | None = None,
                 max_side: int | None = None):
        import av

        self.path = Path(path)
        self._max_pixels, self._max_side = max_pixels, max_side
        limit = min(v for v in (max_pixels, max_side * max_side if max_side else None, 2**62) if v)
        # None: no cap. Else the bound FFmpeg's decoders check before allocating a frame.
        self._decoder_cap = None if limit == 2**62 else min(DECODER_CAP_FACTOR * limit, 2**31 - 1)
        options = {} if self._decoder_cap is None else {"max_pixels": str(self._decoder_cap)}
        check_input_path(self.path)
        # Before FFmpeg: a cut file also fails as "invalid data" or shows missing streams.
        size, declared = self.path.stat().st_size, declared_end(self.path)
        if declared is not None and declared > size:
            raise ToonFaceError(f"{self.path}: truncated: its structure declares {declared} bytes, "
                                f"the file has {size} (the file is damaged or incomplete)")
        try:
            # options reach the decoders that avformat_find_stream_info opens to probe streams
            self._container = av.open(str(self.path), metadata_errors="ignore", options=options)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise ToonFaceError(f"{self.path}: not a readable video ({ffmpeg_reason(exc)}; "
                                "unsupported, damaged or incomplete)") from None
        try:
            self._open()
        except BaseException:
            self._container.close()
            raise

    def _open(self) -> None:
        c = self._container
        if not c.streams.video:
            kinds = sorted({s.type for s in c.streams})
            if kinds == ["audio"]:
                raise ToonFaceError(f"{self.path}: no video stream (audio only)")
            what = f"only {', '.join(kinds)} streams" if kinds else "no streams"
            raise ToonFaceError(f"{self.path}: no video stream ({what}; the file may be damaged, "
                                "incomplete or not a video)")
        vs = c.streams.video[0]
        if vs.codec_context is None:
            raise ToonFaceError(f"{self.path}: unsupported video codec (this FFmpeg build has no "
                                "decoder for it)")
        vs.thread_type = "AUTO"
        if self._decoder_cap is not None:  # set before the first decode opens the decoder
            vs.codec_context.options = {**vs.codec_context.options,
                                        "max_pixels": str(self._decoder_cap)}
        declared = (vs.codec_context.width, vs.codec_context.height)
        if min(declared) > 0:
            self._check_size(*declared, "video (as its container declares it)")
        self._video = vs
        # Audio streams whose packets the writer copies; a codec FFmpeg does not know cannot
        # be muxed either, so those are left out (and counted for a notice).
        self.audio_streams = tuple(s for s in c.streams.audio if s.codec_context is not None)
        self.unknown_audio_count = len(c.streams.audio) - len(self.audio_streams)
        self.subtitle_count = len(c.streams.subtitles)
        self._check_complete((vs, *self.audio_streams))
        self._packets = c.demux(vs, *self.audio_streams)
        self._pending_audio: deque = deque()  # audio packets demuxed ahead of the video
        self.damaged_packets = 0
        self._frames = self._decoded_frames()
        self._index = 0
        self._last_pts: int | None = None
        self._pts_shift = 0
        first = next(self._frames, None)
        if first is None:
            raise ToonFaceError(f"{self.path}: the video stream has no frames")
        self._first = first
        matrix = frame_display_matrix(first)
        rotation, ops = orientation_filters(matrix)
        carried = None
        if ops is None:
            carried, ops = matrix, ()
        self._ops = ops
        sw, sh = first.width, first.height
        w, h = (sh, sw) if any(o.startswith("transpose") for o in ops) else (sw, sh)
        if w <= 0 or h <= 0:
            raise ToonFaceError(f"{self.path}: zero-size video ({w}x{h})")
        tb = vs.time_base or Fraction(1, 90000)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        duration = None
        if vs.duration is not None and vs.time_base:
            duration = float(vs.duration * vs.time_base)
        elif c.duration:
            duration = c.duration / 1_000_000  # AV_TIME_BASE
        cc = vs.codec_context
        self.info = VideoInfo(
            path=self.path, codec=cc.codec.canonical_name, width=w, height=h,
            stored_width=sw, stored_height=sh,
            frame_count=vs.frames or None, average_rate=Fraction(rate or 0),
            time_base=Fraction(tb), duration=duration, rotation=rotation, orientation=ops,
            display_matrix=carried,
            audio_codecs=tuple(s.codec_context.codec.canonical_name for s in self.audio_streams),
            color_primaries=int(cc.color_primaries), color_trc=int(cc.color_trc))

    def _check_size(self, w: int, h: int, what: str) -> None:
        if self._max_side and max(w, h) > self._max_side:
            raise ToonFaceError(f"{self.path}: {what} is {w}x{h}, over the limit of "
                                f"{self._max_side} px per side (--max-side {self._max_side})")
        if self._max_pixels and w * h > self._max_pixels:
            raise ToonFaceError(f"{self.path}: {what} is {w}x{h} = {w * h:,} pixels, over the "
                                f"limit of {self._max_pixels:,} pixels per frame (raise it with "
                                "--max-pixels)")

    def _refused_size(self, n: int) -> str:
        """The message for FFmpeg's cap refusing frame ``n`` before decoding it."""
        why = f"over {self._decoder_cap:,} pixels: the decoder refused it before decoding it"
        if self._max_side:
            return (f"{self.path}: frame {n} is over the limit of {self._max_side} px per side "
                    f"({why}; --max-side {self._max_side})")
        return (f"{self.path}: frame {n} is over the limit of {self._max_pixels:,} pixels per "
                f"frame ({why}; raise it with --max-pixels)")

    def _check_complete(self, streams) -> None:
        """Refuse a file whose sample index points past its end (see :func:`declared_end`
        for the other check): an MP4 with its index (moov) first and its media data cut reads,
        in FFmpeg, as a shorter video without any error."""
        size = self.path.stat().st_size
        end = max((e.pos + e.size for st in streams for e in st.index_entries if e.pos >= 0),
                  default=0)
        if end > size:
            raise ToonFaceError(f"{self.path}: truncated: its index refers to {end} bytes, the "
                                f"file has {size} (the file is damaged or incomplete)")

    def _decoded_frames(self) -> Iterator:
        """av.VideoFrame s in output order; audio packets are set aside in _pending_audio.

        A packet the demuxer flags corrupt is fatal only when the data ends with it (a file cut
        in the middle of a frame). Earlier ones (an MPEG-TS continuity error, a spliced
        recording) are decoded with FFmpeg's error concealment and counted in
        ``damaged_packets``, as FFmpeg's command line does.
        """
        import av

        vs = self._video
        n = 0
        tail_corrupt = False
        try:
            for packet in self._packets:
                if packet.stream.index != vs.index:
                    if packet.size:  # the final empty packet is a flush signal, not data
                        self._pending_audio.append(packet)
                    continue
                if packet.size:
                    self.damaged_packets += tail_corrupt
                    tail_corrupt = packet.is_corrupt
                for frame in packet.decode():
                    n += 1
                    self._check_size(frame.width, frame.height, f"frame {n}")
                    yield frame
        except av.error.FFmpegError as exc:
            if isinstance(exc, av.error.ArgumentError) and self._decoder_cap is not None:
                raise ToonFaceError(self._refused_size(n + 1)) from None  # EINVAL: over the cap
            raise ToonFaceError(f"{self.path}: cannot decode frame {n + 1} ({ffmpeg_reason(exc)}; "
                                "the file is damaged or incomplete)") from None
        if tail_corrupt:
            raise ToonFaceError(f"{self.path}: truncated: the video data ends in the middle of "
                                f"frame {n + 1} (the file is damaged or incomplete)")

    def _to_decoded(self, frame) -> DecodedFrame:
        tb = self.info.time_base
        # The encoder needs strictly increasing time stamps. Broken files omit them (the frame
        # then follows the previous one by one nominal frame) or jump back (a spliced
        # recording: the rest of the stream is shifted to continue after the jump, keeping its
        # own spacing). Audio is not shifted: its packets are copied as they are.
        step = 1
        if self.info.average_rate:
            step = max(1, round(1 / (self.info.average_rate * tb)))
        if frame.pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + step
        else:
            pts = frame.pts + self._pts_shift
            if self._last_pts is not None and pts <= self._last_pts:
                self._pts_shift += self._last_pts + step - pts
                pts = self._last_pts + step
        self._last_pts = pts
        # A stream that changes size mid-way (screen recordings, spliced clips) is scaled to its
        # first frame's size, as FFmpeg's command line does; the writer needs one size.
        rgb = frame.to_ndarray(format="rgb24", width=self.info.stored_width,
                               height=self.info.stored_height)
        rgb = apply_orientation(rgb, self._ops)
        out = DecodedFrame(rgb, int(pts), float(pts * tb), self._index, int(frame.duration or 0))
        self._index += 1
        return out

    def frames_and_audio(self) -> Iterator[DecodedFrame | Any]:
        """DecodedFrame s and audio av.Packet s in file order (for remuxing the audio)."""
        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("a VideoReader can be iterated once")
        try:
            yield from self._drain_audio()
            yield self._to_decoded(first)
            for frame in self._frames:
                yield from self._drain_audio()
                yield self._to_decoded(frame)
            yield from self._drain_audio()
        finally:
            self.close()

    def _drain_audio(self) -> Iterator:
        while self._pending_audio:
            yield self._pending_audio.popleft()

    def __iter__(self) -> Iterator[DecodedFrame]:
        for item in self.frames_and_audio():
            if isinstance(item, DecodedFrame):
                yield item

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
