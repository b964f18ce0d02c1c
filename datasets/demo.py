"""The embedded demo dataset: needs no download.

Photos: skimage's ``astronaut`` portrait under random rotation, scale and shift (a real face,
so mediapipe finds landmarks). Cartoons: procedurally drawn flat-shaded scenes and faces with
dark outlines, the look the structure/surface/texture terms push towards.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Centre and size (pixels) of the face region in skimage.data.astronaut (512x512), measured
# from its mediapipe landmarks.
ASTRONAUT_FACE_CENTRE = (225.0, 128.0)
ASTRONAUT_CROP = 220.0


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def demo_photo(rng: np.random.Generator, size: int, base: np.ndarray | None = None) -> np.ndarray:
    """One randomly rotated, scaled and shifted astronaut face crop, uint8 (size, size, 3)."""
    base = astronaut() if base is None else base
    angle = rng.uniform(-12, 12)
    scale = rng.uniform(0.9, 1.15) * size / ASTRONAUT_CROP
    cx = ASTRONAUT_FACE_CENTRE[0] + rng.uniform(-0.08, 0.08) * ASTRONAUT_CROP
    cy = ASTRONAUT_FACE_CENTRE[1] + rng.uniform(-0.08, 0.08) * ASTRONAUT_CROP
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[:, 2] += (size / 2 - cx, size / 2 - cy)
    return cv2.warpAffine(base, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


# Two looks for the demo's two styles, as OpenCV HSV ranges (hue 0-180, saturation, value) of
# the flat regions, the outline colour and width (per 64 px), and the skin colour.
PALETTES = {
    "pastel": {"hsv": ((0, 180), (90, 200), (150, 256)), "outline": (30, 20, 20), "width": 1,
               "skin": (250, 215, 185)},
    "noir": {"hsv": ((95, 140), (60, 160), (40, 150)), "outline": (5, 5, 10), "width": 2,
             "skin": (200, 180, 210)},
}


def _colour(rng: np.random.Generator, palette: str = "pastel") -> tuple[int, int, int]:
    (h0, h1), (s0, s1), (v0, v1) = PALETTES[palette]["hsv"]
    hsv = np.uint8([[[rng.integers(h0, h1), rng.integers(s0, s1), rng.integers(v0, v1)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def demo_cartoon(rng: np.random.Generator, size: int, palette: str = "pastel") -> np.ndarray:
    """A flat-shaded image with dark outlines (scene of blobs, half of them with a face), in one
    of the PALETTES: "pastel" (saturated light colours) or "noir" (dark blues, heavy ink)."""
    pal = PALETTES[palette]
    img = np.empty((size, size, 3), np.uint8)
    img[:] = _colour(rng, palette)
    outline = max(1, pal["width"] * size // 64)
    for _ in range(int(rng.integers(3, 7))):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(size // 10, size // 3, 2))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(img, centre, axes, angle, 0, 360, _colour(rng, palette), -1, cv2.LINE_AA)
        cv2.ellipse(img, centre, axes, angle, 0, 360, pal["outline"], outline, cv2.LINE_AA)
    if rng.random() < 0.5:  # a cartoon face: skin oval, eyes, mouth
        c, r = (size // 2, size // 2), size // 3
        cv2.ellipse(img, c, (int(r * 0.8), r), 0, 0, 360, pal["skin"], -1, cv2.LINE_AA)
        cv2.ellipse(img, c, (int(r * 0.8), r), 0, 0, 360, (40, 25, 25), outline, cv2.LINE_AA)
        for dx in (-r // 3, r // 3):
            cv2.circle(img, (c[0] + dx, c[1] - r // 5), max(2, r // 8), (40, 25, 25), -1, cv2.LINE_AA)
        cv2.ellipse(img, (c[0], c[1] + r // 3), (r // 3, r // 8), 0, 0, 180, (170, 40, 50), -1, cv2.LINE_AA)
    return img


def build_demo_data(root: str | Path, num_photos: int = 48, num_cartoons: int = 48,
                    size: int = 128, seed: int = 0) -> tuple[Path, Path]:
    """Write ``root/photos/*.png`` and ``root/cartoons/*.png`` (skipped if already there)."""
    root = Path(root)
    photos, cartoons = root / "photos", root / "cartoons"
    rng = np.random.default_rng(seed)
    base = astronaut()
    for folder, count, make in ((photos, num_photos, lambda: demo_photo(rng, size, base)),
                                (cartoons, num_cartoons, lambda: demo_cartoon(rng, size))):
        folder.mkdir(parents=True, exist_ok=True)
        if len(list(folder.glob("*.png"))) >= count:
            continue
        for i in range(count):
            cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(make(), cv2.COLOR_RGB2BGR))
    return photos, cartoons


def build_demo_cartoons(folder: str | Path, palette: str, count: int = 48, size: int = 128,
                        seed: int = 1) -> Path:
    """Write ``count`` cartoons of one palette into ``folder`` (skipped if already there)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) < count:
        rng = np.random.default_rng(seed)
        for i in range(count):
            img = demo_cartoon(rng, size, palette)
            cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return folder
