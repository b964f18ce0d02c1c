"""Samples and colour: 16-bit to 8-bit, arrays to the uint8 RGB detectors need, invisible
pixels filled, embedded ICC profiles converted to sRGB (LittleCMS)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from media.errors import first_line

# The colour of a fully transparent image: the generator's zero input ((128 / 127.5) - 1 ~ 0).
TRANSPARENT_FILL = 128


# ------------------------------------------------------------------------- sample scaling
def sixteen_to_eight(a: np.ndarray) -> np.ndarray:
    """16-bit samples -> uint8 by ``rint(v * 255 / 65535)`` (full range kept: 0 -> 0, 65535 -> 255;
    Pillow's own reduction keeps the high byte, ``v >> 8``, half a level darker on average)."""
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, 65535.0)
    return np.rint(a * (255.0 / 65535.0)).astype(np.uint8)


def to_uint8_rgb(img) -> np.ndarray:
    """Convert an image array to the contiguous uint8 ``(H, W, 3)`` RGB that mediapipe needs.

    For arrays already in memory; files go through :func:`decode_image`.
    Accepted (converted, never rejected): grayscale ``(H, W)`` / ``(H, W, 1)``, gray+alpha
    ``(H, W, 2)``, RGB, RGBA (alpha dropped); uint8; 16-bit (uint16 or wider integers, clipped to
    [0, 65535], scaled as :func:`sixteen_to_eight`); bool; float in [0, 1] (clipped). A PIL image
    is accepted too. Raises ``ValueError`` only for arrays that are not images at all (e.g. 1-D,
    5 channels).
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
            a = sixteen_to_eight(a)
    else:
        raise ValueError(f"unsupported image dtype {a.dtype}")

    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a)


# --------------------------------------------------------------------------- invisible pixels
def fill_invisible(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Give every pixel with ``alpha == 0`` the colour of the nearest pixel with ``alpha > 0``.

    rgb: (H, W, 3) uint8; alpha: (H, W) uint8. Returns a new (H, W, 3) uint8 array; visible
    pixels are unchanged. Nearest is by Euclidean distance (``scipy.ndimage.distance_transform_edt``
    with ``return_indices``; ties go the way scipy's exact EDT resolves them, deterministically).
    A fully transparent image becomes :data:`TRANSPARENT_FILL` gray. Why: the colour under
    alpha = 0 is arbitrary (white, black, noise, an old layer) yet the generator sees it and, with
    its ~60 px receptive field, lets it bleed into visible pixels near the alpha edge; a
    continuation of the visible colours is what the edge pixels would have around them.
    """
    invisible = alpha == 0
    if not invisible.any():
        return rgb.copy()
    if invisible.all():
        return np.full_like(rgb, TRANSPARENT_FILL)
    from scipy import ndimage

    iy, ix = ndimage.distance_transform_edt(invisible, return_distances=False, return_indices=True)
    return np.ascontiguousarray(rgb[iy, ix])



_PROFILE_SPACE = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}


def srgb_transform(icc: bytes | None, cms_mode: str):
    """(LittleCMS transform from the embedded profile to sRGB, or None; a note or None)."""
    if not icc:
        return None, None
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = src.profile.xcolor_space.strip()
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
        return None, f"embedded colour profile is unreadable ({first_line(exc)}); pixels read as sRGB"
    want = _PROFILE_SPACE[cms_mode]
    if space.upper() != want:
        return None, (f"embedded colour profile is for {space} data but the pixels are "
                      f"{want}; profile ignored, pixels read as sRGB")
    try:
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        return ImageCms.buildTransform(src, srgb, cms_mode, "RGB",
                                       renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC), None
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
        return None, f"embedded colour profile cannot be used ({first_line(exc)}); pixels read as sRGB"


def to_srgb(colour: np.ndarray, cms_mode: str, transform) -> tuple[np.ndarray, str | None]:
    """(H, W, 3) uint8 sRGB of 8-bit samples in ``cms_mode``; a note if the profile failed."""
    if transform is not None:
        from PIL import ImageCms

        try:
            src = Image.fromarray(np.ascontiguousarray(colour), cms_mode)
            return np.asarray(ImageCms.applyTransform(src, transform)), None
        except (OSError, ValueError, ImageCms.PyCMSError) as exc:
            note = f"colour conversion with the embedded profile failed ({first_line(exc)}); pixels read as sRGB"
            return _naive_rgb(colour, cms_mode), note
    return _naive_rgb(colour, cms_mode), None


def _naive_rgb(colour: np.ndarray, cms_mode: str) -> np.ndarray:
    if cms_mode == "L":
        return np.repeat(colour[..., None], 3, axis=2)
    if cms_mode == "CMYK":
        return np.asarray(Image.fromarray(np.ascontiguousarray(colour), "CMYK").convert("RGB"))
    return colour
