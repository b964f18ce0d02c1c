"""Temporal stability of a video result: the warping error (flicker), and the input's own floor.

For consecutive frames t-1, t of the input I and the output O (uint8 RGB, scaled to [0, 1]):

1. Optical flow on the *input* frames only (the output's flicker must not steer its own
   judge): OpenCV Farneback (Farneback 2003, "Two-frame motion estimation based on polynomial
   expansion") on the gray frames, backward w_b (frame t -> t-1: I_t(x) ~ I_{t-1}(x + w_b(x)))
   and forward w_f (t-1 -> t).
2. Occlusion mask by the forward-backward consistency check of Sundaram, Brox and Keutzer 2010
   ("Dense point trajectories by GPU-accelerated large displacement optical flow"), as used for
   video style transfer by Ruder, Dosovitskiy and Brox 2016 ("Artistic style transfer for
   videos"): pixel x of frame t is kept when

       |w_b(x) + w_f(x + w_b(x))|^2 <= alpha (|w_b(x)|^2 + |w_f(x + w_b(x))|^2) + beta,

   alpha = 0.01, beta = 0.5 px^2 (their constants), and when x + w_b(x) lies inside frame t-1
   (pixels that come from outside the frame have nothing to compare with). Ruder et al. also
   drop motion boundaries; that extra mask is not applied here.
3. Warped previous frame W(x) = O_{t-1}(x + w_b(x)) (bilinear, ``cv2.remap``), and

       E_t = mean over kept pixels x and the 3 channels of |O_t(x) - W(x)|

   in [0, 1] pixel units (0: the output moves exactly like the input; a frame-to-frame
   brightness flicker of c adds about c). The same with I instead of O gives the input's own
   warping error, the floor that flow errors, lighting changes and noise set for any output.

A video's warping error is the mean of E_t over its frame pairs (each pair weighs the same);
a pair with no kept pixel (a cut, say) has ``None`` and is left out of the means and counted.

Farneback parameters (:class:`FarnebackParams`): pyramid scale 0.5 with 5 levels (the
coarsest at 1/16 size, so motions of tens of pixels per frame are found), 15 px window,
3 iterations, polynomial neighbourhood 5 with sigma 1.1 (OpenCV's recommended pair), no
Gaussian window. The flow, the mask and the warp are :mod:`inference.flow`'s, shared with the
``--temporal`` stabiliser of ``cartoonize.py``.

Cost per frame pair on one of these CPU cores: ~70 ms at 256x256, ~3.3 s at 1920x1080.
``flow_max_side`` computes the two flows on frames shrunk to that longest side (the flow is
then enlarged and its vectors scaled back to full-size pixels; the mask and the error stay at
full size), trading flow detail for time: 1080p pairs took 1.35 s at 960 and 0.85 s at 480,
the rest being the full-size warp and mask. Default: full size.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Iterable

import numpy as np

from evaluation.rgb import resize_to
# The flow and the trusted-pixel mask live in inference (the --temporal stabiliser uses the
# same ones); re-exported here as part of the metric's API.
from inference.flow import (CONSISTENCY_ALPHA, CONSISTENCY_BETA, FarnebackParams,  # noqa: F401
                            consistency_mask, farneback_flow, to_gray, warp)
from utils.arrays import check_rgb
from utils.errors import ToonFaceError


def _masked_mad(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean |a - b| over masked pixels and channels, a and b float32 in [0, 1]."""
    return float(np.abs(a[mask] - b[mask]).mean())


class WarpingErrorAccumulator:
    """Warping error fed one (input frame, output frame) pair at a time: memory stays at two
    frames whatever the video's length.

    Frames: uint8 (H, W, 3) RGB. The input's size is fixed by the first frame; an output of
    another size but the same aspect ratio is resized to it (another aspect ratio: ToonFaceError).
    params, alpha, beta, flow_max_side: see the module docstring (flow_max_side < 16 px:
    ToonFaceError).

        acc = WarpingErrorAccumulator()
        for inp, out in frames:
            acc.add(inp, out)
        acc.result()   # {"summary": {...}, "per_pair": {...}, "settings": {...}}
    """

    def __init__(self, params: FarnebackParams = FarnebackParams(),
                 alpha: float = CONSISTENCY_ALPHA, beta: float = CONSISTENCY_BETA,
                 flow_max_side: int | None = None):
        if flow_max_side is not None and int(flow_max_side) < 16:
            raise ToonFaceError(f"flow_max_side must be at least 16 px, got {flow_max_side}")
        self.params = params
        self.flow_max_side = int(flow_max_side) if flow_max_side else None
        self.alpha = float(alpha)
        self.beta = float(beta)
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # gray, in, out
        self.frames = 0
        self.output_errors: list[float | None] = []
        self.input_errors: list[float | None] = []
        self.kept_fractions: list[float] = []

    def add(self, input_frame: np.ndarray, output_frame: np.ndarray) -> dict | None:
        """Add the next frame pair; returns that frame pair's values (None for the first frame):
        ``{"warping_error": E_t of the output, "warping_error_input": E_t of the input,
        "kept_fraction": share of pixels in the mask}`` (errors None when no pixel is kept)."""
        inp = check_rgb(input_frame, f"input frame {self.frames}")
        if self._prev is not None and inp.shape != self._prev[1].shape:
            raise ToonFaceError(f"input frame {self.frames} is {inp.shape[1]}x{inp.shape[0]}, "
                                f"the first was {self._prev[1].shape[1]}x{self._prev[1].shape[0]}")
        out = resize_to(check_rgb(output_frame, f"output frame {self.frames}"), inp.shape[:2],
                        f"output frame {self.frames}")
        gray = to_gray(inp)
        inp_f = inp.astype(np.float32) / 255.0
        out_f = out.astype(np.float32) / 255.0
        self.frames += 1
        prev, self._prev = self._prev, (gray, inp_f, out_f)
        if prev is None:
            return None
        prev_gray, prev_in, prev_out = prev
        flow_b = farneback_flow(gray, prev_gray, self.params, self.flow_max_side)
        flow_f = farneback_flow(prev_gray, gray, self.params, self.flow_max_side)
        mask, maps = consistency_mask(flow_b, flow_f, self.alpha, self.beta)
        kept = float(mask.mean())
        if mask.any():
            e_out = _masked_mad(out_f, warp(prev_out, maps), mask)
            e_in = _masked_mad(inp_f, warp(prev_in, maps), mask)
        else:
            e_out = e_in = None
        self.output_errors.append(e_out)
        self.input_errors.append(e_in)
        self.kept_fractions.append(kept)
        return {"warping_error": e_out, "warping_error_input": e_in, "kept_fraction": kept}

    def result(self) -> dict:
        """``{"summary", "per_pair", "settings"}``.

        summary: ``frames``; ``frame_pairs`` (frames - 1); ``frame_pairs_without_kept_pixels``;
        ``warping_error_mean`` (output), ``warping_error_input_mean`` (the floor),
        ``warping_error_median``, ``kept_fraction_mean``: means over frame pairs with kept
        pixels, ``None`` when there is none (fewer than 2 frames). per_pair: lists
        ``warping_error``, ``warping_error_input``, ``kept_fraction`` (pair t-1 -> t at index
        t-1). Raises ToonFaceError when no frame was added.
        """
        if self.frames == 0:
            raise ToonFaceError("no video frames to measure the warping error on")

        def stat(values, fn):
            vals = [v for v in values if v is not None]
            return float(fn(vals)) if vals else None

        summary = {
            "frames": self.frames,
            "frame_pairs": len(self.output_errors),
            "frame_pairs_without_kept_pixels": sum(v is None for v in self.output_errors),
            "warping_error_mean": stat(self.output_errors, np.mean),
            "warping_error_median": stat(self.output_errors, np.median),
            "warping_error_input_mean": stat(self.input_errors, np.mean),
            "kept_fraction_mean": stat(self.kept_fractions, np.mean),
        }
        return {"summary": summary,
                "per_pair": {"warping_error": list(self.output_errors),
                             "warping_error_input": list(self.input_errors),
                             "kept_fraction": list(self.kept_fractions)},
                "settings": {"farneback": asdict(self.params), "alpha": self.alpha,
                             "beta": self.beta, "flow_on": "input",
                             "flow_max_side": self.flow_max_side}}


def warping_error(input_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray],
                  params: FarnebackParams = FarnebackParams(), alpha: float = CONSISTENCY_ALPHA,
                  beta: float = CONSISTENCY_BETA, flow_max_side: int | None = None) -> dict:
    """Warping error of an output video against its input video (see the module docstring).

    input_frames, output_frames: equally long iterables of uint8 (H, W, 3) RGB frames, in order,
    consumed one pair at a time (generators from a decoder are fine). params, alpha, beta,
    flow_max_side: see :class:`WarpingErrorAccumulator`. Returns
    :meth:`WarpingErrorAccumulator.result`. Raises ToonFaceError when the two differ in length,
    there are no frames, or a frame is not uint8 RGB / changes size / has another aspect ratio.
    """
    acc = WarpingErrorAccumulator(params, alpha, beta, flow_max_side)
    end = object()
    it_in, it_out = iter(input_frames), iter(output_frames)
    while True:
        a, b = next(it_in, end), next(it_out, end)
        if a is end and b is end:
            break
        if a is end or b is end:
            raise ToonFaceError(f"input and output videos differ in length: one ended after "
                                f"{acc.frames} frames")
        acc.add(a, b)
    return acc.result()

