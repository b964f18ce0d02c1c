"""Structure representation: superpixels of an image batch, each filled with its colour.

White-box cartoonization's "structure" target (Wang & Yu, CVPR 2020): the generator output
is segmented into superpixels and every superpixel is flattened to one colour; the structure
loss compares VGG features of the output with those of this flattened copy. It is a constant
target, so it is computed under ``torch.no_grad()`` on a detached input.

Backends (``method``):

- ``"slic"``: scikit-image SLIC (n_segments=seg_num, compactness=10, sigma=1, Lab), mean
  colour per superpixel. The faithful one, and the reference for the others.
  (representations/superpixel_slic.py; CPU, per image.)
- ``"sscolor"``: felzenszwalb + selective-search merging down to seg_num regions + adaptive
  mean/median colouring + power curve (white-box's ``selective_adacolor``).
  (representations/superpixel_sscolor.py; CPU, per image, slowest.)
- ``"fast"`` (default): SLIC batched in torch on the images' own device, no host round
  trip; mean colour per superpixel. Its fill error on real faces is within 10% of
  ``slic``'s (lower, in fact) with a region count within 30% of seg_num; tested in
  tests/representations/test_structure.py, timed in bench/bench_structure.py.
  (representations/superpixel_fast.py.)

Example::

    >>> x = torch.rand(2, 3, 64, 64) * 2 - 1
    >>> y = structure(x, method="fast", seg_num=50)
    >>> y.shape, bool(y.abs().max() <= 1)
    (torch.Size([2, 3, 64, 64]), True)
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from representations import superpixel_fast, superpixel_slic, superpixel_sscolor
from representations.defaults import DEFAULT_METHOD, SEG_NUM

STRUCTURE_METHODS = ("fast", "slic", "sscolor")
POWER = superpixel_sscolor.POWER  # used by "sscolor" only, as in white-box

# On accelerators the range check costs a host sync: a ``Structure`` operator runs it on its
# first call and then once every RANGE_CHECK_EVERY calls there (always on CPU, where it is free).
RANGE_CHECK_EVERY = 100
# The generator has no output activation (white-box's, ``--output-act none``), so its output
# leaves [-1, 1] as a matter of course: the demo's trained styles reach -2.1 and +1.7 (1-2% of
# the pixels of a batch), and early adversarial steps went past +-4 (the demo, step 6). That is
# expected and not warned about. Values beyond this bound mean a batch in another range
# ([0, 255]: a photo's maximum is far above it) or a diverging generator; one warning.
# ([0, 1] data cannot be told apart.)
FAR_OUTSIDE = 32.0


def _check(images: torch.Tensor, method: str, seg_num: int) -> None:
    if method not in STRUCTURE_METHODS:
        raise ValueError(f"unknown structure method {method!r}; choose one of {', '.join(STRUCTURE_METHODS)}")
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"structure expects a tensor of shape (B, 3, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"structure expects images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"structure expects float images in [-1, 1] of shape (B, 3, H, W), got {images.dtype}")
    if seg_num < 1:
        raise ValueError(f"seg_num must be >= 1, got {seg_num}")


def _far_outside(x: torch.Tensor) -> bool:
    lo, hi = torch.aminmax(x.detach())  # one pass over the batch, one host sync
    return bool((lo < -FAR_OUTSIDE) | (hi > FAR_OUTSIDE))


def _warn_range() -> None:
    warnings.warn(f"structure: input far outside [-1, 1] (beyond +-{FAR_OUTSIDE:g}): a batch in "
                  "[0, 255], or a diverging generator?", RuntimeWarning, stacklevel=4)


@torch.no_grad()
def structure(
    images: torch.Tensor, method: str = DEFAULT_METHOD, seg_num: int = SEG_NUM, power: float = POWER
) -> torch.Tensor:
    """Structure representation: every superpixel filled with its colour.

    Args:
        images: (B, 3, H, W) float in [-1, 1]; a generator's output beyond it is expected
            and kept (see :func:`_structure`); values beyond +-FAR_OUTSIDE (a batch in
            another range) give a RuntimeWarning (Python shows it once per call site).
            Gradients are not tracked: the result is a constant target.
        method: "fast" (torch SLIC, any device), "slic" (skimage, faithful) or "sscolor"
            (selective search + adaptive colouring).
        seg_num: approximate number of superpixels (SLIC) / regions left after merging
            (sscolor).
        power: sscolor's final curve exponent, c ** power / max; ignored by the SLIC methods
            (white-box's SLIC target has no curve).
    Returns:
        (B, 3, H, W), in [-1, 1] where ``images`` is, same dtype and device, no grad.
    Raises:
        ValueError: an unknown method, a batch of another shape, integer images, seg_num < 1.
    """
    out, outside = _structure(images, method, seg_num, power, check_range=True)
    if outside:
        _warn_range()
    return out


def _structure(images: torch.Tensor, method: str, seg_num: int, power: float, check_range: bool
               ) -> tuple[torch.Tensor, bool]:
    """(structure, whether the input was far outside [-1, 1]). What leaves [-1, 1]:

    - "fast": the input as it is; slic_fill is range-agnostic (it stretches every image to
      [0, 1] for the Lab conversion, and a mean fill commutes with the affine map), so no
      full-size rescaling on the way in or out, and the fill is the mean of the real values;
    - "slic": superpixels of the image clamped to [-1, 1] (skimage's Lab conversion expects
      [0, 1]), each filled with the mean of the real values;
    - "sscolor": clamped (its colouring and power curve work on [0, 1] colours; white-box
      notes that its adaptive colouring needs the generator's output clipped).

    White-box fills superpixels of the unclipped generator output with their mean colour
    (``label2rgb(kind="avg")`` of the raw batch), so a target that follows the output beyond
    [-1, 1] is the faithful one; clamping it would pull every overshoot back, a term of its own.
    """
    _check(images, method, seg_num)
    x = images.detach()
    far = check_range and _far_outside(x)
    if method == "fast":
        out = superpixel_fast.slic_fill(x, seg_num)[0]
        return out.to(images.dtype).contiguous(), far
    x01 = ((x.float() + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
    if method == "slic":
        labels = superpixel_slic.slic_fill(np.clip(x01, 0.0, 1.0), seg_num)[1]
        filled = superpixel_slic.mean_fill_np(x01, labels)
    else:
        filled = np.stack([superpixel_sscolor.sscolor_fill(im, seg_num, power)[0]
                           for im in np.clip(x01, 0.0, 1.0)])
    out01 = torch.from_numpy(filled).permute(0, 3, 1, 2)
    return (out01 * 2 - 1).to(device=images.device, dtype=images.dtype).contiguous(), far


class Structure(nn.Module):
    """Module form of :func:`structure` (no parameters), as the trainer uses it.

    It warns at most once about inputs far outside [-1, 1], and on accelerators checks the range
    on its first call and then every RANGE_CHECK_EVERY calls only (the check costs a host sync
    there; on the CPU it is free and runs every call until it has warned).
    """

    def __init__(self, method: str = DEFAULT_METHOD, seg_num: int = SEG_NUM, power: float = POWER):
        super().__init__()
        if method not in STRUCTURE_METHODS:
            raise ValueError(f"unknown structure method {method!r}; choose one of {', '.join(STRUCTURE_METHODS)}")
        self.method, self.seg_num, self.power = method, seg_num, power
        self.calls, self.warned = 0, False

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check = not self.warned and (images.device.type == "cpu" or self.calls % RANGE_CHECK_EVERY == 0)
        self.calls += 1
        out, outside = _structure(images, self.method, self.seg_num, self.power, check)
        if outside:
            self.warned = True
            _warn_range()
        return out

    def extra_repr(self) -> str:
        return f"method={self.method!r}, seg_num={self.seg_num}, power={self.power}"
