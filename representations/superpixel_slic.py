"""scikit-image SLIC superpixels with a vectorised mean fill: the faithful ``slic`` backend.

This is white-box's ``simple_superpixel`` (SLIC, n_segments=seg_num, compactness=10, sigma=1,
Lab) with the colour fill done by ``np.bincount`` over the whole batch at once instead of
``label2rgb``'s Python loop over labels, and without a process pool: in-process it is about
as fast as the seed's pool on 2 cores at 128x128 (bench/bench_structure.py) and keeps the
trainer free of worker processes.
It is the reference the other backends are compared with.
"""
from __future__ import annotations

import numpy as np
from skimage.segmentation import slic
from representations.defaults import SEG_NUM

# white-box cartoonization's SLIC call (train_code/utils.py: simple_superpixel)
COMPACTNESS = 10.0
SIGMA = 1.0
# skimage's own default, named here so the faithful setting is visible in one place
MAX_NUM_ITER = 10


def slic_labels(image01: np.ndarray, seg_num: int = SEG_NUM) -> np.ndarray:
    """SLIC labels of one image.

    Args:
        image01: (H, W, 3) float RGB in [0, 1].
        seg_num: approximate number of superpixels (``n_segments``).
    Returns:
        (H, W) int64 labels in [0, n) with every label present (connected superpixels:
        skimage enforces connectivity).
    """
    labels = slic(
        image01,
        n_segments=seg_num,
        compactness=COMPACTNESS,
        sigma=SIGMA,
        max_num_iter=MAX_NUM_ITER,
        convert2lab=True,
        enforce_connectivity=True,
        start_label=0,
        channel_axis=-1,
    )
    # skimage's labels are consecutive already; make it a guarantee for the bincount fill
    _, consecutive = np.unique(labels, return_inverse=True)
    return consecutive.reshape(labels.shape).astype(np.int64)


def mean_fill_np(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fill every superpixel with the mean colour of the image over it, for a whole batch.

    Labels of different images are offset so that one ``np.bincount`` per channel does the
    whole batch (no loop over labels or images).

    Args:
        images: (B, H, W, C) float, any range.
        labels: (B, H, W) int labels >= 0, per image.
    Returns:
        (B, H, W, C) float64.
    """
    b, h, w, c = images.shape
    per_image = labels.reshape(b, -1).max(1) + 1
    offsets = np.concatenate(([0], np.cumsum(per_image)[:-1]))
    flat = (labels.reshape(b, -1) + offsets[:, None]).reshape(-1)
    total = int(per_image.sum())
    counts = np.bincount(flat, minlength=total).astype(np.float64)
    vals = images.reshape(-1, c).astype(np.float64)
    means = np.stack(
        [np.bincount(flat, weights=vals[:, ch], minlength=total) for ch in range(c)], 1
    ) / np.maximum(counts, 1)[:, None]
    return means[flat].reshape(b, h, w, c)


def slic_fill(images01: np.ndarray, seg_num: int = SEG_NUM) -> tuple[np.ndarray, np.ndarray]:
    """SLIC superpixels of a batch, each filled with its mean colour.

    Args:
        images01: (B, H, W, 3) float RGB in [0, 1].
    Returns:
        filled (B, H, W, 3) float64 in [0, 1] and labels (B, H, W) int64.
    """
    labels = np.stack([slic_labels(im, seg_num) for im in images01])
    return mean_fill_np(images01, labels), labels
