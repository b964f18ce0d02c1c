"""Hostile files of issue 26, written byte by byte: small on disk, costly to decode.

- :func:`delta_apng`, :func:`delta_gif`, :func:`delta_webp`: an animation whose first frame
  fills a large canvas and whose other frames are 1x1 deltas (29 KB, 7 KB and 14 KB at the
  issue's 1500x1500 x 300 frames), so decoding every frame composes ``frames x canvas`` pixels.
- :func:`scan_bomb_jpeg`: a progressive JPEG whose last scan is repeated (513 KB at 2990x2990
  and 20,000 scans): every scan is another pass over the image.
- :func:`chunk_spam_png`: a valid 16x16 PNG behind megabytes of empty ancillary chunks, which
  Pillow reads one by one (seconds of Python) before the header is known.
- :func:`resizing_video`: PNG frames in AVI (or Matroska) whose first frame is small and whose
  later frames declare a large size (1-bit PNGs: a 16000x16000 frame is 33 KB).
- :func:`decode_guard`: a context in which any Pillow pixel decode raises, to prove that a
  refusal comes before decoding (and to keep today's code from allocating gigabytes).

Independent of the code under test: the structures are written from the format specifications
(PNG/APNG, GIF89a, RIFF/WebP container, JPEG markers), not with ``media``.
"""
from __future__ import annotations

import contextlib
import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from PIL import Image


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _black_rows(width: int, height: int, bytes_per_pixel: float) -> bytes:
    """zlib data of ``height`` PNG rows (filter 0) of zeros, compressed row by row."""
    comp = zlib.compressobj(9)
    row = b"\0" * (1 + int(width * bytes_per_pixel + 0.999))
    return b"".join(comp.compress(row) for _ in range(height)) + comp.flush()


def delta_apng(path: Path, canvas=(1500, 1500), frames: int = 300, delay_ms: int = 40) -> Path:
    """An RGB APNG: frame 0 black over the whole canvas, then ``frames - 1`` red 1x1 frames."""
    w, h = canvas
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)),
           _chunk(b"acTL", struct.pack(">II", frames, 0))]
    one = zlib.compress(b"\0\xff\x00\x00")
    seq = 0
    for i in range(frames):
        fw, fh, x, y = (w, h, 0, 0) if i == 0 else (1, 1, i % w, (i // w) % h)
        out.append(_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, fw, fh, x, y, delay_ms, 1000, 0, 0)))
        seq += 1
        if i == 0:
            out.append(_chunk(b"IDAT", _black_rows(w, h, 3)))
        else:
            out.append(_chunk(b"fdAT", struct.pack(">I", seq) + one))
            seq += 1
    out.append(_chunk(b"IEND", b""))
    path.write_bytes(b"".join(out))
    return path


def delta_gif(path: Path, canvas=(1500, 1500), frames: int = 300, offset=(0, 0)) -> Path:
    """A GIF89a whose logical screen is ``canvas`` and whose frames are 1x1 pixels at
    ``offset`` + (i, 0) (an offset beyond the screen grows Pillow's canvas)."""
    w, h = canvas
    out = [b"GIF89a", struct.pack("<HHBBB", w, h, 0xF0, 0, 0), b"\0\0\0\xff\xff\xff",
           b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"]
    # LZW, minimum code size 2: clear (4), pixel 1, end (5) as 3-bit codes = 9 bits
    lzw = bytes([2, 2]) + struct.pack("<H", 4 | (1 << 3) | (5 << 6)) + b"\0"
    for i in range(frames):
        x, y = offset[0] + i % max(w, 1), offset[1]
        out.append(b"!\xf9\x04\x00\x04\x00\x00\x00")  # graphic control: 40 ms, no transparency
        out.append(b"," + struct.pack("<HHHHB", x, y, 1, 1, 0) + lzw)
    out.append(b";")
    path.write_bytes(b"".join(out))
    return path


def _riff(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def delta_webp(path: Path, canvas=(1500, 1500), frames: int = 300) -> Path:
    """An animated WebP (VP8X + ANIM + ANMF chunks) of 1x1 lossless frames on ``canvas``."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (255, 0, 0)).save(buf, "WEBP", lossless=True)
    vp8l = buf.getvalue()[12:]  # the file's one chunk, VP8L
    w, h = canvas

    def u24(v: int) -> bytes:
        return struct.pack("<I", v)[:3]

    body = [_riff(b"VP8X", bytes([0x02, 0, 0, 0]) + u24(w - 1) + u24(h - 1)),
            _riff(b"ANIM", struct.pack("<IH", 0, 0))]
    for i in range(frames):
        x = (2 * i) % w  # ANMF offsets are stored halved
        body.append(_riff(b"ANMF", u24(x // 2) + u24(0) + u24(0) + u24(0) + u24(40) + b"\x02" + vp8l))
    data = b"WEBP" + b"".join(body)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(data)) + data)
    return path


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a simple JPEG (as Pillow writes them); a scan's
    end includes its entropy-coded data."""
    out, i = [], 2
    while i < len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, i, i + 2))
            break
        end = i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        out.append((marker, i, end))
        i = end
    return out


def progressive_jpeg(side: int, scans: int) -> bytes:
    """A flat progressive JPEG of exactly ``scans`` scans (at least Pillow's own count, 10 for
    colour): the last one repeated, which libjpeg accepts with a warning."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    sos = [(s, e) for m, s, e in jpeg_segments(data) if m == 0xDA]
    if scans < len(sos):
        raise ValueError(f"at least {len(sos)} scans")
    s, e = sos[-1]
    return data[:e] + data[s:e] * (scans - len(sos)) + data[e:]


def scan_bomb_jpeg(path: Path, side: int = 2990, scans: int = 20_000) -> Path:
    path.write_bytes(progressive_jpeg(side, scans))
    return path


def chunk_spam_png(path: Path, megabytes: float = 10.0) -> Path:
    """A valid 16x16 RGB PNG with ``megabytes`` of empty private chunks before its pixels."""
    spam = _chunk(b"quIt", b"") * int(megabytes * 2**20 / 12)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
                     + spam + _chunk(b"IDAT", _black_rows(16, 16, 3)) + _chunk(b"IEND", b""))
    return path


def bilevel_png(width: int, height: int) -> bytes:
    """A black 1-bit gray PNG (16000x16000 is 33 KB)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + _chunk(b"IDAT", _black_rows(width, height, 1 / 8)) + _chunk(b"IEND", b""))


def resizing_video(path: Path, sizes: list[tuple[int, int]], fmt: str = "avi") -> Path:
    """PNG-coded frames of the given (width, height) in one stream (FFmpeg's PNG decoder takes
    each frame's size from its IHDR, so the size may change at any frame); the container
    declares the first frame's size. 10 fps."""
    import av

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("png", rate=10)
        s.width, s.height = sizes[0]
        s.pix_fmt = "monob"
        for k, (w, h) in enumerate(sizes):
            p = av.Packet(bilevel_png(w, h))
            p.stream, p.time_base = s, Fraction(1, 10)
            p.pts = p.dts = k
            p.is_keyframe = True
            c.mux(p)
    return path


class DecodedTooMuch(BaseException):
    """Raised by :func:`decode_guard`; a BaseException, so no ``except Exception`` in the code
    under test turns it into an ordinary error."""


@contextlib.contextmanager
def decode_guard(allowed: int = 0) -> Iterator[list[int]]:
    """Within the block, Pillow's pixel decoding (``ImageFile.load`` with data left to decode)
    raises :class:`DecodedTooMuch` after ``allowed`` decodes; yields a one-item list holding the
    count of decodes so far. Only this process is watched (not decoder processes)."""
    from PIL import ImageFile

    original = ImageFile.ImageFile.load
    count = [0]

    def load(self):
        if getattr(self, "tile", None):
            count[0] += 1
            if count[0] > allowed:
                raise DecodedTooMuch(f"decode #{count[0]} of {self.format} {self.size}")
        return original(self)

    ImageFile.ImageFile.load = load
    try:
        yield count
    finally:
        ImageFile.ImageFile.load = original
