"""What an opened picture file holds, read from its structure without decoding a pixel: the
picture count, the canvas an animation is composed on, its loop count."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# Counting pictures reads the file's structure only, never a pixel: Pillow's own n_frames walks
# every GIF frame and TIFF page through its Python decoder state, so a GIF is read with
# _gif_layout (which also finds the canvas that frames reaching past the screen grow to) and
# TIFF pages are counted up to _TIFF_PAGE_CAP. APNG (acTL) and WebP (the demuxer's frame
# count) give their counts in the header.
_TIFF_PAGE_CAP = 1000
_TIFF_NEW_SUBFILE_TYPE = 254


@dataclass(frozen=True)
class Layout:
    count: int                   # pictures in the file (see picture_count)
    canvas: tuple[int, int]      # the size every frame is composed on
    transparency: bool = False   # a GIF frame declares a transparent index
    palettes: bool = False       # a GIF has a global or local colour table
    capped: bool = False         # count is _TIFF_PAGE_CAP or more


def _skip_sub_blocks(data: bytes, i: int) -> int:
    n = len(data)
    while i < n:
        size = data[i]
        i += 1 + size
        if size == 0:
            break
    return i


def _gif_layout(data: bytes) -> Layout:
    """Frames, canvas, transparency and colour tables of GIF data from its blocks, as Pillow
    reads them (GIF89a section 17 onwards; bytes between blocks skipped one by one, as Pillow
    does). The canvas is the logical screen grown to every frame's extent, as Pillow grows it."""
    w, h = struct.unpack_from("<HH", data, 6)
    flags = data[10]
    palettes = bool(flags & 0x80)
    i = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    frames, cw, ch, transparency = 0, w, h, False
    n = len(data)
    while i < n:
        block = data[i]
        i += 1
        if block == 0x3B:                          # trailer
            break
        if block == 0x21 and i < n:                # extension: label, then sub-blocks
            label = data[i]
            i += 1
            if label == 0xF9 and i + 1 < n and data[i] >= 4 and data[i + 1] & 1:
                transparency = True                # graphic control: transparent index set
            i = _skip_sub_blocks(data, i)
        elif block == 0x2C and i + 9 <= n:         # image: descriptor, colour table, LZW data
            x, y, fw, fh, fl = struct.unpack_from("<HHHHB", data, i)
            i += 9
            frames += 1
            cw, ch = max(cw, x + fw), max(ch, y + fh)
            if fl & 0x80:
                palettes = True
                i += 3 << ((fl & 7) + 1)
            i = _skip_sub_blocks(data, i + 1)      # after the LZW minimum code size
    return Layout(max(frames, 1), (cw, ch), transparency, palettes)


def read_layout(im: Image.Image, path: Path) -> Layout:
    """What an opened file holds, read without decoding a pixel. Leaves ``im`` on frame 0."""
    if im.format == "GIF":
        with open(path, "rb") as f:
            return _gif_layout(f.read())
    if im.format == "MPO":  # the extra pictures are previews and stereo pairs
        return Layout(1, im.size)
    if im.format == "TIFF":
        full = pages = 0
        try:
            while pages < _TIFF_PAGE_CAP:
                im.seek(pages)
                pages += 1
                full += not (int(im.tag_v2.get(_TIFF_NEW_SUBFILE_TYPE, 0)) & 1)
        except EOFError:
            pass
        im.seek(0)
        return Layout(max(full, 1), im.size, capped=pages >= _TIFF_PAGE_CAP)
    return Layout(int(getattr(im, "n_frames", 1) or 1), im.size)


def picture_count(im: Image.Image, path: str | os.PathLike | None = None) -> int:
    """Pictures in an opened file: its frames, less MPO extras and reduced-resolution TIFF
    subfiles (NewSubfileType bit 0, thumbnails), counted without decoding pixels (TIFF pages up
    to 1000). ``path``: the file (needed for GIF; default ``im.filename``). Leaves ``im`` on
    frame 0."""
    return read_layout(im, Path(path or im.filename)).count


def play_count(im: Image.Image) -> int:
    loop = im.info.get("loop")
    if im.format == "GIF":
        return 1 if loop is None else (0 if int(loop) == 0 else int(loop) + 1)
    return 0 if loop is None else int(loop)
