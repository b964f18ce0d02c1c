"""Does loading stall the step? The training step with its real loader (image files, worker
processes) vs with the loader replaced by in-memory tensors, in one process.

One prepared training run; its photo/cartoon iterators are swapped between the real ones and endless
cycles over batches collected from them beforehand. Blocks of ``--steps`` steps alternate
between the two modes; steps/s and the data-wait share of the step (the ``data`` phase of
the run's PhaseTimer) are medians over blocks.

    .venv/bin/python bench/bench_loader.py                     # bf16, batch 16, 128x128
    .venv/bin/python bench/bench_loader.py --precision fp32 --workers 0 --json out.json
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (machine, make_run, median, prepare_data, set_threads, sync,  # noqa: E402
                          table, temp_root, write_json)

DATA_SHARE_MAX = 0.05


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--precision", default="bf16", help="the faster the step, the harder the test")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3, help="blocks per mode (median)")
    p.add_argument("--data", choices=("demo", "fixtures"), default="demo")
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json")
    return p.parse_args(argv)


def block(run, steps: int) -> tuple[float, float]:
    """(steps/s, data-wait share) over ``steps`` calls of run_step."""
    s = run.session
    s.timer.collect()
    sync(s.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        run.run_step()
    sync(s.device)
    wall = time.perf_counter() - t0
    return steps / wall, s.timer.collect().get("data", 0.0) / wall


def main(argv=None) -> dict:
    args = parse(argv)
    threads = set_threads(args.threads)
    tmp = temp_root("bench_loader_")
    root = Path(tmp.name)
    photos, cartoons = prepare_data(args.data, root, args.images, args.size)
    run = make_run(photos, cartoons, root / "runs", "loader", batch=args.batch, size=args.size,
                   precision=args.precision, device=args.device, workers=args.workers)
    streams = run.streams
    real = (streams.photos, streams.cartoons)
    n_mem = 4
    mem_p = [next(real[0]) for _ in range(n_mem)]
    mem_c = [next(real[1]) for _ in range(n_mem)]
    modes = {"files": real, "memory": (itertools.cycle(mem_p), itertools.cycle(mem_c))}
    print(f"batch {args.batch}, {args.size}x{args.size}, {args.precision}, {args.device}, "
          f"{threads} threads, {args.workers} workers; {args.repeats} x {args.steps} steps per mode",
          flush=True)
    streams.photos, streams.cartoons = modes["files"]
    block(run, 1)   # warm-up
    res: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    for r in range(args.repeats):
        for m, its in modes.items():
            streams.photos, streams.cartoons = its
            res[m].append(block(run, args.steps))
            print(f"  block {r + 1}: {m:<6} {res[m][-1][0]:.3f} steps/s", flush=True)
    streams.photos, streams.cartoons = real
    med = {m: {"steps_per_s": median([x[0] for x in v]), "data_share": median([x[1] for x in v])}
           for m, v in res.items()}
    ratio = med["files"]["steps_per_s"] / med["memory"]["steps_per_s"]
    print()
    print(table([[m, v["steps_per_s"], f"{100 * v['data_share']:.2f}%"] for m, v in med.items()],
                ["loader", "steps/s", "data wait / step"]))
    ok = med["files"]["data_share"] < DATA_SHARE_MAX
    print(f"\nfiles / memory speed: {ratio:.3f}; data wait with files "
          f"{100 * med['files']['data_share']:.2f}% of the step (target < "
          f"{100 * DATA_SHARE_MAX:.0f}%): {'met' if ok else 'MISSED'}")
    payload = {"args": vars(args), "machine": machine(), "blocks": res, "medians": med,
               "files_over_memory": ratio, "command": " ".join([sys.executable, *sys.argv])}
    write_json(args.json, payload)
    tmp.cleanup()
    return payload


if __name__ == "__main__":
    main()
