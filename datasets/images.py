"""Finding and reading images robustly.

Every reader in the project goes through :func:`read_image_rgb`, which turns grayscale, RGBA,
palette, CMYK and 16-bit files into uint8 RGB, honours EXIF orientation, and raises
``UnreadableImage`` (never a PIL/cv2 error) for corrupt, truncated, zero-byte or non-image
files, so folders can skip and report them.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class UnreadableImage(OSError):
    """The file is not a decodable image; the message says why in a few words."""


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension, any case), sorted; hidden files and folders
    (names starting with '.') are skipped."""
    root = Path(folder)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        out += [Path(dirpath) / f for f in filenames
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(out)


def to_uint8_rgb(img) -> np.ndarray:
    """Convert an image array to the contiguous uint8 ``(H, W, 3)`` RGB that mediapipe needs.

    Accepted (converted, never rejected): grayscale ``(H, W)`` / ``(H, W, 1)``, gray+alpha
    ``(H, W, 2)``, RGB, RGBA (alpha dropped); uint8; 16-bit (uint16 or wider integers, top 8
    bits kept: ``v >> 8``); bool; float in [0, 1] (clipped). A PIL image is accepted too.
    Raises ``ValueError`` only for arrays that are not images at all (e.g. 1-D, 5 channels).
    """
    if not isinstance(img, np.ndarray):
        img = np.asarray(img.convert("RGB")) if img.mode not in ("I;16", "I", "F") else np.array(img)
    a = img
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 2:          # gray + alpha
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 4:          # RGBA
        a = a[:, :, :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or min(a.shape[:2]) < 1:
        raise ValueError(f"expected an image (H, W), (H, W, 1|2|3|4), got shape {img.shape}")

    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0)
        a = np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        if a.dtype.itemsize == 1:                 # int8
            a = np.clip(a, 0, 255).astype(np.uint8)
        else:                                     # 16-bit data (also PIL's int32 mode "I")
            a = (np.clip(a, 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {a.dtype}")

    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a)


def _to_uint8_rgb(im: Image.Image) -> np.ndarray:
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        arr = np.array(im)
        if im.mode == "I" and arr.max() <= 255:  # 8-bit values stored as int32
            arr = arr.astype(np.uint8)
        return to_uint8_rgb(arr)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Composite on white: transparent pixels of cartoon PNGs are usually background.
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    return np.array(im.convert("RGB"), dtype=np.uint8)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to a uint8 (H, W, 3) RGB array (EXIF orientation applied)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("zero-byte file")
        with Image.open(path) as im:
            im.load()  # full decode: truncated files fail here, not later in a worker
            im = ImageOps.exif_transpose(im)
            arr = _to_uint8_rgb(im)
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnreadableImage(msg) from None
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UnreadableImage("zero-size image")
    return arr


def _check(path: Path) -> str | None:
    try:
        read_image_rgb(path)
        return None
    except UnreadableImage as exc:
        return str(exc)


def scan_images(paths: list[Path], workers: int = 4) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Decode every file once; returns (good paths, [(bad path, reason)]), order kept.

    Threads suffice: PIL releases the GIL while decoding.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(pool.map(_check, paths, chunksize=16))
    good = [p for p, r in zip(paths, reasons) if r is None]
    bad = [(p, r) for p, r in zip(paths, reasons) if r is not None]
    return good, bad


# torch is imported inside the converters: reading images and rendering landmark maps must not
# pay for importing torch (the landmark cache and prepare.py run without it).
def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) in [-1, 1] (x / 127.5 - 1), a copy."""
    import torch

    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (B, 3, H, W) in [-1, 1] (clamped) -> uint8 (H, W, 3) or (B, H, W, 3)."""
    import torch

    u8 = ((x.detach().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return u8.movedim(-3, -1).cpu().numpy()
