"""Writing a video: H.264 in MP4 or QuickTime, with the input's audio (FFmpeg through PyAV).

H.264 (libx264, High profile, yuv420p, CRF :data:`DEFAULT_CRF`, preset :data:`DEFAULT_PRESET`)
in MP4 (or QuickTime for ``.mov``) with ``movflags=+faststart``, so browsers can start playing
before the download ends. Each output frame is stamped with its input frame's time stamp in the
input's time base: a variable frame rate is kept as it is, and frame N plays when it did. The
input's audio packets are copied unchanged (no re-encoding); only codecs that the output
container cannot hold, or PCM in MP4, which browsers do not play, are re-encoded to AAC, with a
notice. The YUV conversion uses BT.601 limited range and says so in the H.264 VUI, so decoders
that read the tags (browsers, FFmpeg) and decoders that assume BT.601 (OpenCV's bundled FFmpeg)
agree. The file is written under a temporary name in the destination folder and renamed when
complete; any failure or Ctrl-C removes it.

Odd sizes
    H.264 4:2:0 cannot code an odd width or height: the SPS crop window counts in units of two
    luma pixels (ITU-T H.264 section 7.4.2.1.1, ``CropUnitX = SubWidthC = 2``; FFmpeg's
    ``h264_metadata`` filter refuses an odd ``crop_right`` for the same reason). A 321x241 video
    is therefore written 322x242 with its last column and row repeated (no pixel is lost) and
    the writer says so in a notice. Encoding 4:4:4 would keep the size but browsers do not
    decode High 4:4:4.

Not carried over: subtitle streams (notice), data and timecode tracks, container metadata
(creation time, and also the GPS location phones write there).
"""
from __future__ import annotations

import os
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from media.container import AVCOL_UNSPECIFIED, ffmpeg_reason
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
                 color_primaries: int = AVCOL_UNSPECIFIED, color_trc: int = AVCOL_UNSPECIFIED):
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
            raise ToonFaceError(f"{self.path}: cannot create the output ({ffmpeg_reason(exc)})") from None
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
        if primaries != AVCOL_UNSPECIFIED:
            cc.color_primaries = primaries
        if trc != AVCOL_UNSPECIFIED:
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
            raise ToonFaceError(f"{self.path}: cannot finish the video ({ffmpeg_reason(exc)})") from None
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
