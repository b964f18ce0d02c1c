"""Content networks side by side: random VGG19 (conv4_4) vs HED's VGG16 (conv4_3).

Two things the loss-weight presets of each network need:

1. speed: one forward + backward to the input (the trainer's use: frozen weights, the output
   needs a gradient) at batch 8, 128 px, channels_last, fp32 and bf16 (autocast, the
   convolutions cast to bf16 once, as training/loop.py does); median of --repeats;
2. magnitudes on the fixture faces (../shared/fixtures/ffhq-mini, resized to 128): the mean
   |feature| of the photos, and the content term (losses/content.py: L1 / (h w c), the
   white-box double normalisation) between each photo and
     - ``blur``: the photo blurred (Gaussian, sigma --blur px), a mild perturbation;
     - ``cartoon``: the white-box authors' own cartoon of the same photo (the fixtures'
       cartoons/), i.e. what a well-trained model's output costs in content;
   and the structure term (losses/structure.py) of the authors' cartoon and of the photo:
   L1 / (h w c) between the features of an image and of its superpixel structure
   representation (representations/structure.py, the trainer's default backend).
   Each is printed unweighted and times the code preset's weight (w3 = w4 = 200);
3. with ``--step``: whole training steps (training.loop.prepare_train, every term but the
   landmark one) with each network at the demo's settings (64 px, batch 4, no workers),
   interleaved, median of --step-repeats: what the swap costs ``make demo`` per step.

    .venv/bin/python bench/bench_content_network.py
    .venv/bin/python bench/bench_content_network.py --repeats 5 --json bench/results/content_network.json

Random VGG19 is not the recipe's pretrained VGG19: ImageNet VGG19 weights are not on these
machines, so the magnitudes the recipe's weights were tuned for are not measured here.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.common import FIXTURES, machine, median, set_threads, table, write_json  # noqa: E402
from losses.content import feature_l1  # noqa: E402
from models.content_network import build_content_network  # noqa: E402
from representations.structure import Structure  # noqa: E402

NETWORKS = ("random", "hed-vgg16")
LABEL = {"random": "random VGG19 conv4_4", "hed-vgg16": "HED VGG16 conv4_3"}
CODE_WEIGHT = 200.0  # w3 = w4 of the code preset


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5, help="timed forward+backward passes (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", default="fp32,bf16", help="comma list of fp32, bf16")
    p.add_argument("--blur", type=float, default=1.5, help="sigma (px) of the blurred photo")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--fixtures", default=str(FIXTURES), help="folder with photos/ and cartoons/")
    p.add_argument("--step", action="store_true", help="also time whole training steps")
    p.add_argument("--step-size", type=int, default=64)
    p.add_argument("--step-batch", type=int, default=4)
    p.add_argument("--step-repeats", type=int, default=15)
    p.add_argument("--json", help="write every number here")
    return p.parse_args(argv)


def load_faces(folder: Path, size: int) -> torch.Tensor:
    """(N, 3, size, size) in [-1, 1], bicubic resize of every JPEG in the folder, sorted."""
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))
    if not files:
        sys.exit(f"error: no .jpg faces in {folder} (the shared fixtures are not beside this checkout)")
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC))
              for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def time_fwd_bwd(net: torch.nn.Module, x: torch.Tensor, precision: str, repeats: int, warmup: int
                 ) -> list[float]:
    if precision == "bf16":
        net = copy.deepcopy(net)
        net.convs.to(torch.bfloat16)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    times = []
    for i in range(warmup + repeats):
        inp = x.detach().clone().requires_grad_()
        t0 = time.perf_counter()
        with ctx:
            out = net(inp)
        out.float().abs().mean().backward()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


@torch.no_grad()
def features(net: torch.nn.Module, x: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    return torch.cat([net(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def main(argv=None) -> None:
    args = parse(argv)
    threads = set_threads(args.threads)
    info = machine()
    print(f"machine: {info}")
    nets = {n: build_content_network(n, seed=0).to(memory_format=torch.channels_last) for n in NETWORKS}
    result: dict = {"machine": info, "args": vars(args), "speed": {}, "magnitudes": {}}

    # ---- speed
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch, 3, args.size, args.size, generator=gen) * 2 - 1).contiguous(
        memory_format=torch.channels_last)
    rows = []
    for precision in args.precision.split(","):
        # interleaved: each repeat runs both networks, so machine noise hits both alike
        per = {n: [] for n in NETWORKS}
        for _ in range(args.repeats):
            for n in NETWORKS:
                per[n] += time_fwd_bwd(nets[n], x, precision, 1, args.warmup if not per[n] else 0)
        for n in NETWORKS:
            result["speed"][f"{n}/{precision}"] = per[n]
        rows.append([precision] + [f"{1e3 * median(per[n]):.0f} ms" for n in NETWORKS] +
                    [f"{median(per['random']) / median(per['hed-vgg16']):.2f}x"])
    print(f"\nforward + backward to the input, batch {args.batch}, {args.size} px, channels_last, "
          f"{threads} threads, median of {args.repeats}:")
    print(table(rows, ["precision", LABEL["random"], LABEL["hed-vgg16"], "HED speed-up"]))

    # ---- magnitudes
    root = Path(args.fixtures)
    photos = load_faces(root / "photos", args.size)
    cartoons = load_faces(root / "cartoons", args.size)
    blurred = gaussian_blur(photos, args.blur)
    structure = Structure()
    with torch.no_grad():
        struct_cartoon = structure(cartoons)
        struct_photo = structure(photos)
    rows = []
    for n in NETWORKS:
        f = {name: features(nets[n], img) for name, img in
             (("photo", photos), ("blur", blurred), ("cartoon", cartoons),
              ("structure_cartoon", struct_cartoon), ("structure_photo", struct_photo))}
        m = {
            "mean_abs_feature_photo": float(f["photo"].abs().mean()),
            "content_blur": float(feature_l1(f["photo"], f["blur"])),
            "content_cartoon": float(feature_l1(f["photo"], f["cartoon"])),
            "structure_cartoon": float(feature_l1(f["structure_cartoon"], f["cartoon"])),
            "structure_photo": float(feature_l1(f["structure_photo"], f["photo"])),
        }
        result["magnitudes"][n] = m
        rows.append([LABEL[n], f"{m['mean_abs_feature_photo']:.3g}"] +
                    [f"{m[k]:.3g} ({CODE_WEIGHT * m[k]:.3g})" for k in
                     ("content_blur", "content_cartoon", "structure_cartoon", "structure_photo")])
    print(f"\nmagnitudes on {len(photos)} fixture faces at {args.size} px; terms as losses/ compute "
          f"them, L1 / (hwc), and (x {CODE_WEIGHT:g}, the code preset's w3 = w4):")
    print(table(rows, ["network", "mean |f| photo", f"content: blur s={args.blur:g}",
                       "content: authors' cartoon", "structure: cartoon", "structure: photo"]))
    r, h = result["magnitudes"]["random"], result["magnitudes"]["hed-vgg16"]
    print("\nHED / random VGG19: " + ", ".join(f"{k} {h[k] / r[k]:.3g}x" for k in r))
    if args.step:
        result["train_step"] = time_train_steps(args)
    write_json(args.json, result)


def time_train_steps(args) -> dict[str, list[float]]:
    from bench.common import make_run, prepare_data, temp_root, time_run_step

    with temp_root("content_step") as root:
        photos, cartoons = prepare_data("demo", Path(root), n=24, size=max(64, args.step_size))
        runs = {n: make_run(photos, cartoons, Path(root) / "ck", n, batch=args.step_batch,
                            size=args.step_size, workers=0, w5=0.0, vgg_weights=None,
                            content_network=n) for n in NETWORKS}
        per = {n: [] for n in NETWORKS}
        for i in range(args.step_repeats + 2):  # 2 warm-up steps each
            for n in NETWORKS:
                t = time_run_step(runs[n])[0]
                if i >= 2:
                    per[n].append(t)
        for run in runs.values():
            run.session.close()
    print(f"\ntraining step at {args.step_size} px, batch {args.step_batch} (the demo's), no landmark "
          f"term, median of {args.step_repeats}: " + ", ".join(
              f"{LABEL[n]} {1e3 * median(per[n]):.0f} ms" for n in NETWORKS) +
          f"; HED / random {median(per['hed-vgg16']) / median(per['random']):.2f}")
    return per


if __name__ == "__main__":
    main()
