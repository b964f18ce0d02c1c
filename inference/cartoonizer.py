"""Apply a trained generator to any photo: ``Cartoonizer``.

    >>> toon = Cartoonizer.from_checkpoint("checkpoints/v1", device="cpu")
    >>> cartoon = toon(photo)          # (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB

Steps, as white-box inference but without losing pixels and without a frame at the border:

1. photo -> [-1, 1] (x / 127.5 - 1), given ``CONTEXT`` px of border on every side by
   repeating its edge pixels, plus bottom/right padding to a multiple of 4 (white-box crops to a
   multiple of 8 and caps the side at 720; we crop the padding off afterwards, so the output has
   the input's size). See :data:`CONTEXT` for why: the generator's zero padding would otherwise
   change the outer ~30 px.
2. raw = G(photo); out = guided_filter(photo, raw, r=1, eps) (white-box inference eps 5e-3),
   for a ``models.Generator`` by :func:`inference.fast_generate.fast_generate` (the same
   function in channels_last with fused oneDNN layers; equal to float rounding), or by a
   ``runtime`` such as onnxruntime (``--engine onnxruntime``, :mod:`inference.onnx_engine`).
3. Large images run in overlapping tiles of the padded photo (at most ``tile`` x ``tile``, placed
   evenly, origins on the stride-4 grid), so memory is bounded by the tile size. A tile's pixels
   within ``CONTEXT`` of an edge it shares with another tile are context only (weight 0); the
   rest of the overlap cross-fades. The guided filter runs per tile too (it looks 2 px away).
4. clamp to [-1, 1] -> uint8; ``strength`` blends photo (0) and cartoon (1).

:meth:`Cartoonizer.forward` is the one forward path (single images, video frames, portrait
crops, every caller); :mod:`inference.export` puts the same padding into the exported graph.
``portrait=True`` adds face-scale processing (see :mod:`inference.portrait`).

Videos (and animations) go through :meth:`Cartoonizer.video`, a :class:`VideoStylizer` that
holds what one clip needs across its frames: portrait mode's face tracks
(:class:`inference.portrait.PortraitVideo`) and the optional temporal stabiliser
(:mod:`inference.temporal`).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, ContextManager

import numpy as np
import torch
import torch.nn.functional as F

from media.tensors import to_tensor, to_uint8
from faces import resolve_detector
from inference.fast_generate import fast_generate
from inference.portrait import PortraitProcessor
from inference.styles import choose_generator
from inference.temporal import DEFAULT_FLOW_MAX_SIDE, TemporalStabilizer
from models.generator import Generator
from models.guided_filter import guided_filter
from utils.device import resolve_device
from utils.errors import ToonFaceError
from utils.numbers import finite

INFERENCE_EPS = 5e-3  # white-box's final guided filter at inference (r=1)
GUIDED_FILTER_R = 1
# Context. The generator's receptive field reaches 56 px up/left and 62 px down/right (TF
# "SAME" stride-2 padding is asymmetric; found from the support of d out / d input), and the
# guided filter 2 px more. Near the image border the convolutions' zero padding stands in for
# the missing context and the trained generators draw a frame: without context, a 256x256 crop
# of wb_actress2 differs from the same region of the whole image's cartoon by 26.6 levels on
# average in its outer 4 px (a default-recipe run; bench/bench_borders.py), and a flat
# white image comes out up to 38 levels off near its border. Padding the photo by repeating its
# edge pixels (replicate) before the generator moves the zero padding out of the picture. How
# far it has to go was measured with two trained generators (A_default, B_cs4e4) on flat
# images, where any deviation is the zero padding's: 32 px leaves up to 2.3 levels, 40 px 0.09,
# 48 px 0.00. Replicate beat reflect on photos (outer 4 px of crops of 4 fixture photos, mean
# 4.3-11.9 vs 6.4-14.7 levels with A_default; 11 of 12 generator x photo cases); what remains
# is what the crop does not show. A multiple of 4, so the stride-4 grid stays where it was and
# the interior of the result is unchanged. Cost: (H + 96)(W + 96) / HW, 1.9x at 256x256,
# 1.2x at 1024x1024.
CONTEXT = 48
ALIGN = 4  # the generator downsamples twice
# Tiles: a tile's pixels within CONTEXT of an edge it shares with a neighbour lack context, so
# they get weight 0, and the neighbours cross-fade over the rest of their overlap (at least
# BLEND px). MIN_OVERLAP is the least overlap that leaves every pixel a tile where it has full
# context; smaller --overlap values are raised to it (with a notice), and a tile must be at least
# twice its overlap (so a tile adds at least as many new pixels as it recomputes). The default
# tile takes a 1024x1024 photo with its context (1120 px) in one piece: at 1024 px tiles, that
# photo ran as 4 tiles of 624 px, 1.24x its padded pixels and 1.3x the time of one piece (one
# piece is 1.15x onnxruntime's speed on the exported file there, 4 tiles were 0.91-1.03x in two
# runs; bench_inference.py --vs-onnxruntime), for a peak resident size of 1.1 GB instead of
# 0.7 (fp32, whole process; --tile 1024 keeps the old bound). Large photos compute fewer pixels
# twice too: 2896x1932 is 6 tiles of 1084x1080, 1.26x its pixels, instead of 12 of 844x764, 1.38x.
BLEND = 8
MIN_OVERLAP = 2 * CONTEXT + BLEND
DEFAULT_TILE = 1024 + 2 * CONTEXT
DEFAULT_OVERLAP = 128


def pad_context(x: torch.Tensor, context: int = CONTEXT) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H + 2 context + ph, W + 2 context + pw), edge pixels repeated, where
    ph, pw pad the size to a multiple of ALIGN. The photo sits at [context : context + H].

    Written with size arithmetic only (no Python ints from the shape), so a trace (ONNX,
    TorchScript) records it for any input size.
    """
    h, w = x.shape[-2], x.shape[-1]
    return F.pad(x, (context, context + (-w) % ALIGN, context, context + (-h) % ALIGN), mode="replicate")


def tile_layout(size: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """(tile origins, tile length) along one axis of ``size`` (a multiple of ALIGN) px.

    The fewest tiles of at most ``tile`` px that overlap by at least ``overlap``, all of one
    length (the shortest that works, a multiple of ALIGN) and spread evenly: origins are
    multiples of ALIGN, the first is 0, the last ends at ``size``, and consecutive strides differ
    by ALIGN at most. So the computed pixels are about ``size + (n - 1) * overlap``.
    """
    if size <= tile:
        return [0], size
    n = -(-(size - overlap) // (tile - overlap))
    length = -(-(size + (n - 1) * overlap) // n)
    length += (-length) % ALIGN
    cells = (size - length) // ALIGN
    return [ALIGN * (i * cells // (n - 1)) for i in range(n)], length


def feather_1d(length: int, overlap_before: int, overlap_after: int, context: int = CONTEXT) -> np.ndarray:
    """Weights over a tile: 0 within ``context`` of an edge shared with a neighbour (those pixels
    lack context), then a linear ramp to 1 at ``overlap - context``.

    Two neighbours that overlap by ``overlap`` px get complementary ramps (a partition of unity
    over the overlap). Edges on the image border get no ramp (``overlap_* = 0``).
    """
    w = np.ones(length, np.float32)
    i = np.arange(length, dtype=np.float32) + 0.5
    for ov, dist in ((overlap_before, i), (overlap_after, length - i)):
        if ov > 0:
            w = np.minimum(w, np.clip((dist - context) / max(ov - 2 * context, 1.0), 0.0, 1.0))
    return w


class Cartoonizer:
    """A generator plus everything needed to turn a uint8 RGB photo into its cartoon.

    Args:
        generator: ``models.Generator`` (any module mapping (B, 3, H, W) [-1, 1] to the same shape).
        device: where to run it.
        eps: the final guided filter's eps (r=1).
        strength: 0 = the photo, 1 = the cartoon; linear blend in between.
        tile: largest tile side in pixels (a multiple of 4, at least twice the overlap); images
            whose padded size (see :func:`pad_context`) exceeds it run in tiles; 0 = never tile.
        overlap: least tile overlap in pixels (a multiple of 4); raised to ``MIN_OVERLAP``, with
            a notice, where smaller (a seamless result needs it).
        image_size, face_size: the checkpoint's training crop size and face size (px).
        portrait: scale faces to ``face_size`` (see :mod:`inference.portrait`).
        landmark_detector, landmark_model: the face detector of portrait mode (a name of
            faces.DETECTOR_NAMES or a DetectorSpec; default: mediapipe where its
            legacy API is installed, else dlib) and the Tasks model file.
        notice: callback for one-line notices (e.g. "no face found").
        runtime: what computes generator + guided filter on a photo given its context, in place
            of PyTorch: a callable (B, 3, H, W) float32 -> (B, 3, H, W), such as
            :class:`inference.onnx_engine.OnnxGenerate` (``--engine onnxruntime``); None =
            PyTorch. Everything else (context, tiles, portrait mode, strength) is the same.
    """

    def __init__(self, generator: torch.nn.Module, device: str | torch.device = "cpu", *,
                 eps: float = INFERENCE_EPS, strength: float = 1.0, tile: int = DEFAULT_TILE,
                 overlap: int = DEFAULT_OVERLAP, image_size: int | None = None,
                 face_size: float | None = None, portrait: bool = False,
                 landmark_detector=None, landmark_model=None,
                 notice: Callable[[str], Any] | None = None,
                 runtime: Callable[[torch.Tensor], torch.Tensor] | None = None):
        # NaN passes every comparison: finite() refuses it (and inf) by name
        strength = finite(strength, "strength", 0.0, 1.0)
        eps = finite(eps, "eps", 0.0, low_open=True)
        self.notice = notice or (lambda msg: None)
        self.tile, self.overlap = check_tiling(int(tile), int(overlap), self.notice)
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.eps, self.strength = float(eps), float(strength)
        self.runtime = runtime
        self.image_size, self.face_size = image_size, face_size
        self.context = CONTEXT  # what portrait crops take from around a face (inference.portrait)
        self.portrait = None
        if portrait:
            spec = resolve_detector(landmark_detector, landmark_model)
            if spec.note:
                self.notice(spec.note)
            self.portrait = PortraitProcessor(self, face_size=face_size, image_size=image_size,
                                              landmark_detector=spec)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        *, style: str | None = None, styles_dir: str | os.PathLike = "checkpoints",
                        **kwargs: Any) -> "Cartoonizer":
        """Load a generator file, training checkpoint or run folder (see
        :func:`utils.run_dir.resolve_generator`), or a style / blend of styles by name
        (``style``, see inference/styles.py) found in ``styles_dir``. For onnxruntime see
        :func:`inference.onnx_engine.load_cartoonizer`."""
        dev = resolve_device(str(device))
        G, meta = choose_generator(path, style, styles_dir, dev,
                                   warn=kwargs.get("notice"))
        kwargs.setdefault("image_size", meta.get("image_size"))
        kwargs.setdefault("face_size", meta.get("face_size"))
        toon = cls(G, dev, **kwargs)
        toon.meta = meta
        return toon

    # ------------------------------------------------------------------------------ public

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB photo -> (H, W, 3) uint8 RGB cartoon of the same size."""
        rgb = check_rgb(rgb)
        if self.portrait is not None:
            cartoon = self.portrait(rgb)
        else:
            cartoon = self.stylize(rgb)
        return blend(rgb, cartoon, self.strength)

    def video(self, temporal: float = 0.0,
              flow_max_side: int | None = DEFAULT_FLOW_MAX_SIDE, *, strength: float | None = None,
              guard: Callable[[], ContextManager] | None = None) -> "VideoStylizer":
        """A :class:`VideoStylizer` for the frames of one clip (a video or an animation), in
        order: the one clip pipeline of the command line and the service (see
        :mod:`inference.clips`). ``temporal``: the stabiliser's strength in [0, 1), 0 = off;
        ``flow_max_side``: see :class:`inference.temporal.TemporalStabilizer`; ``strength``:
        the clip's blend with the photo (None: this cartoonizer's); ``guard``: a context entered
        around each batch of frames (the service: its precision's autocast, and a lock where
        portrait mode's detector is shared with still pictures)."""
        return VideoStylizer(self, temporal, flow_max_side, strength=strength, guard=guard)

    def stylize_batch(self, frames: list[np.ndarray], strength: float | None = None) -> list[np.ndarray]:
        """Same as calling on each frame (``strength`` applied; None: this cartoonizer's);
        untiled same-size frames run as one batch. Frames are independent here: for the frames
        of a video use :meth:`video`."""
        if not frames:
            return []
        strength = self.strength if strength is None else finite(strength, "strength", 0.0, 1.0)
        frames = [check_rgb(f) for f in frames]
        h, w = frames[0].shape[:2]
        same = all(f.shape == frames[0].shape for f in frames)
        if self.portrait is not None or not same or not self._one_tile(h, w) or len(frames) == 1:
            return [blend(f, self.portrait(f) if self.portrait is not None else self.stylize(f),
                          strength) for f in frames]
        x = torch.stack([to_tensor(f) for f in frames]).to(self.device)
        out = self._forward_padded(x)
        return [blend(f, to_uint8(o), strength) for f, o in zip(frames, out)]

    @torch.no_grad()
    def stylize(self, rgb: np.ndarray) -> np.ndarray:
        """The cartoon of the whole image at its own scale (no portrait logic, no strength)."""
        rgb = check_rgb(rgb)
        if self._one_tile(*rgb.shape[:2]):
            x = to_tensor(rgb)[None].to(self.device)
            return to_uint8(self._forward_padded(x)[0])
        return self._stylize_tiled(rgb)

    # ----------------------------------------------------------------------------- internals

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Any (B, 3, H, W) in [-1, 1] -> guided-filtered (B, 3, H, W), unclamped.

        The photo gets ``CONTEXT`` px of repeated edge pixels on every side and the padding to a
        multiple of 4 (:func:`pad_context`), and the result is cropped back: the one forward
        path of every caller, so none of them sees the zero padding's frame.
        """
        h, w = x.shape[-2:]
        return self._generate(pad_context(x))[..., CONTEXT:CONTEXT + h, CONTEXT:CONTEXT + w]

    def _generate(self, xp: torch.Tensor) -> torch.Tensor:
        """G + guided filter on an already padded (B, 3, H, W), H and W multiples of 4."""
        if self.runtime is not None:
            return self.runtime(xp)
        if isinstance(self.generator, Generator):  # the trainer's module, run for inference
            return fast_generate(self.generator, xp, GUIDED_FILTER_R, self.eps)
        return guided_filter(xp, self.generator(xp), GUIDED_FILTER_R, self.eps)

    def _one_tile(self, h: int, w: int) -> bool:
        """Whether an h x w image runs in one piece (its padded size fits a tile)."""
        pad = 2 * CONTEXT + ALIGN - 1
        return not self.tile or (h + pad) // ALIGN * ALIGN <= self.tile and (w + pad) // ALIGN * ALIGN <= self.tile

    @torch.no_grad()
    def _forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Any (B, 3, H, W) -> (B, 3, H, W) in [-1, 1] on the CPU (:meth:`forward`, clamped)."""
        return self.forward(x).clamp(-1.0, 1.0).cpu()

    @torch.no_grad()
    def _stylize_tiled(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        x = pad_context(to_tensor(rgb)[None])  # stays on the CPU; tiles move
        hp, wp = x.shape[-2:]
        acc = np.zeros((hp, wp, 3), np.float32)
        wsum = np.zeros((hp, wp, 1), np.float32)
        (ys, th), (xs, tw) = tile_layout(hp, self.tile, self.overlap), tile_layout(wp, self.tile, self.overlap)
        for i, y0 in enumerate(ys):
            wy = feather_1d(th, _shared(ys, th, i - 1), _shared(ys, th, i))
            for j, x0 in enumerate(xs):
                wx = feather_1d(tw, _shared(xs, tw, j - 1), _shared(xs, tw, j))
                tile = x[..., y0:y0 + th, x0:x0 + tw].to(self.device)
                # float(): under bf16 autocast the tile comes back in bf16, which numpy lacks
                out = self._generate(tile)[0].float().clamp(-1.0, 1.0).permute(1, 2, 0).cpu().numpy()
                wt = (wy[:, None] * wx[None, :])[..., None]
                acc[y0:y0 + th, x0:x0 + tw] += out * wt
                wsum[y0:y0 + th, x0:x0 + tw] += wt
        out = (acc / wsum)[CONTEXT:CONTEXT + h, CONTEXT:CONTEXT + w]
        return np.clip(np.rint((out + 1.0) * 127.5), 0, 255).astype(np.uint8)


class VideoStylizer:
    """The cartoon of a clip's frames, given in order: what one clip needs across frames.

    - plain mode: :meth:`Cartoonizer.stylize_batch` (each frame on its own);
    - portrait mode: faces tracked and smoothed over frames, scales held, face-less frames
      stylized whole (:class:`inference.portrait.PortraitVideo`);
    - ``temporal`` > 0: each result is blended with the flow-warped previous result where the
      input's flow is trusted (:class:`inference.temporal.TemporalStabilizer`), after the
      ``strength`` blend, so the frames written are the ones stabilised.

    Call it with lists of consecutive (H, W, 3) uint8 RGB frames (any length, e.g. the batches
    of :func:`media.transcode.transcode`); it returns as many (H, W, 3) uint8 frames. One
    instance per clip: it keeps state (two frames for the stabiliser, the face tracks).
    ``strength`` (None: the cartoonizer's) and ``guard`` (a context entered around each call):
    see :meth:`Cartoonizer.video`. :meth:`notices` gives the one-line remarks of the whole clip
    (e.g. frames without a face), once, instead of one per frame. Raises ToonFaceError for a
    ``temporal`` outside [0, 1) or a ``strength`` outside [0, 1].
    """

    def __init__(self, toon: Cartoonizer, temporal: float = 0.0,
                 flow_max_side: int | None = DEFAULT_FLOW_MAX_SIDE, *, strength: float | None = None,
                 guard: Callable[[], ContextManager] | None = None):
        self.toon = toon
        self.strength = toon.strength if strength is None else finite(strength, "strength", 0.0, 1.0)
        self.guard = guard or contextlib.nullcontext
        self.portrait = toon.portrait.video() if toon.portrait is not None else None
        self.stabilizer = TemporalStabilizer(temporal, flow_max_side) if temporal else None

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        frames = [check_rgb(f) for f in frames]
        with self.guard():
            if self.portrait is not None:
                outs = [blend(f, self.portrait(f), self.strength) for f in frames]
            else:
                outs = self.toon.stylize_batch(frames, self.strength)
        if self.stabilizer is not None:
            outs = [self.stabilizer(f, o) for f, o in zip(frames, outs)]
        return outs

    def notices(self) -> list[str]:
        """One-line remarks about the frames so far (portrait mode: frames without a face)."""
        return self.portrait.notices() if self.portrait is not None else []


def _shared(starts: list[int], length: int, i: int) -> int:
    """Overlap in px of tile i with tile i + 1 (0 where either does not exist)."""
    if i < 0 or i + 1 >= len(starts):
        return 0
    return starts[i] + length - starts[i + 1]


def check_tiling(tile: int, overlap: int, notice: Callable[[str], Any]) -> tuple[int, int]:
    """(tile, overlap) to use: an overlap under MIN_OVERLAP is raised to it (saying so); raises
    ToonFaceError (one line) for a tile that is not a multiple of ALIGN or under twice the
    overlap."""
    if tile < 0 or tile % ALIGN:
        raise ToonFaceError(f"--tile must be 0 or a positive multiple of {ALIGN}, got {tile}")
    if not tile:
        return 0, overlap
    if overlap < 0 or overlap % ALIGN:
        raise ToonFaceError(f"--overlap must be a multiple of {ALIGN}, got {overlap}")
    if overlap < MIN_OVERLAP:
        notice(f"--overlap {overlap} raised to {MIN_OVERLAP}: seamless tiles need {CONTEXT} px of "
               f"context on each side of a shared edge plus {BLEND} px to blend")
        overlap = MIN_OVERLAP
    if tile < 2 * overlap:
        raise ToonFaceError(f"--tile {tile} is too small for --overlap {overlap}: a tile must be at "
                            f"least twice the overlap ({2 * overlap} px; seamless tiles need an "
                            f"overlap of {MIN_OVERLAP} px or more), or 0 for no tiles")
    return tile, overlap


# ------------------------------------------------------------------------------- helpers


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ToonFaceError(f"expected an (H, W, 3) uint8 RGB image, got {desc}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ToonFaceError(f"zero-size image {rgb.shape[1]}x{rgb.shape[0]}")
    return rgb


def blend(photo: np.ndarray, cartoon: np.ndarray, strength: float) -> np.ndarray:
    """(1 - strength) * photo + strength * cartoon, uint8."""
    if strength >= 1.0:
        return cartoon
    if strength <= 0.0:
        return photo.copy()
    mix = photo.astype(np.float32) * (1.0 - strength) + cartoon.astype(np.float32) * strength
    return np.clip(np.rint(mix), 0, 255).astype(np.uint8)
