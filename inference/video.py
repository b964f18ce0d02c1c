"""Video decoding and encoding through FFmpeg (PyAV) for ``cartoonize.py``.

The pipeline streams: :class:`VideoReader` decodes one frame at a time, :func:`transcode` hands
``batch`` frames to a process function and encodes its results as they come, so memory holds
``batch`` frames plus x264's look-ahead (about 45 frames at preset medium) whatever the length
of the video: measured by ``bench/bench_video.py``, +82 MiB at 640x480 for 150 and for 1500
frames alike.

Reading (:class:`VideoReader`)
    Frames come out as RGB uint8 (H, W, 3), upright: the stream's display matrix (phones store
    portrait clips landscape with a 90 degree rotation in it) is applied with the rule FFmpeg's
    own command line uses (``fftools/ffmpeg_filter.c``, ``autorotate``), so a model sees upright
    faces. Each frame keeps its presentation time stamp. Colours are converted with the matrix
    and range the stream declares (BT.601 when it declares none); primaries and transfer are
    left as they are and carried to the output's tags (so HDR stays tagged HDR).

Writing (:class:`VideoWriter`)
    H.264 (libx264, High profile, yuv420p, CRF :data:`DEFAULT_CRF`, preset
    :data:`DEFAULT_PRESET`) in MP4 (or QuickTime for ``.mov``) with ``movflags=+faststart``, so
    browsers can start playing before the download ends. Each output frame is stamped with its
    input frame's time stamp in the input's time base: a variable frame rate is kept as it is, and
    frame N plays when it did. The input's audio packets are copied unchanged (no re-encoding);
    only codecs that the output container cannot hold, or PCM in MP4, which browsers do not play,
    are re-encoded to AAC, with a notice. The YUV conversion uses BT.601 limited range and says
    so in the H.264 VUI, so decoders that read the tags (browsers, FFmpeg) and decoders that
    assume BT.601 (OpenCV's bundled FFmpeg) agree. The file is written under a temporary name in the
    destination folder and renamed when complete; any failure or Ctrl-C removes it.

Odd sizes
    H.264 4:2:0 cannot code an odd width or height: the SPS crop window counts in units of two
    luma pixels (ITU-T H.264 section 7.4.2.1.1, ``CropUnitX = SubWidthC = 2``; FFmpeg's
    ``h264_metadata`` filter refuses an odd ``crop_right`` for the same reason). A 321x241 video
    is therefore written 322x242 with its last column and row repeated (no pixel is lost) and
    :func:`transcode` says so in a notice. Encoding 4:4:4 would keep the size but browsers do not
    decode High 4:4:4.

Rotation
    Right angles (0/90/180/270 degrees, with or without a mirror) are applied to the pixels and the
    output carries no display matrix (it plays upright in every player, including those that
    ignore the matrix). Other angles are not applied: the frames stay as stored and the input's
    display matrix is carried to the output unchanged (with a notice).

Damaged input
    A file cut short is refused before decoding when its container declares a size (MP4/MOV,
    Matroska/WebM, AVI: :func:`_declared_end`) or its index points past its end, because
    FFmpeg itself reads such files as shorter videos without an error. MPEG-TS and other
    streaming formats declare nothing: cut, they read as shorter videos. A packet flagged corrupt
    in the middle of the stream (an MPEG-TS continuity error) is decoded with FFmpeg's error
    concealment and reported in a notice; one at the very end (a cut frame) is an error.

Not carried over: subtitle streams (notice), data and timecode tracks, container metadata
(creation time, and also the GPS location phones write there).

Every problem with the input raises :class:`~utils.errors.ToonFaceError` with a one-line message.
"""
from __future__ import annotations

import math
import os
import secrets
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from utils.errors import ToonFaceError

OUTPUT_EXTS = (".mp4", ".m4v", ".mov")
# CRF 18: visually lossless for x264 on flat, cartoon-like frames; 23 (x264's default) shows
# banding in smooth gradients. "medium" is x264's default speed/size trade-off.
DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
# Audio codecs copied as they are into MP4. PCM is excluded (MP4 can hold it, browsers cannot
# play it); anything else the muxer refuses is re-encoded to AAC.
_MP4_AUDIO_COPY = ("aac", "mp3", "opus", "flac", "alac", "ac3", "eac3")
_AAC_BIT_RATE = 192_000
_AVCOL_SPC_SMPTE170M = 6   # BT.601 matrix (libavutil/pixfmt.h AVColorSpace)
_AVCOL_RANGE_MPEG = 1      # limited ("TV") range
_AVCOL_UNSPECIFIED = 2
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
    color_primaries: int = _AVCOL_UNSPECIFIED
    color_trc: int = _AVCOL_UNSPECIFIED

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


# ------------------------------------------------------------------------------- orientation


def _display_rotation(matrix: Sequence[int]) -> float:
    """Clockwise display rotation in degrees, [0, 360), of an FFmpeg display matrix.

    ``-av_display_rotation_get()`` (libavutil/display.c), normalised as fftools' ``get_rotation``.
    The matrix is 3x3 row-major with 16.16 fixed-point a, b, c, d.
    """
    a, b, c, d = (v / 65536.0 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    scale0, scale1 = math.hypot(a, c), math.hypot(b, d)
    if scale0 == 0 or scale1 == 0:
        return 0.0
    angle = math.degrees(math.atan2(b / scale1, a / scale0))
    theta = -round(-angle)  # av_display_rotation_get() is -angle; fftools negates and rounds it
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    return float(theta)


def _orientation(matrix: Sequence[int] | None) -> tuple[float, tuple[str, ...] | None]:
    """(clockwise rotation, filters that make frames upright); filters None: not a right angle.

    The case analysis is FFmpeg's (``fftools/ffmpeg_filter.c``, autorotate): the sign of matrix
    entries 0, 3 and 4 tells a mirrored matrix from a plain rotation.
    """
    if matrix is None:
        return 0.0, ()
    theta = _display_rotation(matrix)
    if abs(theta - 90) < 1.0:
        return theta, ("transpose=cclock_flip" if matrix[3] > 0 else "transpose=clock",)
    if abs(theta - 180) < 1.0:
        return theta, tuple(f for f, on in (("hflip", matrix[0] < 0), ("vflip", matrix[4] < 0)) if on)
    if abs(theta - 270) < 1.0:
        return theta, ("transpose=clock_flip" if matrix[3] < 0 else "transpose=cclock",)
    if abs(theta) > 1.0:
        return theta, None
    return theta, ("vflip",) if matrix[4] < 0 else ()


def _apply_orientation(rgb: np.ndarray, ops: tuple[str, ...]) -> np.ndarray:
    """Apply FFmpeg's transpose/hflip/vflip filters, by name, to an (H, W, C) array."""
    for op in ops:
        if op == "transpose=clock":          # 90 degrees clockwise
            rgb = np.rot90(rgb, -1)
        elif op == "transpose=cclock":       # 90 degrees counter-clockwise
            rgb = np.rot90(rgb, 1)
        elif op == "transpose=cclock_flip":  # counter-clockwise then vertical flip = transpose
            rgb = rgb.transpose(1, 0, 2)
        elif op == "transpose=clock_flip":   # clockwise then vertical flip = anti-transpose
            rgb = np.rot90(rgb, -1)[::-1]
        elif op == "hflip":
            rgb = rgb[:, ::-1]
        elif op == "vflip":
            rgb = rgb[::-1]
        else:
            raise ValueError(f"unknown orientation filter {op!r}")
    return np.ascontiguousarray(rgb)


def _frame_display_matrix(frame) -> tuple[int, ...] | None:
    from av.sidedata.sidedata import Type

    for sd in frame.side_data:
        if sd.type == Type.DISPLAYMATRIX and sd.buffer_size >= 36:
            return tuple(int(v) for v in np.frombuffer(bytes(sd), dtype="<i4", count=9))
    return None


# ------------------------------------------------------------------------------------ reading


def _check_input_path(path: Path) -> None:
    if path.is_dir():
        raise ToonFaceError(f"{path}: is a folder, not a video file")
    if not path.exists():
        raise ToonFaceError(f"{path}: no such file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ToonFaceError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if size == 0:
        raise ToonFaceError(f"{path}: empty file (0 bytes)")


_ISO_BMFF_TOP = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta",
                 b"pdin", b"moof", b"mfra", b"styp", b"sidx"}


def _declared_end(path: Path) -> int | None:
    """Where a file's own top-level structure says it ends, in bytes; None when it does not say.

    FFmpeg's demuxers read a file cut short as a shorter video, without an error, in three
    common families, so this is checked before decoding (compare with the file size):

    - MP4/MOV (ISO/IEC 14496-12 section 4.2): top-level boxes, each a 32-bit big-endian size
      and a 4-byte type; size 1: a 64-bit size follows; size 0: "to the end of the file".
    - Matroska/WebM (RFC 8794 EBML, RFC 9559): the Segment element's size after the EBML
      header; all size bits set means "unknown" (live streams).
    - RIFF (AVI, WAV): top-level chunks, a 4-byte id and a 32-bit little-endian size, padded
      to even; OpenDML AVI files over 1 GB chain several RIFF chunks.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(256)
        if head[4:8] in _ISO_BMFF_TOP:
            return _walk_chunks(f, size, big_endian=True)
        if head[:4] == b"RIFF":
            return _walk_chunks(f, size, big_endian=False)
        if head[:4] == b"\x1a\x45\xdf\xa3":
            return _matroska_end(head)
    return None


def _walk_chunks(f, size: int, big_endian: bool) -> int:
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        if big_endian:
            n = int.from_bytes(head[:4], "big")
            if n == 1 and len(head) == 16:
                n = int.from_bytes(head[8:16], "big")
            if n == 0 or n < 8:  # "to the end", or trailing bytes that are not a box
                return size
        else:
            n = 8 + int.from_bytes(head[4:8], "little")
            n += n & 1
        pos += n
    return pos


def _ebml_vint(buf: bytes, i: int) -> tuple[int, int, bool] | None:
    """(value, length, all value bits set) of the EBML variable-size integer at ``buf[i]``."""
    if i >= len(buf) or buf[i] == 0:
        return None
    length = 9 - buf[i].bit_length()
    if i + length > len(buf):
        return None
    value = buf[i] & (0xFF >> length)
    for k in range(1, length):
        value = (value << 8) | buf[i + k]
    return value, length, value == (1 << (7 * length)) - 1


def _matroska_end(head: bytes) -> int | None:
    header_size = _ebml_vint(head, 4)  # after the 4-byte EBML header ID
    if header_size is None:
        return None
    i = 4 + header_size[1] + header_size[0]
    if head[i:i + 4] != b"\x18\x53\x80\x67":  # the Segment ID
        return None
    seg = _ebml_vint(head, i + 4)
    if seg is None or seg[2]:
        return None
    return i + 4 + seg[1] + seg[0]


def _ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's own words for an error, without PyAV's errno prefix and file name."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


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
        _check_input_path(self.path)
        # Before FFmpeg: a cut file also fails as "invalid data" or shows missing streams.
        size, declared = self.path.stat().st_size, _declared_end(self.path)
        if declared is not None and declared > size:
            raise ToonFaceError(f"{self.path}: truncated: its structure declares {declared} bytes, "
                                f"the file has {size} (the file is damaged or incomplete)")
        try:
            # options reach the decoders that avformat_find_stream_info opens to probe streams
            self._container = av.open(str(self.path), metadata_errors="ignore", options=options)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise ToonFaceError(f"{self.path}: not a readable video ({_ffmpeg_reason(exc)}; "
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
        matrix = _frame_display_matrix(first)
        rotation, ops = _orientation(matrix)
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
        """Refuse a file whose sample index points past its end (see :func:`_declared_end`
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
            raise ToonFaceError(f"{self.path}: cannot decode frame {n + 1} ({_ffmpeg_reason(exc)}; "
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
        rgb = _apply_orientation(rgb, self._ops)
        out = DecodedFrame(rgb, int(pts), float(pts * tb), self._index, int(frame.duration or 0))
        self._index += 1
        return out

    def _items(self) -> Iterator[DecodedFrame | Any]:
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
        for item in self._items():
            if isinstance(item, DecodedFrame):
                yield item

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------ writing


def _even(n: int) -> int:
    return n + (n & 1)


class VideoWriter:
    """Encodes RGB frames to an H.264 MP4 (``.mp4``/``.m4v``) or QuickTime (``.mov``) file.

    ``width``/``height``: size of the frames given to :meth:`write`; odd sizes are padded to even
    by repeating the last column/row (see the module notes). ``time_base``: unit of the ``pts``
    given to :meth:`write` (use the input's, so time stamps pass through unchanged).
    ``frame_rate``: nominal frames per second (encoder rate control and the stream header; the
    real timing is the ``pts``). ``audio_from``: input audio streams whose packets
    :meth:`write_audio` will receive. ``display_matrix``: written to the stream as is (for an
    input rotation that is not a right angle). ``color_primaries``/``color_trc``: FFmpeg enum
    values to tag the stream with (the input's); the matrix is always BT.601 limited range.

    Nothing appears at ``path`` until :meth:`close` succeeds; :meth:`abort` removes the temporary
    file. ``notices`` lists one-line remarks (padding, re-encoded audio) for the user.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, *,
                 time_base: Fraction, frame_rate: Fraction | float,
                 audio_from: Sequence = (), crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
                 display_matrix: Sequence[int] | None = None,
                 color_primaries: int = _AVCOL_UNSPECIFIED, color_trc: int = _AVCOL_UNSPECIFIED):
        import av

        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in OUTPUT_EXTS:
            raise ToonFaceError(f"{self.path}: video output must be {', '.join(OUTPUT_EXTS)} "
                                f"(H.264 in MP4/QuickTime), not {ext or '(no extension)'}")
        if self.path.is_dir():
            raise ToonFaceError(f"{self.path}: is a folder; give a file name for the output video")
        if width <= 0 or height <= 0:
            raise ValueError(f"bad video size {width}x{height}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.notices: list[str] = []
        self.size = (width, height)
        self.coded_size = (_even(width), _even(height))
        if self.coded_size != self.size:
            self.notices.append(
                f"{width}x{height} has an odd side; H.264 4:2:0 codes sizes in steps of 2 pixels, "
                f"so the video is written {self.coded_size[0]}x{self.coded_size[1]} "
                "(last column/row repeated)")
        self.frames = 0
        self._last_pts: int | None = None
        # FFmpeg creates the file itself (normal permissions); the random part keeps two runs
        # writing the same output from clobbering each other's temporary file.
        self._tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.partial{ext}")
        fmt = "mov" if ext == ".mov" else "mp4"
        try:
            self._out = av.open(str(self._tmp), "w", format=fmt, options={"movflags": "+faststart"})
        except (av.error.FFmpegError, OSError) as exc:
            raise ToonFaceError(f"{self.path}: cannot create the output ({_ffmpeg_reason(exc)})") from None
        try:
            self._setup(av, Fraction(time_base), frame_rate, crf, preset, display_matrix,
                        color_primaries, color_trc, audio_from, fmt)
        except BaseException:
            self.abort()
            raise

    def _setup(self, av, time_base, frame_rate, crf, preset, display_matrix, primaries, trc,
               audio_from, fmt) -> None:
        ext = self.path.suffix.lower()
        # The nominal rate only feeds x264's rate control and the stream header; 25 when unknown.
        rate = Fraction(frame_rate).limit_denominator(1_001_000) if frame_rate else Fraction(25)
        vs = self._out.add_stream("libx264", rate=rate,
                                  options={"crf": str(crf), "preset": preset})
        vs.width, vs.height = self.coded_size
        vs.pix_fmt = "yuv420p"
        cc = vs.codec_context
        cc.time_base = time_base
        vs.time_base = time_base
        cc.colorspace = _AVCOL_SPC_SMPTE170M
        cc.color_range = _AVCOL_RANGE_MPEG
        if primaries != _AVCOL_UNSPECIFIED:
            cc.color_primaries = primaries
        if trc != _AVCOL_UNSPECIFIED:
            cc.color_trc = trc
        if display_matrix is not None:
            vs.set_display_matrix(list(display_matrix))
        self._video = vs
        self._time_base = time_base
        # Input audio stream index -> (output stream, None) for a copy, or (stream, decoder)
        # for a re-encode.
        self._audio: dict[int, tuple[Any, Any]] = {}
        for src in audio_from:
            name = src.codec_context.codec.canonical_name
            copy = fmt == "mov" or name in _MP4_AUDIO_COPY
            if copy:
                try:
                    out = self._out.add_stream_from_template(src)
                    self._audio[src.index] = (out, None)
                    continue
                except ValueError:
                    pass
            out = self._out.add_stream("aac", rate=src.codec_context.sample_rate)
            out.layout = src.codec_context.layout
            out.bit_rate = _AAC_BIT_RATE
            self._audio[src.index] = (out, src.codec_context)
            why = ("browsers do not play PCM in MP4" if name.startswith("pcm_")
                   else f"{ext} cannot hold it")
            self.notices.append(f"audio {name} re-encoded to AAC {_AAC_BIT_RATE // 1000} kb/s "
                                f"({why})")
        self._out.start_encoding()

    def write(self, rgb: np.ndarray, pts: int, duration: int = 0) -> None:
        """Encode one (H, W, 3) uint8 RGB frame shown at ``pts`` for ``duration`` (both in
        ``time_base`` units; a duration of 0 lets the muxer infer it from the next frame)."""
        import av

        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise ValueError(f"frame size {rgb.shape[1]}x{rgb.shape[0]} != video size "
                             f"{self.size[0]}x{self.size[1]}")
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"time stamps must increase: {pts} after {self._last_pts}")
        if self.coded_size != self.size:
            pad_h, pad_w = self.coded_size[1] - self.size[1], self.coded_size[0] - self.size[0]
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU601", dst_color_range="MPEG")
        frame.pts = int(pts)
        frame.time_base = self._time_base
        if duration > 0:  # the last frame's duration sets the stream's; keep the input's
            frame.duration = int(duration)
        self._out.mux(self._video.encode(frame))
        self._last_pts = pts
        self.frames += 1

    def write_audio(self, packet) -> None:
        """Copy (or re-encode, see ``notices``) one demuxed audio packet of an ``audio_from`` stream."""
        target = self._audio.get(packet.stream.index)
        if target is None:
            return
        out, decoder = target
        if decoder is None:
            packet.stream = out
            self._out.mux(packet)
            return
        for frame in decoder.decode(packet):
            self._out.mux(out.encode(frame))

    def close(self) -> Path:
        """Flush the encoders, finish the file and move it to ``path``; returns ``path``."""
        import av

        try:
            self._out.mux(self._video.encode(None))
            for out, decoder in self._audio.values():
                if decoder is not None:
                    for frame in decoder.decode(None):
                        self._out.mux(out.encode(frame))
                    self._out.mux(out.encode(None))
            self._out.close()
        except av.error.FFmpegError as exc:
            self.abort()
            raise ToonFaceError(f"{self.path}: cannot finish the video ({_ffmpeg_reason(exc)})") from None
        except BaseException:
            self.abort()
            raise
        try:
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial output (safe to call more than once)."""
        try:
            self._out.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away; its trailer does not matter
            pass
        self._tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- transcode


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
            for item in reader._items():
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
            raise ToonFaceError(f"{src}: cannot convert to {dst.name} ({_ffmpeg_reason(exc)}; "
                                "the input's streams may be damaged)") from None
        raise
    return TranscodeResult(path, frames, info, writer.coded_size, notices)
