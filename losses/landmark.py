"""Landmark loss: keep the photo's facial structure (eyes, mouth, outline) in the output.

Given the landmark map ``lmap`` of the photo (faces.render_landmark_map: channel 0
soft contours of eyes, brows, lips, nose and face oval; channel 1 soft region masks), the
per-image loss is an *edge deficit* of the output measured along the photo's edges:

    w        = CONTOUR_WEIGHT * lmap[0] + REGION_WEIGHT * lmap[1]            (weight map)
    Y        = 0.299 R + 0.587 G + 0.114 B                                  (luminance)
    g_p, g_o = Sobel(Y_photo), Sobel(Y_output)          (2-vectors per pixel, slope per pixel)
    u        = g_p / max(|g_p|, TINY_GRADIENT)          (the photo's edge normal, a constant)
    loss_i   = sum( w * relu(|g_p| - g_o . u) ) / sum(w)

i.e. at every pixel the landmark map marks, the output must have at least the photo's
luminance step across the photo's edge, with the same polarity; what it lacks is the loss.
The batch loss is the mean of loss_i over the images whose face was found (``valid``) and
whose map is not empty; the others contribute exactly zero, and a batch without any gives a
zero that is still connected to the graph.

Why this form keeps eyes, mouth and outline against the other white-box terms:
- Smoothing (the guided filter, the TV term, the surface representation) lowers luminance
  steps; an eyelid, a lip line, a nostril or the jaw line is exactly such a step, so a smoothed
  eye lowers g_o . u where |g_p| is large and the deficit grows with the contrast lost
  (tests: stronger blur -> larger loss).
- Superpixel flattening (the structure term pulls the output towards mean-coloured SLIC /
  selective-search regions) removes the steps that do not lie on region borders and moves the
  others onto the borders; both leave a deficit *at the landmark contours*, the only place the
  loss looks. A step of the wrong polarity (g_o . u < 0) costs more than a missing one, and a
  step in another direction (g_o perpendicular to u) counts as missing, so a drifting or
  shrinking eye is penalised too.
- The cartoon style is not penalised: a colour shift or brightness change adds a constant to
  Y and leaves every gradient unchanged; hue changes vanish in Y; *more* contrast along the
  photo's edges (cartoon ink lines, darker pupils, crisper lips) costs nothing, because only the
  deficit counts. A symmetric |g_o - g_p| would punish ink lines like blur: on the 49
  ffhq-mini pairs the white-box authors' own face cartoons score like a sigma-4 blur under it.
  Under this form they score 0.035, between a sigma-1 (0.030) and a sigma-2 Gaussian blur
  (0.052) of the photo and below SLIC-200 flattening (0.062), on every one of the 49 faces.
  Flat shading of cheeks, forehead, hair and background costs nothing since w = 0 there.
- Normalising by sum(w) makes the loss independent of face size and map resolution, so one
  weight (``--w5``) fits close-ups and small faces alike.

Everything is computed in float32 (float64 inputs stay float64, for gradcheck) with elementwise
ops (no conv), so a bf16 autocast region in the trainer does not lower its precision. The map
and the photo are constant targets (detached).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Defaults: the only numbers in the loss, kept in one place (recorded by the trainer).
CONTOUR_WEIGHT = 1.0   # weight of the contour channel in the weight map
REGION_WEIGHT = 0.5    # weight of the region channel (filled eyes, mouth, nose, brows)
LUMA_RGB = (0.299, 0.587, 0.114)   # Rec. 601 luminance
SOBEL_NORM = 1.0 / 8.0             # Sobel taps sum |.| to 8: per-pixel slope units
TINY_GRADIENT = 1e-6               # below this |g_p| the edge normal is scaled down to 0
_EPS = 1e-8                        # "the map is empty" threshold on sum(w)


def luminance(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W), same range as the input."""
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    return LUMA_RGB[0] * r + LUMA_RGB[1] * g + LUMA_RGB[2] * b


def sobel(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel gradients (gx, gy) of (B, C, H, W) with replicate padding, normalised by 1/8.

    gx[i, j] = (sum_k s_k * (y[i+k, j+1] - y[i+k, j-1])) / 8 with s = (1, 2, 1), k = -1, 0, 1;
    gy likewise along rows. Implemented with slices so that autocast leaves it in float32.
    """
    p = F.pad(y, (1, 1, 1, 1), mode="replicate")
    h, w = y.shape[-2:]
    # horizontal difference, then vertical (1, 2, 1) smoothing
    dx = p[..., :, 2:] - p[..., :, :-2]                     # (B, C, H+2, W)
    gx = (dx[..., 0:h, :] + 2 * dx[..., 1:h + 1, :] + dx[..., 2:h + 2, :]) * SOBEL_NORM
    dy = p[..., 2:, :] - p[..., :-2, :]                     # (B, C, H, W+2)
    gy = (dy[..., :, 0:w] + 2 * dy[..., :, 1:w + 1] + dy[..., :, 2:w + 2]) * SOBEL_NORM
    return gx, gy


def _check(output, photo, lmap, valid):
    if output.ndim != 4 or output.shape[1] != 3:
        raise ValueError(f"output: expected (B, 3, H, W), got {tuple(output.shape)}")
    if photo.shape != output.shape:
        raise ValueError(f"photo {tuple(photo.shape)} and output {tuple(output.shape)} differ")
    b, _, h, w = output.shape
    if lmap.shape != (b, 2, h, w):
        raise ValueError(f"lmap: expected ({b}, 2, {h}, {w}), got {tuple(lmap.shape)}")
    if valid is not None and tuple(valid.shape) != (b,):
        raise ValueError(f"valid: expected ({b},), got {tuple(valid.shape)}")


def landmark_loss_per_image(output: torch.Tensor, photo: torch.Tensor, lmap: torch.Tensor,
                            contour_weight: float = CONTOUR_WEIGHT,
                            region_weight: float = REGION_WEIGHT
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image loss (B,) (float32, or float64 for float64 input) and a (B,) bool mask
    "the weight map is not empty"."""
    dtype = torch.promote_types(output.dtype, torch.float32)   # bf16/fp16 -> fp32; fp64 stays
    out = output.to(dtype)
    ph = photo.detach().to(dtype)
    m = lmap.detach().to(dtype).clamp(0, 1)

    weight = contour_weight * m[:, 0:1] + region_weight * m[:, 1:2]      # (B, 1, H, W)
    w_sum = weight.sum(dim=(1, 2, 3))
    gx_o, gy_o = sobel(luminance(out))
    with torch.no_grad():
        gx_p, gy_p = sobel(luminance(ph))
        mag_p = torch.sqrt(gx_p * gx_p + gy_p * gy_p)
        norm = mag_p.clamp_min(TINY_GRADIENT)
        ux, uy = gx_p / norm, gy_p / norm
    deficit = torch.relu(mag_p - (gx_o * ux + gy_o * uy))
    loss = (weight * deficit).sum(dim=(1, 2, 3)) / w_sum.clamp_min(_EPS)
    return loss, w_sum > _EPS


def landmark_loss(output: torch.Tensor, photo: torch.Tensor, lmap: torch.Tensor,
                  valid: torch.Tensor | None = None,
                  contour_weight: float = CONTOUR_WEIGHT,
                  region_weight: float = REGION_WEIGHT) -> torch.Tensor:
    """Landmark loss (scalar float32 tensor, unweighted; the trainer applies ``--w5``).

    output: (B, 3, H, W) generator output in [-1, 1] (differentiable).
    photo:  (B, 3, H, W) the input photo in [-1, 1] (treated as a constant).
    lmap:   (B, 2, H, W) landmark maps of the photo in [0, 1] (contours, regions).
    valid:  (B,) bool, True where a face was found; None = all.
    Mean over images that are valid and have a non-empty map; 0 (with a graph) if none.

    >>> x = torch.zeros(1, 3, 8, 8, requires_grad=True)
    >>> float(landmark_loss(x, x.detach(), torch.ones(1, 2, 8, 8)))
    0.0
    """
    _check(output, photo, lmap, valid)
    per_image, nonempty = landmark_loss_per_image(output, photo, lmap, contour_weight,
                                                  region_weight)
    use = nonempty if valid is None else nonempty & valid.to(device=nonempty.device, dtype=torch.bool)
    n = use.sum()
    # torch.where, not a product: a skipped image's value never enters the sum (0 * inf = nan)
    total = torch.where(use, per_image, torch.zeros_like(per_image)).sum()
    return total / n.clamp_min(1).to(total.dtype)


def term(state) -> torch.Tensor:
    """The trainer's term (see losses/registry.py for ``state``): the loss over the batch's
    found faces, logging the found fraction as ``landmark/found``."""
    state.log("landmark/found", state.valid.float().mean())
    return landmark_loss(state.output, state.photo, state.lmap, state.valid)
