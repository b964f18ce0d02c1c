"""The face terms on the fixture faces: magnitudes, bf16 against fp32, gradient sizes, cost.

For each of the 49 ffhq-mini photos in the training view (resized to --size, centre crop) with
its mediapipe landmarks, the terms are computed for outputs that a generator might make:

- ``photo``: the photo itself (every term is 0),
- ``blur1`` / ``blur2`` / ``blur4``: Gaussian blur of sigma 1, 2, 4 px,
- ``eyes+10%`` / ``eyes+20%``: the eye regions magnified by a smooth geometric warp,
- ``authors``: the white-box authors' own cartoon of the same photo (fixtures/cartoons).

Printed per output kind: the mean over faces of each term (the edge term ``landmark`` of
``--w5``, ``landmark_regressor``; ``identity`` where the dlib encoder is installed), in fp32
and under bf16 autocast (and their mean absolute difference per face), and the norm of each
term's gradient with respect to the output image, per face. Then the time of one term per
batch (forward + backward), fp32 and bf16, on ``--threads`` threads.

    .venv/bin/python bench/bench_face_terms.py --json bench/results/face_terms.json

The weights of studies/face_terms_screen.yaml come from the gradient norms on ``authors``
(see its comments).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FIXTURES, machine, median, set_threads, table, write_json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

KINDS = ("photo", "blur1", "blur2", "blur4", "eyes+10%", "eyes+20%", "authors")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--faces", type=int, default=49, help="fixture faces used (at most 49)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", default="1,2,8", help="batch sizes timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    return p.parse_args(argv)


# ---------------------------------------------------------------------- outputs to score
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) blurred by a separable Gaussian (radius 3 sigma, reflect padding)."""
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def warp_eyes(x: torch.Tensor, points: torch.Tensor, amount: float) -> torch.Tensor:
    """Magnify both eye regions of (B, 3, H, W) by about ``amount`` (0.1 = 10%): each output
    pixel samples ``c + (p - c) / (1 + amount * g)``, g a Gaussian bump of width 0.2 IOD
    around each eye centre c (the mean of its FaceMesh contour points in ``points``)."""
    from faces.topology import MEDIAPIPE_468

    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype) + 0.5, torch.arange(w, dtype=x.dtype) + 0.5,
                            indexing="ij")
    pix = torch.stack([xs, ys], -1).expand(b, h, w, 2)
    src = pix.clone()
    iod = (points[:, 263] - points[:, 33]).norm(dim=-1)
    for part in ("left_eye", "right_eye"):
        idx = sorted({i for e in MEDIAPIPE_468.contours[part] for i in e})
        c = points[:, idx].mean(dim=1)[:, None, None, :]
        s = (0.2 * iod)[:, None, None]
        g = torch.exp(-((pix - c) ** 2).sum(-1) / (2 * s * s))
        src = src - (pix - c) * (amount * g / (1 + amount * g))[..., None]
    grid = torch.stack([src[..., 0] * 2 / w - 1, src[..., 1] * 2 / h - 1], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def load_faces(n: int, size: int):
    """(photos (B,3,S,S) [-1,1], authors' cartoons (B,3,S,S), FaceMesh points (B,468,2) px)."""
    from datasets.folders import resize_crop_flip
    from media.decode import read_image_rgb
    from media.tensors import to_tensor
    from faces import resolve_detector, transform_landmarks

    photos, cartoons, points = [], [], []
    with resolve_detector("mediapipe").build() as det:
        for path in sorted((FIXTURES / "photos").glob("*.jpg"))[:n]:
            raw = read_image_rgb(path)
            pts = det.detect(raw)
            if pts is None:
                continue
            img, scale, crop, flip = resize_crop_flip(raw, size, size, None)
            cart = next((FIXTURES / "cartoons").glob(path.stem + ".*"), None)
            if cart is None:
                continue
            c_img = resize_crop_flip(read_image_rgb(cart), size, size, None)[0]
            photos.append(to_tensor(img))
            cartoons.append(to_tensor(c_img))
            points.append(torch.from_numpy(transform_landmarks(pts, scale, crop, flip, size)))
    return torch.stack(photos), torch.stack(cartoons), torch.stack(points)


def outputs_of(kind: str, photos, cartoons, points) -> torch.Tensor:
    if kind == "photo":
        return photos.clone()
    if kind.startswith("blur"):
        return gaussian_blur(photos, float(kind[4:]))
    if kind.startswith("eyes+"):
        return warp_eyes(photos, points, float(kind[5:-1]) / 100)
    return cartoons.clone()


# -------------------------------------------------------------------------------- terms
def term_functions(facemesh, encoder):
    """{name: fn(output, photo, points, lmap) -> (B,) per-face values} (one face per call)."""
    from losses.landmark import landmark_loss_per_image
    from losses.landmark_regressor import landmark_regressor_loss

    fns = {"landmark": lambda o, p, pts, m: landmark_loss_per_image(o, p, m)[0]}

    def regressor(o, p, pts, m):
        return torch.stack([landmark_regressor_loss(o[i:i + 1], p[i:i + 1], pts[i:i + 1], None,
                                                    facemesh)[0] for i in range(o.shape[0])])
    fns["landmark_regressor"] = regressor
    if encoder is not None:
        from losses.identity import identity_loss

        def ident(o, p, pts, m):
            return torch.stack([identity_loss(o[i:i + 1], p[i:i + 1], pts[i:i + 1], None,
                                              encoder)[0] for i in range(o.shape[0])])
        fns["identity"] = ident
    return fns


def main(argv=None) -> dict:
    args = parse(argv)
    threads = set_threads(args.threads)
    from faces import render_landmark_map
    from losses.registry import NETWORKS

    photos, cartoons, points = load_faces(args.faces, args.size)
    lmaps = torch.stack([torch.from_numpy(render_landmark_map(p.numpy(), args.size, args.size))
                         for p in points])
    facemesh = NETWORKS["facemesh"]()
    encoder = None
    if "dlib_encoder" in NETWORKS:
        try:
            encoder = NETWORKS["dlib_encoder"]()
        except Exception as exc:  # noqa: BLE001 - not installed here: the table skips it
            print(f"identity skipped: {exc}")
    fns = term_functions(facemesh, encoder)
    print(f"{len(photos)} fixture faces at {args.size} px, {threads} threads, {machine()['processor']}")

    values: dict = {}
    rows = []
    for kind in KINDS:
        out = outputs_of(kind, photos, cartoons, points)
        values[kind] = {}
        row = [kind]
        for name, fn in fns.items():
            with torch.no_grad():
                v32 = fn(out, photos, points, lmaps).float()
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    v16 = fn(out, photos, points, lmaps).float()
            x = out.clone().requires_grad_(True)
            fn(x, photos, points, lmaps).sum().backward()
            gnorm = x.grad.flatten(1).norm(dim=1)
            values[kind][name] = {"fp32": v32.tolist(), "bf16": v16.tolist(), "grad_norm": gnorm.tolist()}
            row += [float(v32.mean()), float((v16 - v32).abs().mean()), float(gnorm.mean())]
        rows.append(row)
    header = ["output"]
    for name in fns:
        header += [f"{name}", "|bf16-fp32|", "|grad|"]
    print()
    print(table(rows, header))

    # Cost of one term on a batch: forward + backward of the output side (what a step adds)
    timing: dict = {}
    trows = []
    for b in [int(x) for x in args.batches.split(",")]:
        b = min(b, len(photos))
        o, p, pts, m = cartoons[:b], photos[:b], points[:b], lmaps[:b]
        for name in fns:
            if name == "landmark":
                continue
            from losses.landmark_regressor import landmark_regressor_loss
            for prec in ("fp32", "bf16"):
                def once():
                    x = o.clone().requires_grad_(True)
                    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if prec == "bf16" else torch.autocast("cpu", enabled=False)
                    with ctx:
                        if name == "landmark_regressor":
                            loss = landmark_regressor_loss(x, p, pts, None, facemesh)[0]
                        else:
                            from losses.identity import identity_loss
                            loss = identity_loss(x, p, pts, None, encoder)[0]
                    loss.backward()
                once()
                ts = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    once()
                    ts.append(time.perf_counter() - t0)
                timing[f"{name}_{prec}_b{b}"] = ts
                trows.append([name, prec, b, median(ts), median(ts) / b])
    print()
    print(table(trows, ["term", "precision", "faces", "seconds", "per face"]))
    payload = {"args": vars(args), "machine": machine(), "values": values, "timing": timing,
               "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
