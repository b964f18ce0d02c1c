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
"""
from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (machine, median, peaks, set_threads, table, timeit,  # noqa: E402,I001
                          write_json)

import torch  # noqa: E402


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,1024")
    p.add_argument("--batch", default="4,1", help="batch per size (comma list, same order)")
    p.add_argument("--precision", default="fp32,bf16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-reuse-host-memory", action="store_true",
                   help="leave glibc malloc as it is (cartoonize.py reuses freed memory on CPU)")
    p.add_argument("--json")
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
    device = torch.device(args.device)
    if device.type == "cpu" and not args.no_reuse_host_memory:
        from utils.memory import retain_freed_memory
        retain_freed_memory()  # as cartoonize.py does
    sizes = [int(s) for s in args.sizes.split(",")]
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


if __name__ == "__main__":
    main()
