"""What a video file's bytes say before FFmpeg reads it: the input checks every reader makes,
where the container declares the file ends, FFmpeg's words for an error.

Damaged input
    A file cut short is refused before decoding when its container declares a size (MP4/MOV,
    Matroska/WebM, AVI: :func:`declared_end`) or its index points past its end
    (:class:`media.video_reader.VideoReader`), because FFmpeg itself reads such files as shorter
    videos without an error. MPEG-TS and other streaming formats declare nothing: cut, they read
    as shorter videos.
"""
from __future__ import annotations

from pathlib import Path

from utils.errors import ToonFaceError

# FFmpeg's "unspecified" colour primaries / transfer (libavutil/pixfmt.h), read by the reader
# and written by the writer.
AVCOL_UNSPECIFIED = 2


def check_input_path(path: Path) -> None:
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


def declared_end(path: Path) -> int | None:
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


def ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's own words for an error, without PyAV's errno prefix and file name."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__
