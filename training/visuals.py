"""Side-by-side grids: one row per face, one labelled column per representation.

Columns: photo | raw G | output | surface | texture | structure |
landmark map. ``test.py`` writes the same layout for held-out photos.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from media.tensors import to_uint8
from representations.surface import surface
from representations.texture import TEXTURE_WEIGHT_RANGES, texture
from models.guided_filter import guided_filter
from utils.io import atomic_write_bytes
from representations.defaults import DEFAULT_METHOD, SEG_NUM

COLUMNS = ("photo", "raw G", "output", "surface", "texture", "structure", "landmark map")
PRETRAIN_COLUMNS = ("photo", "raw G", "output")
# The grid shows texture with the mid-range weights, so snapshots are comparable over time.
GRID_TEXTURE_WEIGHTS = torch.tensor([(lo + hi) / 2 for lo, hi in TEXTURE_WEIGHT_RANGES])


@torch.no_grad()
def representations(G: torch.nn.Module, photos: torch.Tensor, lmaps: torch.Tensor | None = None,
                    gf_eps: float = 1e-2, superpixel: str = DEFAULT_METHOD, seg_num: int = SEG_NUM,
                    columns=COLUMNS, precision_ctx=None,
                    output: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every column for a photo batch: {name: (B, 3, H, W) in [-1, 1]} (CPU, float32).

    output: (B, 3, H, W) in [-1, 1], the cartoon to show as "output" and to take surface,
    texture and structure of (test.py passes what the inference path delivers); default
    guided_filter(photo, G(photo), r=1, gf_eps).
    """
    from contextlib import nullcontext

    ctx = precision_ctx or nullcontext()
    with ctx:
        raw = G(photos)
    raw = raw.float()
    out = (guided_filter(photos.float(), raw, 1, gf_eps) if output is None
           else output.to(raw.device, torch.float32))
    cols = {"photo": photos.float(), "raw G": raw, "output": out}
    if "surface" in columns:
        cols["surface"] = surface(out)
    if "texture" in columns:
        cols["texture"] = texture(out, weights=GRID_TEXTURE_WEIGHTS)[0].expand(-1, 3, -1, -1)
    if "structure" in columns:
        # lazy: scipy, skimage only when this runs
        from representations.structure import structure

        cols["structure"] = structure(out, method=superpixel, seg_num=seg_num)
    if "landmark map" in columns:
        if lmaps is None:
            cols["landmark map"] = torch.full_like(out, -1.0)
        else:
            # lazy: PIL only when this runs
            from faces import landmark_map_to_rgb

            # The map drawn over the dimmed photo, so one sees where it lies on the face.
            overlay = landmark_map_to_rgb(lmaps.float().cpu()).to(out.device)
            cols["landmark map"] = torch.maximum(overlay, photos.float() * 0.5 - 0.5)
    return {k: cols[k].clamp(-1, 1).cpu() for k in columns}


def make_grid(columns: dict[str, torch.Tensor], row_labels: list[str] | None = None,
              pad: int = 2) -> np.ndarray:
    """Labelled grid image, uint8 (H, W, 3): a header with the column names, a row per item."""
    names = list(columns)
    b, _, h, w = columns[names[0]].shape
    label_h = max(14, h // 8)
    label_w = 0 if row_labels is None else max(40, w // 2)
    scale = max(0.3, h / 256)
    grid = np.full((label_h + b * (h + pad) + pad, label_w + len(names) * (w + pad) + pad, 3),
                   255, np.uint8)
    for j, name in enumerate(names):
        x0 = label_w + pad + j * (w + pad)
        # Shrink a label until it fits its column (narrow 64 px grids included).
        s = scale
        while s > 0.2 and cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, s, 1)[0][0] > w - 2:
            s *= 0.9
        cv2.putText(grid, name, (x0 + 1, label_h - 4), cv2.FONT_HERSHEY_SIMPLEX, s,
                    (0, 0, 0), 1, cv2.LINE_AA)
        for i in range(b):
            y0 = label_h + pad + i * (h + pad)
            grid[y0:y0 + h, x0:x0 + w] = to_uint8(columns[name][i])
    for i, text in enumerate(row_labels or []):
        y0 = label_h + pad + i * (h + pad)
        cv2.putText(grid, str(text)[:10], (2, y0 + h // 2), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return grid


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write a uint8 RGB image atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())
