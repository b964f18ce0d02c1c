"""Time the structure backends against the seed trainer's way, side by side in one process.

    .venv/bin/python bench/bench_structure.py                      # batch 16, 128x128, CPU
    .venv/bin/python bench/bench_structure.py --device cuda --repeats 20 --json out.json

Contenders, all on the same batch:
  seed     the seed trainer's way, per step: the (B, 3, H, W) tensor in [-1, 1] to HWC numpy
           on the host, joblib.Parallel(n_jobs=B)(delayed(f)(img) for img in batch), one
           process per image, f = skimage.segmentation.slic(n_segments=200, compactness=10,
           sigma=1, Lab) + skimage.color.label2rgb(kind='avg'), then back to a tensor. A new
           Parallel every call, as the seed did; joblib's loky backend keeps its worker pool
           between calls (the warm-up call starts it, so start-up is not timed). Without
           joblib a persistent concurrent.futures.ProcessPoolExecutor (spawn, B workers)
           stands in; the output says which one ran.
  slic     representations.structure.structure(method="slic"): same SLIC, in-process, vectorised fill.
  sscolor  method="sscolor": felzenszwalb + selective-search merging + adaptive colouring.
  fast     method="fast": batched torch SLIC on --device.

OpenMP: the bench sets OMP_WAIT_POLICY=PASSIVE (unless already set) before torch loads.
With the default (spinning) policy on a 2-core machine shared with other jobs, torch's two
intra-op threads spin at every op barrier against the other load and a ~40 ms fast call
took 3 s (measured here at load average 3.5). A trainer on a busy CPU wants the same
setting (or --threads 1); on an idle machine it changes little.

Timing: one warm-up call each, then --repeats rounds, each timing every contender once in
turn (interleaved, so that load from other jobs hits them alike); medians are reported.

Images: the FFHQ fixture photos (<repo>/../shared/fixtures/ffhq-mini/photos) resized with
cv2.INTER_AREA when present, else crops of skimage.data.astronaut. Prints the median ms per
batch and each contender's speed ratio vs seed. Not a test: numbers only.
"""
from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# must precede the first OpenMP use (torch import); see the module docstring
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FIXTURE_PHOTOS = REPO / ".." / "shared" / "fixtures" / "ffhq-mini" / "photos"
SEG_NUM = 200


def seed_one(image01: np.ndarray) -> np.ndarray:
    """The seed trainer's per-image job (one process each): SLIC + label2rgb 'avg'."""
    from skimage.color import label2rgb
    from skimage.segmentation import slic

    labels = slic(image01, n_segments=SEG_NUM, compactness=10, sigma=1, convert2lab=True, start_label=0)
    return label2rgb(labels, image01, kind="avg", bg_label=-1)


def seed_structure(x, run_seed):
    """The seed trainer's structure step on a (B, 3, H, W) tensor in [-1, 1]: host numpy,
    one job per image, and back to a tensor."""
    import torch

    images = ((x.detach().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
    filled = run_seed(list(images))
    return torch.from_numpy(np.stack(filled)).permute(0, 3, 1, 2).float() * 2 - 1


@contextlib.contextmanager
def seed_runner(n_jobs: int):
    """(map over images, description): joblib like the seed, else a process pool."""
    try:
        from joblib import Parallel, delayed
    except ImportError:
        ctx = multiprocessing.get_context("spawn")  # loky spawns too; forking torch is unsafe
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
            yield (lambda imgs: list(pool.map(seed_one, imgs))), (
                f"concurrent.futures.ProcessPoolExecutor({n_jobs} workers, spawn): joblib is not installed")
        return
    import joblib

    yield (lambda imgs: Parallel(n_jobs=n_jobs)(delayed(seed_one)(im) for im in imgs)), (
        f"joblib {joblib.__version__} Parallel(n_jobs={n_jobs}), loky backend")


def load_batch(batch: int, size: int) -> tuple[np.ndarray, str]:
    """(batch, size, size, 3) float32 RGB in [0, 1] and a word on where it came from."""
    import cv2

    paths = sorted(FIXTURE_PHOTOS.glob("*.jpg")) if FIXTURE_PHOTOS.is_dir() else []
    if paths:
        imgs = []
        for i in range(batch):
            bgr = cv2.imread(str(paths[i % len(paths)]), cv2.IMREAD_COLOR)
            imgs.append(cv2.resize(bgr[:, :, ::-1], (size, size), interpolation=cv2.INTER_AREA))
        source = f"{min(batch, len(paths))} FFHQ fixture photos"
    else:
        from skimage import data

        astro = data.astronaut()
        rng = np.random.default_rng(0)
        crop = min(astro.shape[:2]) // 2
        imgs = []
        for _ in range(batch):
            y, x = rng.integers(0, astro.shape[0] - crop), rng.integers(0, astro.shape[1] - crop)
            imgs.append(cv2.resize(astro[y : y + crop, x : x + crop], (size, size), interpolation=cv2.INTER_AREA))
        source = "skimage astronaut crops (fixtures absent)"
    return np.stack(imgs).astype(np.float32) / 255.0, source


def interleaved_median_ms(contenders: dict, repeats: int, sync=lambda: None) -> dict[str, float]:
    """Median ms per call of every contender, timed round-robin: repeat r runs all of them
    once, in turn, so that load from other jobs on a shared machine hits them alike."""
    for fn in contenders.values():
        fn()  # warm-up: caches, lazy imports, worker start-up
        sync()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(ts) for name, ts in times.items()}


@click.command(context_settings={"show_default": True})
@click.option("--batch", type=click.IntRange(min=1), default=16)
@click.option("--size", type=click.IntRange(min=16), default=128)
@click.option("--repeats", type=click.IntRange(min=1), default=5)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="device of the fast backend")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="torch intra-op threads for slic/sscolor/fast (0: torch's default). On a "
                   "CPU shared with other jobs 1 is often faster: every op's thread barrier "
                   "waits for a descheduled thread")
@click.option("--methods", default="seed,slic,sscolor,fast", help="comma-separated subset to time")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="also write results here")
def main(batch: int, size: int, repeats: int, device: str, threads: int, methods: str,
         json_out: str | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)

    from representations.structure import structure

    images01, source = load_batch(batch, size)
    x = torch.from_numpy(images01).permute(0, 3, 1, 2).contiguous() * 2 - 1
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    results: dict[str, float] = {}
    print(f"batch {batch} x {size}x{size}, {source}; torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f}; median of {repeats}")
    contenders = {}
    runner = None
    with contextlib.ExitStack() as stack:
        if "seed" in wanted:
            run_seed, runner = stack.enter_context(seed_runner(batch))
            print(f"seed runs {runner}")
            contenders["seed"] = lambda: seed_structure(x, run_seed)
        for method in ("slic", "sscolor"):
            if method in wanted:
                contenders[method] = functools.partial(structure, x, method=method)
        if "fast" in wanted:
            contenders["fast"] = functools.partial(structure, x.to(device), method="fast")
        results = interleaved_median_ms(contenders, repeats, sync)
    for name, ms in results.items():
        ratio = f"  {results['seed'] / ms:6.1f}x vs seed" if "seed" in results else ""
        print(f"{name:8s} {ms:9.1f} ms/batch{ratio}")
    if json_out:
        Path(json_out).write_text(json.dumps(
            {"batch": batch, "size": size, "repeats": repeats, "device": device, "source": source,
             "torch_threads": torch.get_num_threads(),
             "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_average": os.getloadavg()[0],
             "seed_runner": runner, "median_ms": results,
             "speedup_vs_seed": {k: results["seed"] / v for k, v in results.items()} if "seed" in results else {}},
            indent=2))


if __name__ == "__main__":
    main()
