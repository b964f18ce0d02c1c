"""Image files the decoding tests need and Pillow cannot write: 16-bit colour PNGs, huge PNGs
that are small on disk, and one cut-out stored with different colours under alpha = 0."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_png16(path: Path, samples: np.ndarray) -> Path:
    """A 16-bit PNG from raw bytes (PNG spec, filter type 0 on every row): (H, W) gray,
    (H, W, 2) gray+alpha, (H, W, 3) RGB or (H, W, 4) RGBA uint16."""
    a = samples if samples.ndim == 3 else samples[..., None]
    h, w, c = a.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = a.astype(">u2").reshape(h, w * c)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
                     + _chunk(b"IEND", b""))
    return path


def big_png(path: Path, w: int, h: int) -> Path:
    """A valid, all-black 1-bit w x h PNG, small on disk (20000 x 20000 is ~50 kB)."""
    row = b"\0" + b"\0" * ((w + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data)
                     + _chunk(b"IEND", b""))
    return path


def cutout_alpha(h: int, w: int) -> np.ndarray:
    """A round cut-out: opaque disc, a semi-transparent ring (alpha 90), invisible outside."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) / (min(h, w) / 2)
    alpha = np.zeros((h, w), np.uint8)
    alpha[r < 0.75] = 255
    alpha[(r >= 0.75) & (r < 0.875)] = 90
    return alpha


UNDER = ("white", "black", "noise")
CUTOUT_KINDS = ("RGBA", "LA", "P", "RGB+tRNS", "RGBA16", "WebP")


def cutout_files(kind: str, rgb: np.ndarray, alpha: np.ndarray, folder: Path) -> list[Path]:
    """The same visible pixels (``rgb`` where ``alpha > 0``) stored as ``kind`` three times, with
    white, black and noise under alpha = 0 (for "P": a palette with index 0 transparent and its
    colour white, black or random; for "RGB+tRNS": a transparent key colour, alpha 0/255 only)."""
    h, w = alpha.shape
    noise = np.random.default_rng(99).integers(0, 256, (h, w, 3), dtype=np.uint8)
    paths = []
    for name in UNDER:
        fill = {"white": np.full_like(rgb, 255), "black": np.zeros_like(rgb), "noise": noise}[name]
        stored = np.where(alpha[..., None] > 0, rgb, fill)
        path = folder / f"{kind.replace('+', '_')}_{name}.png"
        if kind == "RGBA":
            Image.fromarray(np.dstack([stored, alpha]), "RGBA").save(path)
        elif kind == "WebP":
            path = path.with_suffix(".webp")
            Image.fromarray(np.dstack([stored, alpha]), "RGBA").save(path, lossless=True, exact=True)
        elif kind == "LA":
            Image.fromarray(np.dstack([stored[..., 0], alpha]), "LA").save(path)
        elif kind == "RGBA16":
            write_png16(path, np.dstack([stored, alpha]).astype(np.uint16) * 257)
        elif kind == "RGB+tRNS":
            key = {"white": (255, 255, 255), "black": (0, 0, 0), "noise": (1, 2, 3)}[name]
            visible = rgb.copy()
            visible[(visible == key).all(-1)] ^= np.array([0, 0, 1], np.uint8)  # keep it visible
            keyed = np.where(alpha[..., None] > 0, visible, np.array(key, np.uint8))
            Image.fromarray(keyed).save(path, transparency=key)
        elif kind == "P":
            q = (rgb // 64).astype(np.uint8)  # 64 visible colours at indices 1..64
            idx = (1 + q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).astype(np.uint8)
            idx[alpha == 0] = 0
            pal = np.zeros((256, 3), np.uint8)
            pal[1:65] = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) * 64 + 32
            pal[0] = fill[0, 0]
            im = Image.fromarray(idx, "P")
            im.putpalette(pal.tobytes())
            im.save(path, transparency=0)
        else:
            raise ValueError(kind)
        paths.append(path)
    return paths
