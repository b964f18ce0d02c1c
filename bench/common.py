"""What the benchmarks share: data, a real TrainLoop, the reference (seed) step, tables, JSON.

The reference step :class:`ReferenceStep` re-implements, per step, what the seed's PyTorch
rewrite did, so that a benchmark measures it side by side with ``TrainLoop.run_step`` in one
process, on the same data:

- a fresh ``next(iter(DataLoader(...)))`` every step (workers start again, every step);
- G forward with autograd for everything; discriminators not frozen during the G step (their
  parameter gradients are computed and thrown away);
- VGG19 with ``requires_grad=True`` parameters, three separate forwards (photo, structure,
  output), all recorded by autograd, so backward also computes VGG weight gradients;
- structure via joblib, one process per image, skimage ``slic(n_segments=200, compactness=10,
  sigma=1)`` + ``label2rgb(kind='avg')`` on the host;
- the D step recomputes G *with* autograd, then runs each discriminator separately on real
  and on fake;
- fp32, contiguous memory format.

The loss terms are the same functions the project uses (surface, texture, TV, VGG L1,
landmark), with the same weights. Process-wide settings (threads, OpenMP waits, and the malloc
reuse a TrainLoop turns on) hold for the reference step as well.
"""
from __future__ import annotations

import copy
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "ffhq-mini"
PHASES = ("data", "g_forward", "structure", "landmark", "vgg", "discriminators", "backward",
          "optimizer")


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
        cv = median(timeit(lambda: F.conv2d(x, w, padding=1), device, repeats, 1))
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
    from datasets.landmarks import LandmarkCache

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


def make_loop(photos: Path, cartoons: Path, run_root: Path, name: str, *, batch: int = 16,
              size: int = 128, precision: str = "fp32", device: str = "cpu", workers: int = 2,
              channels_last: bool = True, superpixel: str = "fast", quiet: bool = True, **over):
    """A real :class:`training.loop.TrainLoop` (random VGG, random G, no ticks).

    ``quiet``: its log (the resolved config) goes to the run's log.txt only.
    """
    import contextlib
    import io
    import logging

    from training.config import resolve
    from training.loop import TrainLoop

    params = {"photo_dir": str(photos), "cartoon_dir": str(cartoons), "vgg_weights": "random",
              "init": "none", "workers": workers, "progress": False, "tensorboard": False,
              "checkpoints_dir": str(run_root), "name": name, "total_iter": 10**9,
              "batch_size": batch, "image_size": size, "precision": precision,
              "device": device, "channels_last": channels_last, "superpixel": superpixel,
              "holdout": 0, "log_every": 10**8, "save_every": 10**8, "sample_every": 10**8,
              **over}
    with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
        loop = TrainLoop(resolve("train", params))
    if quiet:
        log = logging.getLogger("toonface")
        for h in [h for h in log.handlers if type(h) is logging.StreamHandler]:
            log.removeHandler(h)
    return loop


def time_loop_step(loop) -> tuple[float, dict[str, float], dict[str, torch.Tensor]]:
    """One ``run_step`` (wall seconds incl. the device), its phases, its values."""
    loop.timer.collect()
    sync(loop.device)
    t0 = time.perf_counter()
    values = loop.run_step()
    loop.step += 1
    sync(loop.device)
    total = time.perf_counter() - t0
    return total, loop.timer.collect(), values


# ------------------------------------------------------------------- the reference design
def _slic_label2rgb(image01: np.ndarray, seg_num: int = 200) -> np.ndarray:
    """The seed's per-image structure: skimage SLIC + label2rgb(kind='avg'), HWC in [0, 1]."""
    from skimage import color, segmentation

    labels = segmentation.slic(image01, n_segments=seg_num, compactness=10, sigma=1,
                               channel_axis=-1, start_label=1)
    return color.label2rgb(labels, image01, kind="avg", bg_label=-1)


def _parallel_map(fn, items, n_jobs: int):
    try:
        from joblib import Parallel, delayed
    except ImportError:  # same shape of work: one process per image
        with ProcessPoolExecutor(n_jobs) as ex:
            return list(ex.map(fn, items))
    return Parallel(n_jobs=n_jobs)(delayed(fn)(it) for it in items)


def reference_structure(out: torch.Tensor, seg_num: int = 200) -> torch.Tensor:
    x = ((out.detach().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
    filled = _parallel_map(_slic_label2rgb, list(x), n_jobs=len(x))
    y = torch.from_numpy(np.stack(filled)).permute(0, 3, 1, 2).float() * 2 - 1
    return y.to(out.device)


class ReferenceStep:
    """The seed's training step (see the module docstring), on copies of a loop's models.

    ``step()`` returns ``(seconds, {phase: seconds}, {term: value})``; phases use the same
    names as the TrainLoop's.
    """

    def __init__(self, loop, workers: int = 2):
        from training.config import weights as weights_of

        self.loop = loop
        self.cfg, self.device = loop.cfg, loop.device
        self.w = weights_of(self.cfg)
        cf = torch.contiguous_format
        self.G = copy.deepcopy(loop.G_raw).to(memory_format=cf).train()
        self.Ds = copy.deepcopy(loop.Ds_raw).to(memory_format=cf).train().requires_grad_(True)
        self.Dt = copy.deepcopy(loop.Dt_raw).to(memory_format=cf).train().requires_grad_(True)
        self.vgg = copy.deepcopy(loop.vgg).float().to(memory_format=cf)  # a bf16 loop casts its copy
        self.vgg.requires_grad_(True)   # the seed never froze VGG
        c = self.cfg
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=c["lr"], betas=(c["beta1"], c["beta2"]))
        self.opt_D = torch.optim.Adam(list(self.Ds.parameters()) + list(self.Dt.parameters()),
                                      lr=c["lr"], betas=(c["beta1"], c["beta2"]))
        self.workers = workers
        self.texture_gen = torch.Generator().manual_seed(c["seed"])

    def _batch(self, dataset) -> dict[str, torch.Tensor]:
        from torch.utils.data import DataLoader

        # The seed: a new DataLoader iterator every step (workers restart, every step).
        loader = DataLoader(dataset, batch_size=self.cfg["batch_size"], shuffle=True,
                            num_workers=self.workers, drop_last=True)
        return next(iter(loader))

    def step(self) -> tuple[float, dict[str, float], dict[str, float]]:
        from losses.adversarial import lsgan_d_loss, lsgan_g_loss
        from losses.content import feature_l1
        from representations.surface import surface
        from representations.texture import texture, texture_weights
        from losses.variation import total_variation_loss
        from models import guided_filter

        w, dev, ph = self.w, self.device, {}

        def mark(name, t0):
            sync(dev)
            ph[name] = ph.get(name, 0.0) + time.perf_counter() - t0
            return time.perf_counter()

        sync(dev)
        start = t = time.perf_counter()
        pb, cb = self._batch(self.loop.photos), self._batch(self.loop.cartoons)
        photo, cartoon = pb["image"].to(dev), cb["image"].to(dev)
        t = mark("data", t)
        tex_w = texture_weights(self.texture_gen)
        # ---- G step
        out = guided_filter(photo, self.G(photo), 1, self.cfg["gf_eps"])
        t = mark("g_forward", t)
        terms = {"tv": total_variation_loss(out)}
        terms["surface"] = lsgan_g_loss(self.Ds(surface(out)))
        terms["texture"] = lsgan_g_loss(self.Dt(texture(out, weights=tex_w)[0]))
        t = mark("discriminators", t)
        struct = reference_structure(out, self.cfg["seg_num"])
        t = mark("structure", t)
        f_photo, f_struct, f_out = self.vgg(photo), self.vgg(struct), self.vgg(out)
        terms["content"] = feature_l1(f_photo, f_out)
        terms["structure"] = feature_l1(f_struct, f_out)
        t = mark("vgg", t)
        if w["landmark"] > 0:
            terms["landmark"] = self.loop.landmark_loss(out, photo, pb["lmap"].to(dev),
                                                        pb["valid"].to(dev))
            t = mark("landmark", t)
        g_total = sum(w[k] * v for k, v in terms.items() if w[k] > 0)
        self.opt_G.zero_grad()
        g_total.backward()
        t = mark("backward", t)
        self.opt_G.step()
        t = mark("optimizer", t)
        # ---- D step: G recomputed with autograd, D separately on real and fake
        fake = guided_filter(photo, self.G(photo), 1, self.cfg["gf_eps"])
        t = mark("g_forward", t)
        d_terms = {
            "surface": lsgan_d_loss(self.Ds(surface(cartoon)), self.Ds(surface(fake.detach()))),
            "texture": lsgan_d_loss(self.Dt(texture(cartoon, weights=tex_w)[0]),
                                    self.Dt(texture(fake.detach(), weights=tex_w)[0])),
        }
        t = mark("discriminators", t)
        self.opt_D.zero_grad()
        sum(d_terms.values()).backward()
        t = mark("backward", t)
        self.opt_D.step()
        mark("optimizer", t)
        sync(dev)
        values = {f"G/{k}": float(v.detach()) for k, v in terms.items()}
        values.update({f"D/{k}": float(v.detach()) for k, v in d_terms.items()})
        return time.perf_counter() - start, ph, values


def temp_root(prefix: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=prefix)
