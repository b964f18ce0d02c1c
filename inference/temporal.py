"""Temporal stabilisation of a stylised video (``cartoonize.py --temporal STRENGTH``).

Each frame is stylised on its own, so flat regions and edges flicker where the input barely
changed. The stabiliser blends into the current output O_t the previous *stabilised* output
S_{t-1}, warped to frame t by the optical flow of the *input* frames, wherever that flow is
trusted:

    S_t(x) = O_t(x) + w_t(x) (S_{t-1}(x + w_b(x)) - O_t(x))
    w_t(x) = strength * M_t(x) * V_t(x)

- w_b: Farneback flow of the input frames t -> t-1, M_t: their forward-backward consistency
  mask (occluded, disoccluded and out-of-frame pixels are 0), both :mod:`inference.flow`, the
  same as the warping-error metric's (Ruder, Dosovitskiy and Brox 2016, "Artistic style
  transfer for videos", section 3 and their short-term temporal loss).
- The warp is bicubic: S_{t-1} is itself a warped frame, and repeated bilinear warps blur it
  (measured on a 40-frame version of the panning clip of ``bench/bench_video_temporal.py`` at
  strength 0.7: bilinear lowered flatness by 7.8% and edge density by 5.1%, bicubic by 2.2%
  and 0%).
- V_t(x) = exp(-50 |I_t(x) - I_{t-1}(x + w_b(x))|^2) (RGB in [0, 1], squared norm over the
  channels): the visibility mask of Lai et al. 2018 ("Learning Blind Video Temporal
  Consistency", ECCV, section 3.2, alpha = 50). Where the warped previous input does not
  predict the current one (a lighting change, a flow error the round trip missed) the weight
  goes to 0, so no ghost of the previous frame is drawn there.

- A cut: when the trusted share mean(M_t V_t) falls under ``CUT_SHARE`` (0.25), w_t = 0 for
  the whole frame. After a cut the round trip still passes by chance on 30-40% of the pixels
  (smooth regions, where two unrelated flows agree) and V_t on some of those; on a pan the
  share is ~0.97, at a cut ~0.04 (astronaut crops, ``tests/inference/test_temporal.py``).

This is the recurrent form of Lai et al.'s network (their output at t depends on the warped
output at t-1) with the network replaced by a fixed blend, i.e. an exponential moving average
along motion trajectories: a pixel that stays trusted averages about 1 / (1 - strength) frames
(``strength`` 0.5: 2 frames). Where the flow fails it is the per-frame output, unchanged.

Exactness: when the input frame equals the previous one byte for byte the flow is taken as 0
(no flow is computed) and the warp is the identity, so a static clip whose per-frame outputs
are equal comes out exactly as the per-frame output (the update adds 0 to O_t).

Memory: the previous input frame, its gray version and the previous stabilised frame (float32):
streaming, whatever the length of the video. Cost per frame: two Farneback flows (on frames
shrunk to ``flow_max_side``) plus two full-size warps; ~0.15 s at 256x256 on one of these CPU
cores.
"""
from __future__ import annotations

import numpy as np

from inference.flow import (CONSISTENCY_ALPHA, CONSISTENCY_BETA, FarnebackParams,
                            consistency_mask, farneback_flow, to_gray, warp)
from utils.errors import ToonFaceError

VISIBILITY_ALPHA = 50.0   # Lai et al. 2018, section 3.2
CUT_SHARE = 0.25          # below this mean trust the frame is a new shot (module docstring)
# Flow on frames shrunk to this side: a 1080p pair costs ~0.9 s instead of ~3.3 s (see
# evaluation/warping.py); flicker lives in flat regions, where a coarser flow is as good.
DEFAULT_FLOW_MAX_SIDE = 512


class TemporalStabilizer:
    """Streaming stabiliser: feed (input frame, per-frame output) pairs in order, get stabilised frames.

    Args:
        strength: weight of the warped previous output where the flow is trusted, in [0, 1)
            (0: off, every frame is returned unchanged; 1 would freeze the video).
        flow_max_side: longest side (px) of the frames the flow is computed on; None: full size.
        params, alpha, beta: Farneback parameters and the consistency-check constants
            (:mod:`inference.flow`).
        visibility_alpha: the alpha of V_t (see the module docstring).

    Raises ToonFaceError for a strength outside [0, 1) or a flow_max_side under 16 px.

        stab = TemporalStabilizer(0.5)
        for photo, cartoon in zip(inputs, outputs):
            writer.write(stab(photo, cartoon))
    """

    def __init__(self, strength: float, flow_max_side: int | None = DEFAULT_FLOW_MAX_SIDE, *,
                 params: FarnebackParams = FarnebackParams(), alpha: float = CONSISTENCY_ALPHA,
                 beta: float = CONSISTENCY_BETA, visibility_alpha: float = VISIBILITY_ALPHA):
        if not 0.0 <= strength < 1.0:
            raise ToonFaceError(f"temporal strength must be in [0, 1), got {strength}")
        if flow_max_side is not None and int(flow_max_side) < 16:
            raise ToonFaceError(f"flow max side must be at least 16 px, got {flow_max_side}")
        self.strength = float(strength)
        self.flow_max_side = int(flow_max_side) if flow_max_side else None
        self.params, self.alpha, self.beta = params, float(alpha), float(beta)
        self.visibility_alpha = float(visibility_alpha)
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # input, gray, S
        self.frames = 0
        self.mean_weights: list[float] = []  # mean w_t per frame after the first

    def __call__(self, input_frame: np.ndarray, output_frame: np.ndarray) -> np.ndarray:
        """The stabilised (H, W, 3) uint8 frame of ``output_frame`` (H, W, 3) uint8, the
        per-frame result for ``input_frame`` (H, W, 3) uint8, the next frame of the video.

        Raises ValueError when the two differ in size or the size changes between frames
        (the video pipeline guarantees both: a caller's bug).
        """
        inp, out = np.asarray(input_frame), np.asarray(output_frame)
        if inp.shape != out.shape or inp.ndim != 3 or inp.shape[2] != 3:
            raise ValueError(f"input {inp.shape} and output {out.shape} must be one (H, W, 3) size")
        self.frames += 1
        if self.strength == 0.0:
            return out
        if self._prev is not None and self._prev[0].shape != inp.shape:
            raise ValueError(f"frame size changed from {self._prev[0].shape} to {inp.shape}")
        out_f = out.astype(np.float32)
        prev, gray = self._prev, None
        if prev is None:
            stab = out_f
        elif np.array_equal(inp, prev[0]):
            # Same input: zero flow, identity warp, every pixel trusted and visible.
            stab = out_f + self.strength * (prev[2] - out_f)
            gray = prev[1]
            self.mean_weights.append(self.strength)
        else:
            gray = to_gray(inp)
            weight, maps = self._weights(inp, gray, prev)
            stab = out_f + weight[..., None] * (warp(prev[2], maps, cubic=True) - out_f)
            np.clip(stab, 0.0, 255.0, out=stab)  # bicubic overshoot must not accumulate
            self.mean_weights.append(float(weight.mean()))
        if gray is None:
            gray = to_gray(inp)
        self._prev = (np.array(inp, np.uint8, copy=True), gray, stab)
        return np.clip(np.rint(stab), 0, 255).astype(np.uint8)

    def _weights(self, inp: np.ndarray, gray: np.ndarray, prev) -> tuple[np.ndarray, np.ndarray]:
        """(w_t (H, W) float32, sampling maps (H, W, 2)) for frame t against ``prev``."""
        prev_inp, prev_gray, _ = prev
        flow_b = farneback_flow(gray, prev_gray, self.params, self.flow_max_side)
        flow_f = farneback_flow(prev_gray, gray, self.params, self.flow_max_side)
        mask, maps = consistency_mask(flow_b, flow_f, self.alpha, self.beta)
        warped_inp = warp(prev_inp, maps, cubic=True).astype(np.float32)
        residual = np.sum(((inp.astype(np.float32) - warped_inp) / 255.0) ** 2, axis=-1)
        trust = mask * np.exp(-self.visibility_alpha * residual)
        if trust.mean() < CUT_SHARE:
            trust[:] = 0.0
        return (self.strength * trust).astype(np.float32), maps
