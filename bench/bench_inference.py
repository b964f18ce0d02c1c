"""Inference throughput of the generator (+ the final guided filter) and its achieved GFLOP/s.

For each size (256, 1024) and precision (fp32, bf16): images/s of ``guided_filter(photo,
G(photo), r=1, eps=5e-3)`` under ``torch.inference_mode`` with channels_last, median over
repeats. The generator's FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (2 per
multiply-add; convs and the matmuls only, the guided filter's elementwise work is not
counted), checked against the analytic sum over convs of 2*Cin*Cout*k*k*Hout*Wout. The peak is
measured on this machine in the same dtype: a large dense matmul and a large 3x3 conv
(128->128 channels, channels_last); achieved/peak uses the better of the two.

    .venv/bin/python bench/bench_inference.py
    .venv/bin/python bench/bench_inference.py --sizes 256 --precision bf16 --device cuda --json out.json

``--vs-onnxruntime`` times instead, in one run, the per-image latency (uint8 photo in, uint8
cartoon out, as cartoonize.py and serve.py see it) of ToonFace's :class:`Cartoonizer` in fp32
and bf16 against onnxruntime running the file export.py writes (context padding, generator,
guided filter and clamp in one graph, the whole image at once), at 256, 512 and 1024 px, and
prints each median and the speed ratios (onnxruntime's time / ours: above 1 = ours faster),
both the ratio of the medians and the median of the ratios within each repeat. The engines take
turns within each repeat (each repeat starting with another one), so a change in the machine's
load or speed hits all of them alike. Both get the same number of threads (``--threads``, default torch's). The column
``ort engine`` is ``--engine onnxruntime`` (the exported generator inside the Cartoonizer).

    .venv/bin/python bench/bench_inference.py --vs-onnxruntime --repeats 9
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (machine, median, peaks, set_threads, table, timeit,  # noqa: E402,I001
                          write_json)

import torch  # noqa: E402


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help="comma list (default 256,1024; "
                                                 "--vs-onnxruntime: 256,512,1024)")
    p.add_argument("--batch", default="4,1", help="batch per size (comma list, same order)")
    p.add_argument("--precision", default="fp32,bf16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-reuse-host-memory", action="store_true",
                   help="leave glibc malloc as it is (cartoonize.py reuses freed memory on CPU)")
    p.add_argument("--json")
    p.add_argument("--vs-onnxruntime", action="store_true",
                   help="per-image latency of Cartoonizer (fp32, bf16) vs onnxruntime on the "
                        "export.py file (sizes default 256,512,1024)")
    p.add_argument("--checkpoint", help="--vs-onnxruntime: a generator file (default: a seeded "
                                        "random Generator; the timing does not depend on weights)")
    return p.parse_args(argv)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def generator_flops(G, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        G(x)
    return int(fc.get_total_flops())


def analytic_flops(G, x) -> int:
    """sum over convs of 2*Cin*Cout*k*k*Hout*Wout / groups (forward hooks)."""
    total = [0]

    def hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2 * m.in_channels * m.out_channels // m.groups * k * out.shape[-1] * out.shape[-2] * out.shape[0]

    hs = [m.register_forward_hook(hook) for m in G.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        G(x)
    for h in hs:
        h.remove()
    return total[0]


def main(argv=None) -> dict:
    from models import Generator, guided_filter
    from inference.cartoonizer import GUIDED_FILTER_R, INFERENCE_EPS

    args = parse(argv)
    threads = set_threads(args.threads)
    if args.vs_onnxruntime:
        return vs_onnxruntime(args, threads)
    device = torch.device(args.device)
    if device.type == "cpu" and not args.no_reuse_host_memory:
        from utils.memory import retain_freed_memory
        retain_freed_memory()  # as cartoonize.py does
    sizes = [int(s) for s in (args.sizes or "256,1024").split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    batches += [batches[-1]] * (len(sizes) - len(batches))
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    torch.manual_seed(0)
    G = Generator().to(device, memory_format=torch.channels_last).eval()
    print(f"{device}, {threads} threads; repeats {args.repeats}", flush=True)

    peak = {p: peaks(device, p, args.repeats) for p in precisions}
    rows, results = [], []
    for size, batch in zip(sizes, batches):
        x = (torch.rand(batch, 3, size, size, device=device) * 2 - 1).contiguous(
            memory_format=torch.channels_last)
        flops = generator_flops(G, x[:1])
        analytic = analytic_flops(G, x[:1])
        for p in precisions:
            def g_only():
                with torch.inference_mode(), autocast(device, p):
                    return G(x)

            def full():
                with torch.inference_mode():
                    with autocast(device, p):
                        raw = G(x)
                    return guided_filter(x, raw.float(), GUIDED_FILTER_R, INFERENCE_EPS)

            t_g = median(timeit(g_only, device, args.repeats, args.warmup))
            t_full = median(timeit(full, device, args.repeats, args.warmup))
            achieved = flops * batch / t_g / 1e9
            best = max(peak[p].values())
            r = {"size": size, "batch": batch, "precision": p, "images_per_s": batch / t_full,
                 "g_only_images_per_s": batch / t_g, "gflop_per_image": flops / 1e9,
                 "gflop_per_image_analytic": analytic / 1e9, "achieved_gflops": achieved,
                 "peak_matmul_gflops": peak[p]["matmul"], "peak_conv_gflops": peak[p]["conv"],
                 "achieved_over_peak": achieved / best}
            results.append(r)
            rows.append([f"{size}x{size}", p, batch, r["images_per_s"], r["g_only_images_per_s"],
                         r["gflop_per_image"], achieved, peak[p]["matmul"], peak[p]["conv"],
                         f"{100 * achieved / best:.0f}%"])
            print(f"  {size} {p}: {r['images_per_s']:.2f} img/s", flush=True)
    print()
    print(table(rows, ["size", "prec", "batch", "img/s (G+GF)", "img/s (G)", "GFLOP/img",
                       "G GFLOP/s", "peak mm", "peak conv", "G/peak"]))
    payload = {"args": vars(args), "machine": machine(), "results": results, "peaks": peak,
               "command": " ".join([sys.executable, *sys.argv])}
    write_json(args.json, payload)
    return payload


def cpu_seconds() -> dict[str, float]:
    """CPU seconds all processes spent busy (/proc/stat: every state but idle and iowait),
    this process's own, and the wall clock, to tell how much of a run other work took."""
    import resource
    import time

    own = resource.getrusage(resource.RUSAGE_SELF)
    busy = float("nan")
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return {"busy": busy, "own": own.ru_utime + own.ru_stime, "wall": time.monotonic()}


def vs_onnxruntime(args, threads: int) -> dict:
    """Per-image latency: Cartoonizer fp32 / bf16 vs onnxruntime on export.py's file."""
    import tempfile
    import time

    import numpy as np
    import onnxruntime as ort

    from media.tensors import to_tensor, to_uint8
    from inference.cartoonizer import INFERENCE_EPS, Cartoonizer
    from inference.export import ExportableCartoonizer, export_onnx
    from inference.onnx_engine import OnnxGenerate, cached_onnx
    from models import Generator
    from models.checkpoint import load_generator
    from utils.memory import retain_freed_memory

    if not args.no_reuse_host_memory:
        retain_freed_memory()  # as cartoonize.py and serve.py do
    sizes = [int(s) for s in (args.sizes or "256,512,1024").split(",")]
    torch.manual_seed(0)
    G = load_generator(args.checkpoint, "cpu")[0] if args.checkpoint else Generator().eval()
    toon = Cartoonizer(G, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(ExportableCartoonizer(G), Path(tmp) / "toon.onnx")  # what export.py writes
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        engine = Cartoonizer(G, "cpu", runtime=OnnxGenerate(cached_onnx(G, INFERENCE_EPS, tmp),
                                                            threads=threads))

        def onnxruntime_file(rgb):
            x = to_tensor(rgb)[None].numpy()
            return to_uint8(torch.from_numpy(sess.run(None, {"photo": x})[0])[0])

        def torch_fp32(rgb):
            return toon(rgb)

        def torch_bf16(rgb):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return toon(rgb)

        runs = {"onnxruntime": onnxruntime_file, "torch fp32": torch_fp32,
                "torch bf16": torch_bf16, "ort engine": engine}
        load_before, cpu_before = os.getloadavg(), cpu_seconds()
        print(f"cpu, {threads} threads (torch and onnxruntime {ort.__version__}); repeats "
              f"{args.repeats}; load average {load_before[0]:.2f}", flush=True)
        results, rows = [], []
        for size in sizes:
            rgb = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
            for fn in runs.values():
                for _ in range(args.warmup):
                    fn(rgb)
            times = {name: [] for name in runs}
            names = list(runs)
            for i in range(args.repeats):
                # take turns, starting with a different engine each repeat: a change in the
                # machine's speed hits every engine alike, and none always runs first
                for name in names[i % len(names):] + names[:i % len(names)]:
                    t0 = time.perf_counter()
                    runs[name](rgb)
                    times[name].append(time.perf_counter() - t0)
            med = {name: median(ts) for name, ts in times.items()}
            # onnxruntime's time / ours within each repeat (the same stretch of the machine's
            # time), then the median: steadier than the ratio of medians when the machine's
            # speed drifts during the run (a shared VM's does, by 1.5x at times)
            paired = {p: median([o / t for o, t in zip(times["onnxruntime"], times[f"torch {p}"])])
                      for p in ("fp32", "bf16")}
            r = {"size": size, **{f"{k.replace(' ', '_')}_ms": v * 1e3 for k, v in med.items()},
                 "fp32_speed_vs_onnxruntime": med["onnxruntime"] / med["torch fp32"],
                 "bf16_speed_vs_onnxruntime": med["onnxruntime"] / med["torch bf16"],
                 "fp32_speed_vs_onnxruntime_paired": paired["fp32"],
                 "bf16_speed_vs_onnxruntime_paired": paired["bf16"],
                 "times_s": times}
            results.append(r)
            rows.append([f"{size}x{size}", *(1e3 * med[n] for n in runs),
                         f"{r['fp32_speed_vs_onnxruntime']:.2f}x / {paired['fp32']:.2f}x",
                         f"{r['bf16_speed_vs_onnxruntime']:.2f}x / {paired['bf16']:.2f}x"])
            print(f"  {size}: " + ", ".join(f"{n} {1e3 * m:.1f} ms" for n, m in med.items()), flush=True)
    load_after, cpu_after = os.getloadavg(), cpu_seconds()
    wall = cpu_after["wall"] - cpu_before["wall"]
    others = ((cpu_after["busy"] - cpu_before["busy"]) - (cpu_after["own"] - cpu_before["own"]))
    others_share = max(0.0, others) / (wall * (os.cpu_count() or 1))
    print()
    print(table(rows, ["size", *(f"{n} ms" for n in runs), "fp32 vs ort", "bf16 vs ort"]))
    print(f"(speed ratios, above 1 = ours faster: onnxruntime's median time / ours, then the "
          f"median over repeats of onnxruntime's time / ours in the same repeat; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (this run's own threads "
          f"count in it); other processes used {100 * others_share:.0f}% of the CPUs' time "
          f"during the {wall:.0f} s run)")
    payload = {"args": vars(args), "machine": machine(), "results": results,
               "onnxruntime": ort.__version__, "load_average": [load_before, load_after],
               "other_processes_cpu_share": others_share, "seconds": wall,
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
               "command": " ".join([sys.executable, *sys.argv])}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
