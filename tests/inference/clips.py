"""Small video clips for the tests, made with PyAV (FFmpeg), and their decoding."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth frame with two marker blocks: white top-left, red top-right (asymmetric under
    every rotation and mirror)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.dstack([x * 200 // max(w - 1, 1), y * 200 // max(h - 1, 1),
                     np.full((h, w), 60 + seed % 100)]).astype(np.uint8)
    s = max(2, min(h, w) // 5)
    img[:s, :s] = 255
    img[:s, -s:] = (255, 0, 0)
    return img


def write_clip(path: Path, frames: list[np.ndarray], *, rate: int = 10,
               pts: list[int] | None = None, time_base: Fraction | None = None,
               audio_seconds: float | None = None, audio_codec: str = "aac",
               rotation: float | None = None, hflip: bool = False,
               codec: str = "libx264", pix_fmt: str = "yuv420p") -> Path:
    """Encode RGB frames (and a 440 Hz sine track) with PyAV."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        if time_base is not None:
            vs.time_base = vs.codec_context.time_base = time_base
        if rotation is not None:
            vs.set_display_rotation(rotation, hflip=hflip)
        if audio_seconds:
            aus = c.add_stream(audio_codec, rate=44100)
            aus.layout = "mono"
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            c.mux(vs.encode(frame))
        c.mux(vs.encode(None))
        if audio_seconds:
            t = np.arange(int(44100 * audio_seconds)) / 44100
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            fmt = "flt" if audio_codec == "aac" else "s16"
            if fmt == "s16":
                wave = (wave * 32767).astype(np.int16)
            for i in range(0, len(wave), 1024):
                af = av.AudioFrame.from_ndarray(wave[None, i:i + 1024], format=fmt, layout="mono")
                af.sample_rate, af.pts = 44100, i
                c.mux(aus.encode(af))
            c.mux(aus.encode(None))
    return path


def decode_all(path: Path) -> list:
    """[(rgb, time in s, av.VideoFrame)] of every frame of ``path``, decoded by PyAV."""
    import av

    with av.open(str(path)) as c:
        return [(f.to_ndarray(format="rgb24"), float(f.time), f) for f in c.decode(video=0)]
