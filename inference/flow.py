"""Dense optical flow between video frames and where it can be trusted.

One implementation for the two users that must agree on it: the temporal stabiliser of
``cartoonize.py --temporal`` (:mod:`inference.temporal`) and the warping-error metric
(:mod:`evaluation.warping`, which imports it from here: inference may not import evaluation).

Flow
    OpenCV Farneback (G. Farneback 2003, "Two-frame motion estimation based on polynomial
    expansion") on gray uint8 frames. Parameters (:class:`FarnebackParams`): pyramid scale 0.5
    with 5 levels (the coarsest at 1/16 size, so motions of tens of pixels per frame are
    found), 15 px window, 3 iterations, polynomial neighbourhood 5 with sigma 1.1 (OpenCV's
    recommended pair), no Gaussian window. ``max_side`` computes the flow on frames shrunk to
    that longest side and enlarges it, vectors scaled back to full-size pixels (cost: ~70 ms
    per flow at 256x256 on one of these CPU cores, ~3.3 s at 1920x1080 full size).

Trusted pixels
    The forward-backward consistency check of Sundaram, Brox and Keutzer 2010 ("Dense point
    trajectories by GPU-accelerated large displacement optical flow"), as used for video style
    transfer by Ruder, Dosovitskiy and Brox 2016 ("Artistic style transfer for videos"): with
    w_b the flow t -> t-1 and w_f the flow t-1 -> t, pixel x of frame t is kept when

        |w_b(x) + w_f(x + w_b(x))|^2 <= alpha (|w_b(x)|^2 + |w_f(x + w_b(x))|^2) + beta,

    alpha = 0.01, beta = 0.5 px^2 (their constants), and when x + w_b(x) lies inside frame t-1
    (pixels that come from outside the frame have nothing to compare with). Occluded and
    disoccluded pixels fail the round trip. Ruder et al. also drop motion boundaries; that
    extra mask is not applied.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONSISTENCY_ALPHA = 0.01
CONSISTENCY_BETA = 0.5


@dataclass(frozen=True)
class FarnebackParams:
    """Arguments of ``cv2.calcOpticalFlowFarneback`` (see the module docstring)."""

    pyr_scale: float = 0.5
    levels: int = 5
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.1
    flags: int = 0


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> uint8 (H, W) luma (``cv2.COLOR_RGB2GRAY``, BT.601 weights)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def farneback_flow(prev_gray: np.ndarray, next_gray: np.ndarray,
                   params: FarnebackParams = FarnebackParams(),
                   max_side: int | None = None) -> np.ndarray:
    """Dense flow (H, W, 2) float32 in pixels (dx, dy) with prev(x) ~ next(x + flow(x)).

    prev_gray, next_gray: uint8 (H, W) of one size. max_side: compute on the frames shrunk
    (INTER_AREA) to this longest side, then enlarge the flow and scale its vectors back.
    """
    import cv2

    h, w = prev_gray.shape[:2]
    scale = 1.0 if not max_side or max(h, w) <= max_side else max_side / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        prev_gray = cv2.resize(prev_gray, size, interpolation=cv2.INTER_AREA)
        next_gray = cv2.resize(next_gray, size, interpolation=cv2.INTER_AREA)
    flow = cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, params.pyr_scale,
                                        params.levels, params.winsize, params.iterations,
                                        params.poly_n, params.poly_sigma, params.flags)
    if scale < 1.0:
        sx, sy = w / flow.shape[1], h / flow.shape[0]
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32([sx, sy])
    return flow


def consistency_mask(flow_b: np.ndarray, flow_f: np.ndarray, alpha: float = CONSISTENCY_ALPHA,
                     beta: float = CONSISTENCY_BETA) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of frame t whose backward flow is trusted, and where they come from.

    flow_b: (H, W, 2) flow t -> t-1; flow_f: (H, W, 2) flow t-1 -> t. Returns ``(mask, maps)``:
    mask (H, W) bool (forward-backward consistent, see the module docstring, and landing inside
    the frame); maps (H, W, 2) float32 absolute sampling positions x + w_b(x) for :func:`warp`.
    """
    import cv2

    h, w = flow_b.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)),
                    axis=-1)
    maps = grid + flow_b
    # w_f sampled where x lands in frame t-1 (bilinear, like the warp itself).
    f_at = cv2.remap(flow_f, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    round_trip = np.sum((flow_b + f_at) ** 2, axis=-1)
    bound = alpha * (np.sum(flow_b ** 2, axis=-1) + np.sum(f_at ** 2, axis=-1)) + beta
    inside = ((maps[..., 0] >= 0) & (maps[..., 0] <= w - 1)
              & (maps[..., 1] >= 0) & (maps[..., 1] <= h - 1))
    return (round_trip <= bound) & inside, maps


def warp(frame: np.ndarray, maps: np.ndarray, cubic: bool = False) -> np.ndarray:
    """``frame`` (H, W[, C], uint8 or float32) sampled at ``maps`` (H, W, 2) absolute (x, y)
    positions (``cv2.remap``): bilinear, or bicubic (Keys, a = -0.75) with ``cubic``, which
    blurs less when a frame is warped again and again (it may overshoot: clip float results).
    Positions outside the frame take the nearest edge pixel."""
    import cv2

    mode = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    return cv2.remap(frame, maps[..., 0], maps[..., 1], mode, borderMode=cv2.BORDER_REPLICATE)
