"""What the benchmarks share: data, a real prepared training run, timing, tables, JSON.

The reference (seed) design of a training step is in bench/reference.py. Process-wide settings
(threads, OpenMP waits, and the malloc reuse a training run turns on) hold for every design a
benchmark measures in one process.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

# Before torch loads: with OpenMP's default spinning waits, torch's intra-op threads spin at
# every barrier against other jobs on a shared 2-core machine and steps get several times
# slower and far noisier (see bench/bench_structure.py). Both designs run under the same setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "ffhq-mini"
PHASES = ("data", "g_forward", "structure", "landmark", "landmark_regressor", "identity", "vgg",
          "discriminators", "backward", "optimizer")


# ------------------------------------------------------------------------------ utilities
def median(xs) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def set_threads(n: int | None) -> int:
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def machine() -> dict[str, Any]:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0]
        info["bf16_units"] = sorted(f for f in ("amx_bf16", "avx512_bf16") if f in flags.split())
    except (OSError, IndexError):
        pass
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        if c != c:
            return "-"
        return f"{c:.3f}" if abs(c) < 100 else f"{c:.0f}"
    return str(c)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def timeit(fn, device, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def peaks(device, precision: str, repeats: int) -> dict[str, float]:
    """GFLOP/s of a dense matmul and a 3x3 conv in the given precision."""
    dt = DTYPES[precision]
    n = 2048
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    mm = median(timeit(lambda: a @ b, device, repeats, 1))
    x = torch.randn(8, 128, 64, 64, device=device, dtype=dt).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, device=device, dtype=dt).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        cv = median(timeit(lambda: torch.nn.functional.conv2d(x, w, padding=1), device, repeats, 1))
    conv_flops = 2 * 128 * 128 * 9 * 64 * 64 * 8
    return {"matmul": 2 * n ** 3 / mm / 1e9, "conv": conv_flops / cv / 1e9}


def counted_flops(fn) -> float:
    """FLOPs of one call of ``fn`` (convolutions and matmuls, forward and backward; 2 per
    multiply-add), by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


# ----------------------------------------------------------------------------------- data
def _fill_landmarks(photo_dir: str) -> int:
    from faces import LandmarkCache

    cache = LandmarkCache(photo_dir)
    cache.load()
    cache.fill(progress=False)
    return len(cache)


def prepare_data(kind: str, root: Path, n: int = 48, size: int = 128) -> tuple[Path, Path]:
    """(photo_dir, cartoon_dir) with the landmark cache already filled.

    Detection runs in a spawned child process: the benchmark process never builds a mediapipe
    graph, so forked DataLoader workers (the reference design's) stay safe.
    """
    if kind == "fixtures":
        if not FIXTURES.exists():
            raise SystemExit(f"--data fixtures: {FIXTURES} is absent")
        photos, cartoons = FIXTURES / "photos", FIXTURES / "cartoons"
        # the cache goes beside the photo folder by default: read-only fixtures -> copy
        dst = root / "ffhq-mini"
        if not dst.exists():
            import shutil
            shutil.copytree(FIXTURES, dst)
        photos, cartoons = dst / "photos", dst / "cartoons"
    else:
        from datasets.demo import build_demo_data
        photos, cartoons = build_demo_data(root / "demo", n, n, size=size)
    try:
        import multiprocessing as mp
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
            ex.submit(_fill_landmarks, str(photos)).result()
    except ImportError:
        pass
    return photos, cartoons


def make_run(photos: Path, cartoons: Path, run_root: Path, name: str, *, batch: int = 16,
             size: int = 128, precision: str = "fp32", device: str = "cpu", workers: int = 2,
             channels_last: bool = True, superpixel: str = "fast", quiet: bool = True, **over):
    """A real prepared training run (training.loop.prepare_train: random VGG, random G, no
    ticks); ``run.run_step()`` takes one step.

    ``quiet``: its log (the resolved config) goes to the run's log.txt only.
    """
    import contextlib
    import io
    import logging

    from training.config import resolve
    from training.loop import prepare_train

    params = {"photo_dir": str(photos), "cartoon_dir": str(cartoons), "vgg_weights": "random",
              "init": "none", "workers": workers, "progress": False, "tensorboard": False,
              "checkpoints_dir": str(run_root), "name": name, "total_iter": 10**9,
              "batch_size": batch, "image_size": size, "precision": precision,
              "device": device, "channels_last": channels_last, "superpixel": superpixel,
              "holdout": 0, "log_every": 10**8, "save_every": 10**8, "sample_every": 10**8,
              **over}
    with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
        run = prepare_train(resolve("train", params))
    if quiet:
        log = logging.getLogger("toonface")
        for h in [h for h in log.handlers if type(h) is logging.StreamHandler]:
            log.removeHandler(h)
    return run


def time_run_step(run) -> tuple[float, dict[str, float], dict[str, torch.Tensor]]:
    """One training step (wall seconds incl. the device), its phases, its values."""
    s = run.session
    s.timer.collect()
    sync(s.device)
    t0 = time.perf_counter()
    values = run.run_step()
    sync(s.device)
    total = time.perf_counter() - t0
    return total, s.timer.collect(), values


def temp_root(prefix: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=prefix)
