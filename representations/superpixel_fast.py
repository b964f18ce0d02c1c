"""Batched SLIC superpixels in torch: the ``fast`` structure backend.

One k-means in (Lab / compactness, yx / step) space for the whole batch, the formulation of
``skimage.segmentation.slic`` (Achanta et al. 2012, [1]) but without a per-image Python loop
and without any host round trip, so it runs on CUDA inside the training step and on CPU:

1. image in [0, 1] -> per-image min/max stretch (skimage does the same) -> 2x2 mean pooling
   -> Lab (torch port of ``skimage.color.rgb2lab``) -> Gaussian blur (sigma 1 full-res
   pixel) in Lab, as skimage blurs after the conversion;
2. centres on skimage's regular grid (step = round(sqrt(H*W / seg_num)), 196 for 128x128);
3. ``n_iter`` (4; skimage's default is 10) assignments: every pixel compares itself with
   the 4 seeds' centres around the block between seeds it lies in (SLIC's local 2S x 2S
   search window; ``window=3``: the 3x3 cells around its own); between two assignments the
   centres move to the mean of their pixels, and the last one gives the labels;
4. a connectivity clean-up: small disconnected fragments join the neighbouring superpixel
   closest in colour (skimage's enforce_connectivity, approximated without host syncs;
   single-threaded on CPU, see _single_threaded_on_cpu);
5. labels upsampled to full resolution, each superpixel filled with the mean colour of the
   original image (exact: every coarse pixel is one label).

Why pooled: on 2 CPU cores the k-means on 64x64 instead of 128x128 cuts the cost ~4x and
the fill error on real faces stays below slic's (tests/losses/test_structure.py measures
it); ``coarse=1`` or ``refine=True`` give full-resolution boundaries where wanted.

Pixels are gathered once into a (cell, pixel-in-cell) layout: all pixels of a cell share the
same J (4 or 9) candidate centres, so the assignment is one small batched matmul per
iteration, and the centre update sums per (cell, candidate) with a second matmul, then
scatters only cells * J rows. On CPU the code also avoids reductions over small middle dims,
transposed copies with a small inner dim, and ``torch.where`` where plain adds/minimums do
(they are several times slower there); the connectivity clean-up works on the flat pixel
sequence, where neighbours are contiguous slices (shift 1 and w).

[1] R. Achanta et al., "SLIC Superpixels Compared to State-of-the-art Superpixel Methods",
    TPAMI 2012.
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn.functional as F
from representations.defaults import SEG_NUM

# SLIC defaults, the same values the faithful ``slic`` backend passes to skimage.
COMPACTNESS = 10.0
SIGMA = 1.0
# k-means assignments (3 centre updates). On the 49 FFHQ fixture faces the fill error is
# 0.982x slic's with 4, 0.990x with 3; each one more costs ~1 ms per batch of 16 on 2 CPU
# cores.
N_ITER = 4
# skimage's gaussian (scipy.ndimage) truncates the kernel at 4 sigma.
GAUSSIAN_TRUNCATE = 4.0
# candidate centres of a pixel (SLIC's local search window), see _layout: 2 = the 2x2 seeds
# around the block between seeds the pixel lies in (a 2S x 2S window around every seed, the
# paper's); 3 = the 3x3 seeds around the grid cell of the pixel (reach ~1.5 S). 2 computes
# 4 instead of 9 distances per pixel: ~2x faster iterations, fill error 0.97x slic's on the
# faces instead of 0.96x.
WINDOW = 2
# k-means iterations run on a COARSE_FACTOR x COARSE_FACTOR pooled image (see slic_fill).
COARSE_FACTOR = 2
# assign full-resolution pixels to the coarse centres at the end (see slic_fill).
REFINE = False
# connectivity clean-up (skimage's enforce_connectivity, approximated with fixed iteration
# counts so that it never needs a host sync): components smaller than MIN_SIZE_FACTOR * the
# mean superpixel area are absorbed by a neighbouring superpixel. skimage uses 0.5; here 0.5
# also swallowed ~25 genuine small superpixels per 128x128 face and raised the fill error to
# 1.03x slic's, 0.25 keeps them (0.95x) and still leaves the regions connected.
MIN_SIZE_FACTOR = 0.25
# 4 / 1 instead of 6 / 2: ~40% fewer passes; on the fixture faces 182..205 connected
# regions per image instead of 180..198 and the same fill error (0.982x slic's).
COMPONENT_ITERS = 4
ABSORB_ITERS = 1
# cost of a neighbour that may not absorb (inside a fragment itself); finite: no inf * 0
UNREACHABLE = 1e30
# distance added to a border cell's repeated candidate so that it never wins the argmin.
DUPLICATE_PENALTY = 1e12

# sRGB (D65) -> XYZ matrix and D65 2-degree white point, exactly as skimage.color uses them.
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)
SRGB_LINEAR_THRESHOLD = 0.04045
SRGB_LINEAR_SLOPE = 12.92
SRGB_GAMMA = 2.4
SRGB_OFFSET = 0.055
LAB_EPSILON = 0.008856
LAB_KAPPA_SLOPE = 7.787
LAB_F_OFFSET = 16.0 / 116.0
LAB_L_SCALE, LAB_L_OFFSET = 116.0, 16.0
LAB_A_SCALE, LAB_B_SCALE = 500.0, 200.0


def rgb_to_lab(rgb: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """sRGB to CIE Lab (D65, 2-degree observer), a torch port of ``skimage.color.rgb2lab``.

    Written with few passes over the image (in-place steps, the white point folded into the
    XYZ matrix, f -> Lab as one 3x3 matmul): on CPU every elementwise op over a batch costs
    a thread wake-up besides its work.

    Args:
        rgb: (B, 3, H, W) float, sRGB in [0, 1].
        scale: multiplies the result (slic_fill folds 1 / compactness in here).
    Returns:
        (B, 3, H, W): L in [0, 100], a and b roughly in [-128, 127] (times ``scale``).
    """
    b, _, h, w = rgb.shape
    linear = ((rgb + SRGB_OFFSET) / (1.0 + SRGB_OFFSET)).clamp_min_(0).pow_(SRGB_GAMMA)
    linear = torch.where(rgb > SRGB_LINEAR_THRESHOLD, linear, rgb / SRGB_LINEAR_SLOPE)
    matrix = torch.tensor(XYZ_FROM_RGB, dtype=torch.float64)
    matrix = matrix / torch.tensor(D65_WHITE, dtype=torch.float64).view(3, 1)
    xyz = torch.matmul(matrix.to(rgb), linear.reshape(b, 3, h * w))
    # cube root of a possibly tiny negative (rounding) value: sign-safe form
    above = xyz > LAB_EPSILON
    cube_root = xyz.clamp_min(LAB_EPSILON).pow_(1.0 / 3.0)
    f = torch.where(above, cube_root, xyz.mul_(LAB_KAPPA_SLOPE).add_(LAB_F_OFFSET))
    # L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz)
    lab_from_f = scale * torch.tensor(
        ((0.0, LAB_L_SCALE, 0.0), (LAB_A_SCALE, -LAB_A_SCALE, 0.0), (0.0, LAB_B_SCALE, -LAB_B_SCALE)),
        dtype=torch.float64,
    )
    offset = torch.tensor((-scale * LAB_L_OFFSET, 0.0, 0.0), dtype=rgb.dtype, device=rgb.device)
    lab = torch.matmul(lab_from_f.to(rgb), f).add_(offset.view(3, 1))
    return lab.view(b, 3, h, w)


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n, n) matrix of a 1D Gaussian blur with scipy.ndimage 'reflect' borders
    (``c b a | a b c``, skimage's mode; torch's own 'reflect' is scipy's 'mirror').

    A banded matmul is ~10x faster on CPU than a (k, 1) conv2d with one channel.
    """
    radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    matrix = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)
    for tap, weight in zip(range(-radius, radius + 1), kernel):
        src = rows + tap
        # reflect until inside (a kernel wider than the image reflects more than once)
        for _ in range(2 * radius // max(n, 1) + 2):
            src = torch.where(src < 0, -src - 1, src)
            src = torch.where(src >= n, 2 * n - src - 1, src)
        matrix.index_put_((rows, src), weight.expand(n), accumulate=True)
    return matrix.to(device=device, dtype=dtype)


def gaussian_blur(x: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """Separable Gaussian blur with skimage/scipy semantics (reflect border, 4-sigma kernel).

    Args:
        x: (B, C, H, W) float.
    Returns:
        (B, C, H, W), same dtype and device.
    """
    if sigma <= 0:
        return x
    h, w = x.shape[-2:]
    blur_h = _blur_matrix(h, float(sigma), x.device, x.dtype)
    blur_w = _blur_matrix(w, float(sigma), x.device, x.dtype)
    return torch.matmul(blur_h, torch.matmul(x, blur_w.T))


def grid_shape(height: int, width: int, seg_num: int) -> tuple[int, int, int, int]:
    """skimage.util.regular_grid for a 2D image: (rows, cols, step, start) of the seed grid.

    skimage uses one step for both axes, round(sqrt(H*W / n)), starting at floor(step / 2).
    """
    if height * width <= seg_num:
        return height, width, 1, 0
    step_float = math.sqrt(height * width / seg_num)
    step = max(1, int(round(step_float)))
    start = int(step_float // 2)
    rows = len(range(min(start, height - 1), height, step))
    cols = len(range(min(start, width - 1), width, step))
    return rows, cols, step, start


@functools.lru_cache(maxsize=32)
def _layout(
    height: int, width: int, rows: int, cols: int, scale: int, device: torch.device, step: int, start: int,
    window: int = WINDOW,
):
    """Fixed index tables for a pixel grid of (height, width) at ``scale`` x coarser than the
    full image, whose seed grid is rows x cols. Built once per shape, reused every step.

    Returns:
        perm (cells * M,) long: pixel index of each (cell, slot); height*width (a dummy
            all-zero pixel) for empty slots,
        cand (cells, J) long: ids of the candidate centres of each cell's pixels,
        penalty (cells, J) float: 0, or a huge distance for a duplicated border
            candidate (so a pixel is never counted twice by the one-hot update),
        M: max pixels per cell.
    window 2: cells are the blocks between adjacent seed rows / columns (plus the border
    strips before the first and after the last), J = 4 candidates: the seeds at the block's
    corners. Every seed thus reaches the pixels within one step of it, a 2S x 2S window.
    window 3: cells split the image evenly around the seeds, J = 9: the 3x3 seeds around.
    """
    full_h, full_w = height * scale, width * scale
    # pixel centre of a coarse pixel in full-resolution coordinates
    ys = (torch.arange(height) * scale + (scale - 1) / 2.0)
    xs = (torch.arange(width) * scale + (scale - 1) / 2.0)
    if window == 2:
        seed_y = (start + step * torch.arange(rows)).clamp(max=full_h - 1).float()
        seed_x = (start + step * torch.arange(cols)).clamp(max=full_w - 1).float()
        cell_y = torch.searchsorted(seed_y, ys, right=True)
        cell_x = torch.searchsorted(seed_x, xs, right=True)
        grid_r, grid_c = rows + 1, cols + 1
    else:
        # cells split the image evenly (sizes differ by at most one pixel), which keeps the
        # padded (cell, slot) layout small; each cell contains its own seed point.
        cell_y = (ys * rows / full_h).long().clamp(max=rows - 1)
        cell_x = (xs * cols / full_w).long().clamp(max=cols - 1)
        grid_r, grid_c = rows, cols
    cell = (cell_y[:, None] * grid_c + cell_x[None, :]).reshape(-1)
    n_cells = grid_r * grid_c
    order = torch.argsort(cell, stable=True)
    counts = torch.bincount(cell, minlength=n_cells)
    m = int(counts.max())
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(height * width) - first[cell[order]]
    perm = torch.full((n_cells * m,), height * width, dtype=torch.long)
    perm[cell[order] * m + slot] = order

    cy, cx = torch.meshgrid(torch.arange(grid_r), torch.arange(grid_c), indexing="ij")
    offs = torch.arange(-1, 1) if window == 2 else torch.arange(-1, 2)
    ny = (cy.reshape(-1, 1, 1) + offs.view(1, -1, 1)).clamp(0, rows - 1)
    nx = (cx.reshape(-1, 1, 1) + offs.view(1, 1, -1)).clamp(0, cols - 1)
    cand = (ny * cols + nx).reshape(n_cells, -1)
    # mark every repeat of an id within a row (border cells clamp onto the same neighbour)
    penalty = torch.zeros(cand.shape)
    for j in range(cand.shape[1]):  # tiny, once per shape
        earlier = (cand[:, :j] == cand[:, j : j + 1]).any(1) if j else torch.zeros(n_cells, dtype=torch.bool)
        penalty[:, j] = earlier.float() * DUPLICATE_PENALTY
    return perm.to(device), cand.to(device), penalty.to(device), m


@functools.lru_cache(maxsize=32)
def _position_blocks(layout, h: int, w: int, step: float, scale: int) -> torch.Tensor:
    """(cells, 3, M) [y/step, x/step, 1] of every (cell, slot) of ``layout`` on an h x w grid
    ``scale`` x coarser than the image; zeros in empty slots (they never count)."""
    perm, _, _, m = layout
    dev = perm.device
    yy = torch.arange(h, dtype=torch.float32, device=dev) * scale + (scale - 1) / 2.0
    xx = torch.arange(w, dtype=torch.float32, device=dev) * scale + (scale - 1) / 2.0
    pos = torch.zeros(3, h * w + 1, device=dev)
    pos[:2, :-1] = torch.stack(torch.meshgrid(yy, xx, indexing="ij")).reshape(2, h * w) / step
    pos[2, :-1] = 1.0
    return pos[:, perm].view(3, -1, m).transpose(0, 1).contiguous()


def _blocks(lab_scaled: torch.Tensor, layout, step: float, scale: int) -> torch.Tensor:
    """(B, 3, h, w) Lab / compactness -> (B * cells, 6, M): [Lab, y/step, x/step, 1] of the
    pixels of every cell, channel-first; all-zero empty slots (they never count).

    Only the Lab channels are gathered per call; the position channels are fixed per layout.
    """
    perm, _, _, m = layout
    b, _, h, w = lab_scaled.shape
    pos = _position_blocks(layout, h, w, float(step), scale)
    n_cells = pos.shape[0]
    # an all-zero dummy pixel at the end is the source of the empty slots
    lab = F.pad(lab_scaled.reshape(b, 3, h * w), (0, 1))
    blocks = torch.empty(b, n_cells, 6, m, device=lab.device)
    blocks[:, :, :3] = lab.index_select(2, perm).view(b, 3, n_cells, m).transpose(1, 2)
    blocks[:, :, 3:] = pos
    return blocks.view(b * n_cells, 6, m)


def _distances(blocks_t: torch.Tensor, centres: torch.Tensor, cand_g: torch.Tensor, penalty_g: torch.Tensor):
    """Squared SLIC distance minus |p|^2 (constant per pixel) to the J candidate centres.

    blocks_t: (B * cells, 6, M); centres (B * K, 5) -> (B * cells, J, M).
    """
    c = centres.index_select(0, cand_g).view(penalty_g.shape[0], penalty_g.shape[1], 5)
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2: one small matmul per cell with the ones channel of p
    c_aug = torch.cat((-2.0 * c, (c * c).sum(-1, keepdim=True) + penalty_g), -1)
    return torch.bmm(c_aug, blocks_t)


def slic_fill(
    images01: torch.Tensor,
    seg_num: int = SEG_NUM,
    compactness: float = COMPACTNESS,
    n_iter: int = N_ITER,
    sigma: float = SIGMA,
    coarse: int = COARSE_FACTOR,
    refine: bool = REFINE,
    connectivity: bool = True,
    window: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched SLIC superpixels and their mean-colour fill, all in torch (no host sync).

    Args:
        images01: (B, 3, H, W) float RGB, any device; [0, 1] or any other range: every
            image is stretched to [0, 1] for the Lab conversion, and the fill, a mean, is
            in the input's own range (structure() passes [-1, 1] as it is).
        seg_num: approximate number of superpixels (skimage's ``n_segments``).
        compactness: colour/space balance, skimage's meaning.
        n_iter: k-means assignments (the centres move between them; 0 behaves like 1:
            labels of the nearest seeds).
        sigma: Gaussian pre-blur in Lab (skimage's ``sigma``), in full-resolution pixels.
        coarse: the clustering runs on a ``coarse`` x ``coarse`` average-pooled image
            (1 = full resolution); the seed grid, step and compactness stay those of the full
            image. Cluster means survive pooling, and it cuts the cost ~coarse^2-fold.
        refine: with coarse > 1, assign the full-resolution pixels to the final centres
            (exact boundaries, one more full-resolution pass); otherwise the coarse labels
            are upsampled (boundaries on a ``coarse``-pixel lattice).
        connectivity: absorb small disconnected fragments of a superpixel into a neighbour
            (see :func:`absorb_fragments`), so that regions are (nearly all) connected.
        window: 2 or 3, the candidate centres of every pixel (None: WINDOW).
    Returns:
        filled (B, 3, H, W) float32: every superpixel holds the mean of ``images01``
        over it; labels (B, H, W) int64 in [0, K), K = rows * cols seeds.
    """
    b, _, h, w = images01.shape
    dev = images01.device
    x = images01.float()
    rows, cols, step, start = grid_shape(h, w, seg_num)
    k = rows * cols
    if coarse > 1 and (h % coarse or w % coarse or step < 2 * coarse):
        coarse = 1  # odd sizes / tiny superpixels: not worth a special case
    refine = refine and coarse > 1
    window = WINDOW if window is None else window
    if window not in (2, 3):
        raise ValueError(f"window must be 2 or 3, got {window}")
    # skimage stretches every image to [0, 1] before the Lab conversion (compactness is
    # meant for that range); flat images stay as they are.
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = x.amax(dim=(1, 2, 3), keepdim=True) - lo
    span = torch.where(span > 0, span, torch.ones_like(span))
    x_c = _pool(x, coarse)
    if refine:
        lab_full = gaussian_blur(rgb_to_lab((x - lo) / span, 1.0 / compactness), sigma)
        lab_c = _pool(lab_full, coarse)
    else:
        # Lab of the pooled RGB ~= pooled Lab at this scale, and coarse^2 times cheaper
        lab_c = gaussian_blur(rgb_to_lab((x_c - lo) / span, 1.0 / compactness), sigma / coarse)
    hc, wc = lab_c.shape[-2:]
    layout_c = _layout(hc, wc, rows, cols, coarse, dev, step, start, window)
    blocks_ct = _blocks(lab_c, layout_c, step, coarse)

    # seeds: skimage's grid positions, colour of the blurred image there
    seed_y = (start + step * torch.arange(rows, device=dev)).clamp(max=h - 1)
    seed_x = (start + step * torch.arange(cols, device=dev)).clamp(max=w - 1)
    sy, sx = torch.meshgrid(seed_y, seed_x, indexing="ij")
    seed_idx = ((sy // coarse) * wc + sx // coarse).reshape(-1)
    seed_lab = lab_c.reshape(b, 3, hc * wc)[:, :, seed_idx].transpose(1, 2)
    seed_pos = torch.stack((sy, sx), -1).reshape(1, k, 2).float() / step
    centres = torch.cat((seed_lab, seed_pos.expand(b, k, 2)), 2).reshape(b * k, 5)

    cand_g, penalty_g = _batched_candidates(layout_c, b, k)
    onehot = torch.empty(penalty_g.shape[0], penalty_g.shape[1], blocks_ct.shape[2], device=dev)
    # skimage's loop: n_iter assignments, the centres moving to their pixels' mean between
    # them; the labels are those of the last assignment (so it needs no extra pass).
    for assignment in range(1, max(n_iter, 1) + 1):
        dist = _distances(blocks_ct, centres, cand_g, penalty_g)  # (B * cells, J, M)
        if assignment >= n_iter:
            break
        # one-hot of the nearest candidate (exact float ties are vanishingly rare and
        # duplicated candidates are penalised): per-cell sums with one more small matmul,
        # then a scatter of only cells*J rows instead of one row per pixel.
        torch.eq(dist, _min_candidates(dist), out=onehot)
        local = torch.bmm(onehot, blocks_ct.transpose(1, 2))  # (B * cells, J, 6)
        sums = torch.zeros(b * k, 6, device=dev).index_add_(0, cand_g, local.view(-1, 6))
        count = sums[:, 5:]
        # an emptied cluster keeps its old centre (no data-dependent branch: no host sync)
        centres = torch.where(count > 0, sums[:, :5] / count.clamp_min(1), centres)

    if refine:
        layout = _layout(h, w, rows, cols, 1, dev, step, start, window)
        blocks_t = _blocks(lab_full, layout, step, 1)
        labels = _assign(_distances(blocks_t, centres, *_batched_candidates(layout, b, k)), layout, h, w)
        if connectivity:
            labels = absorb_fragments(labels, MIN_SIZE_FACTOR * step**2, lab_full)
        return mean_fill(x, labels, k), labels
    labels = _assign(dist, layout_c, hc, wc)
    if connectivity:
        labels = absorb_fragments(labels, MIN_SIZE_FACTOR * (step / coarse) ** 2, lab_c)
    # every coarse pixel is a block of one label, so the mean over the pooled image is the
    # mean over the full image (label2rgb 'avg' of the unstretched, unblurred colours)
    filled = _fill(label_means(x_c, labels, k), labels)
    if coarse > 1:  # nearest with an integer factor: exact pixel replication
        filled = F.interpolate(filled, scale_factor=coarse, mode="nearest")
    return filled, _upsample(labels, coarse)


def _batched_candidates(layout, b: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate centre ids into the (B * K) centre table, flat (B * cells * J,), and the
    duplicate penalties (B * cells, J, 1)."""
    _, cand, penalty, _ = layout
    offsets = k * torch.arange(b, device=cand.device).view(b, 1)
    cand_g = (cand.reshape(1, -1) + offsets).reshape(-1)
    return cand_g, penalty.expand(b, *penalty.shape).reshape(-1, penalty.shape[1], 1)


def _min_candidates(dist: torch.Tensor) -> torch.Tensor:
    """min over dim 1 of (B * cells, J, M), keepdim: a chain of elementwise minimums, ~4x
    faster on CPU than amin over that small middle dim."""
    best = dist[:, 0]
    for j in range(1, dist.shape[1]):
        best = torch.minimum(best, dist[:, j])
    return best.unsqueeze(1)


@functools.lru_cache(maxsize=32)
def _wraps(b: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs (p, p + 1) and (p, p + w) of the flat (b*h*w,) pixel sequence that are not
    neighbours: a row end and the next row's start; an image's last row and the next
    image's first row. Bool, (b*h*w - 1,) and (b*h*w - w,)."""
    total = b * h * w
    wrap_h = torch.zeros(total - 1, dtype=torch.bool)
    wrap_h[w - 1 :: w] = True
    wrap_v = torch.zeros(total - w, dtype=torch.bool)
    wrap_v.view(-1)[: (b - 1) * h * w].view(b - 1, h * w)[:, (h - 1) * w :] = True
    return wrap_h.to(device), wrap_v.to(device)


@contextlib.contextmanager
def _single_threaded_on_cpu(device: torch.device):
    """Run torch's CPU ops single-threaded inside the block (no-op elsewhere).

    For stages made of many cheap elementwise passes (the clean-up: ~60 ops over 64k int32
    pixels, a few microseconds of work each): torch splits every op over >= 32k elements
    between its threads, and waking a sleeping OpenMP thread (OMP_WAIT_POLICY=PASSIVE, which
    a trainer on a shared CPU wants, see bench/bench_structure.py) costs ~30 us, ~10x the
    work. Measured on 2 cores, batch 16 at 128x128: the clean-up takes ~1 ms single-threaded,
    ~4.5 ms on 2 threads. torch.set_num_threads is process-wide and costs well under 1 us;
    the previous count is restored on exit, exceptions included.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def absorb_fragments(
    labels: torch.Tensor,
    min_size: float,
    colours: torch.Tensor | None = None,
    component_iters: int = COMPONENT_ITERS,
    absorb_iters: int = ABSORB_ITERS,
) -> torch.Tensor:
    """Give pixels of small connected fragments the label of an adjacent larger region.

    k-means labels can own stray islands away from their body. skimage relabels those
    with a sequential flood fill; here everything is whole-tensor ops with fixed iteration
    counts (no data-dependent loop, so no host sync on CUDA):
    1. connected components by min-index propagation over 4-neighbours with the same
       label (in place, so a sweep carries an index along a whole run in the sweep's
       direction), plus pointer jumping (comp = comp[comp]);
    2. component sizes with one scatter_add;
    3. pixels of components smaller than ``min_size`` take the label of the 4-neighbour,
       among those in a large component, closest in colour (the first one without
       ``colours``), ``absorb_iters`` times: an island up to 2 * absorb_iters pixels thick
       is absorbed completely.
    Neighbours are shifted slices of the label map (no padded copies); with the defaults
    the result differs from a converged flood fill on ~0.1% of the pixels (FFHQ faces,
    64x64 coarse label maps).

    Args:
        labels: (B, h, w) int64.
        min_size: fragments with fewer pixels than this are absorbed.
        colours: optional (B, C, h, w) pixel colours (e.g. Lab) to choose the neighbour by.
    Returns:
        (B, h, w) int64 labels (a new tensor).
    """
    with _single_threaded_on_cpu(labels.device):
        return _absorb_fragments(labels, min_size, colours, component_iters, absorb_iters)


def _absorb_fragments(labels, min_size, colours, component_iters, absorb_iters):
    """The body of :func:`absorb_fragments` (same arguments, all given)."""
    b, h, w = labels.shape
    total = b * h * w
    dev = labels.device
    # Everything runs on the flat (B*h*w,) pixel sequence: the 4 neighbours are shifts by
    # 1 and by w, i.e. contiguous slices (several times faster on CPU than 2D slices of a
    # (B, h, w) map). A pair of pixels p, p + shift is "cut" when the labels differ, when
    # a horizontal pair wraps around a row end or when a vertical pair straddles two images.
    flat = labels.reshape(-1)
    big = total  # added to a neighbour's index across a cut: never the minimum
    wraps = _wraps(b, h, w, dev)
    # int32 indices: the sweeps run ~3x faster than in int64 on CPU (index_select takes them)
    penalty = [((flat[s_:] != flat[:-s_]) | wrap).int() * big for s_, wrap in zip((1, w), wraps)]
    # (target, source, pair array) per direction: left, right, up, down
    directions = [d for i, s_ in enumerate((1, w)) for d in (
        (slice(s_, None), slice(None, -s_), i), (slice(None, -s_), slice(s_, None), i))]
    comp = torch.arange(total, device=dev, dtype=torch.int32)
    for _ in range(component_iters):
        for target, source, i in directions:
            # reads what the previous shifts wrote: a sweep runs along the whole direction
            torch.minimum(comp[target], comp[source] + penalty[i], out=comp[target])
        comp = comp.index_select(0, comp)
    sizes = torch.zeros(total, device=dev).index_add_(0, comp, torch.ones(total, device=dev))
    small = sizes.index_select(0, comp) < min_size
    # colour distance between neighbours (fixed while labels move): one array per shift;
    # cut pairs between different images / across row ends never qualify
    if colours is None:
        pair_cost = [torch.zeros(total - s_, device=dev) for s_ in (1, w)]
    else:
        col = colours.transpose(0, 1).reshape(colours.shape[1], -1)
        pair_cost = [(col[:, s_:] - col[:, :-s_]).square().sum(0) for s_ in (1, w)]
    pair_cost = [cost + wrap.float() * UNREACHABLE for cost, wrap in zip(pair_cost, wraps)]
    out = flat.int()
    for _ in range(absorb_iters):
        # a neighbour qualifies if it lies in a large component; the cheapest one wins
        unreachable = small.float() * UNREACHABLE
        best_cost = torch.full((total,), UNREACHABLE, device=dev)
        best_label = out.clone()
        for target, source, i in directions:
            cost = pair_cost[i] + unreachable[source]
            better = cost < best_cost[target]
            torch.minimum(best_cost[target], cost, out=best_cost[target])
            best_label[target] = torch.where(better, out[source], best_label[target])
        take = small & (best_cost < UNREACHABLE)
        out = torch.where(take, best_label, out)
        small = small & ~take
    return out.long().view(b, h, w)


def _pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    """factor x factor mean pooling of (B, C, H, W), H and W divisible by factor.

    Strided slices: several times faster on CPU than avg_pool2d or a reshape-mean here.
    """
    if factor == 1:
        return x
    total = sum(x[..., i::factor, j::factor] for i in range(factor) for j in range(factor))
    return total / (factor * factor)


def _upsample(t: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of (..., h, w) by an integer factor.

    Columns, then rows: two copies with a contiguous inner run each, several times faster
    on CPU than one expand over both axes."""
    if factor == 1:
        return t
    *lead, h, w = t.shape
    wide = t.unsqueeze(-1).expand(*lead, h, w, factor).reshape(*lead, h, 1, w * factor)
    return wide.expand(*lead, h, factor, w * factor).reshape(*lead, h * factor, w * factor)


def _assign(dist: torch.Tensor, layout, h: int, w: int) -> torch.Tensor:
    """Nearest-candidate labels in pixel order from (B * cells, J, M) distances: (B, h, w) int64."""
    perm, cand, _, _ = layout
    b = dist.shape[0] // cand.shape[0]
    # min(1).indices, not argmin(1): torch's CPU argmin over a middle dim is ~20x slower
    local = dist.min(1).indices  # (B * cells, M)
    labels_blk = torch.gather(cand.repeat(b, 1), 1, local)
    # the extra last column receives the empty slots (dummy pixel) and is dropped
    labels = torch.empty(b, h * w + 1, dtype=torch.long, device=dist.device)
    labels.scatter_(1, perm.unsqueeze(0).expand(b, -1), labels_blk.reshape(b, -1))
    return labels[:, : h * w].reshape(b, h, w)


def label_means(images: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Mean of ``images`` over every label: (B, C, num_labels) float32 (0 for absent labels).

    Args:
        images: (B, C, H, W) float.
        labels: (B, H, W) int64 in [0, num_labels).
    """
    b, c, h, w = images.shape
    idx = labels.reshape(b, 1, h * w)
    sums = torch.zeros(b, c + 1, num_labels, device=images.device)
    sums[:, :c].scatter_add_(2, idx.expand(b, c, h * w), images.reshape(b, c, h * w).float())
    sums[:, c:].scatter_add_(2, idx, torch.ones(b, 1, h * w, device=images.device))
    return sums[:, :c] / sums[:, c:].clamp_min(1)


def _fill(means: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, C, K) label colours, (B, H, W) labels -> (B, C, H, W) image (one gather)."""
    b, c, _ = means.shape
    h, w = labels.shape[-2:]
    return torch.gather(means, 2, labels.reshape(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def mean_fill(images: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Fill every label with the mean colour of ``images`` over it, batched with one scatter.

    Args:
        images: (B, C, H, W) float, any range.
        labels: (B, H, W) int64 in [0, num_labels).
    Returns:
        (B, C, H, W), same dtype and device as ``images``.
    """
    return _fill(label_means(images, labels, num_labels), labels).to(images.dtype)
