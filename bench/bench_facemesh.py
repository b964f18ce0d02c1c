"""FaceMeshNet (faces/facemesh.py) against LiteRT on the same face_landmark.tflite: speed and
agreement.

Speed: per batch of crops (default 8 and 16), fp32 and bf16 autocast, forward only (no_grad)
and forward+backward (gradients to the crops, as the landmark loss needs; the weights are
frozen), against LiteRT's interpreter (XNNPACK, same thread count) running the crops one by one
(it takes batch 1). All contenders run interleaved in each repeat, in one process; the table
gives medians and LiteRT-per-crop / ours-per-crop ratios (above 1: ours is faster).

Agreement, on the 49 ffhq-mini photos resized to 192x192 (or seeded noise where the fixtures
are absent): max abs landmark difference of fp32 vs LiteRT (px) and logit difference, and how
far bf16 autocast lands from fp32 (mean and max px over x, y).

    .venv/bin/python bench/bench_facemesh.py --json bench/results/facemesh.json
    .venv/bin/python bench/bench_facemesh.py --batches 8 --precision fp32 --repeats 5

Needs mediapipe 0.10.21 (the model file) and ai-edge-litert (the oracle).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (DTYPES, FIXTURES, counted_flops, machine, median, set_threads,  # noqa: E402
                          table, write_json)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def load_crops(n_max: int = 49) -> tuple[np.ndarray, str]:
    """(N, 192, 192, 3) float32 in [0, 1]: fixture photos resized (bilinear), else noise."""
    from PIL import Image

    files = sorted((FIXTURES / "photos").glob("*.jpg"))[:n_max]
    if files:
        crops = [np.asarray(Image.open(f).convert("RGB").resize((192, 192), Image.BILINEAR),
                            dtype=np.float32) / 255 for f in files]
        return np.stack(crops), f"{len(files)} ffhq-mini photos resized to 192"
    rng = np.random.default_rng(0)
    return rng.random((16, 192, 192, 3), dtype=np.float32), "16 seeded noise crops (no fixtures)"


def make_litert(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = {d["name"]: d["index"] for d in it.get_output_details()}

    def run(crop_hwc: np.ndarray) -> tuple[np.ndarray, float]:
        it.set_tensor(inp, crop_hwc[None])
        it.invoke()
        return (it.get_tensor(outs["conv2d_21"]).reshape(468, 3),
                float(it.get_tensor(outs["conv2d_31"]).reshape(())))
    return run


def agreement(net, litert, crops_hwc: np.ndarray) -> dict[str, float]:
    ref = [litert(c) for c in crops_hwc]
    ref_lm = np.stack([r[0] for r in ref])
    ref_logit = np.array([r[1] for r in ref])
    x = torch.from_numpy(crops_hwc).permute(0, 3, 1, 2)
    with torch.no_grad():
        lm, logit = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lm16, logit16 = net(x)
    bf = (lm16 - lm)[..., :2].abs()
    return {"fp32_vs_litert_max_px": float(np.abs(lm.numpy() - ref_lm).max()),
            "fp32_vs_litert_logit_max": float(np.abs(logit.numpy() - ref_logit).max()),
            "bf16_vs_fp32_mean_px": float(bf.mean()), "bf16_vs_fp32_max_px": float(bf.max()),
            "bf16_vs_fp32_per_crop_max_mean_px": float(bf.mean(dim=(1, 2)).max()),
            "bf16_vs_fp32_logit_max": float((logit16 - logit).abs().max()),
            "litert_logit_min": float(ref_logit.min())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="8,16", help="comma-separated batch sizes")
    ap.add_argument("--precision", default="fp32,bf16", help="fp32, bf16 (autocast), or both")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch and LiteRT threads")
    ap.add_argument("--json", default=None, help="write every number here")
    args = ap.parse_args()

    from faces.facemesh import FACE_LANDMARK_FILE, FaceMeshNet

    threads = set_threads(args.threads)
    path = FACE_LANDMARK_FILE.path()
    net = FaceMeshNet.from_package()
    litert = make_litert(path, threads)
    crops_hwc, data_note = load_crops()
    batches = [int(b) for b in args.batches.split(",")]
    precisions = args.precision.split(",")
    for p in precisions:
        if p not in DTYPES:
            ap.error(f"--precision: {p!r} is not fp32 or bf16")

    acc = agreement(net, litert, crops_hwc)
    gflop_fwd = counted_flops(lambda: net(torch.rand(1, 3, 192, 192))) / 1e9
    x1 = torch.rand(1, 3, 192, 192, requires_grad=True)
    gflop_fwd_bwd = counted_flops(lambda: sum(o.sum() for o in net(x1)).backward()) / 1e9

    def batch_of(b: int) -> np.ndarray:
        return np.ascontiguousarray(crops_hwc[np.arange(b) % len(crops_hwc)])

    def ours(x: torch.Tensor, precision: str, backward: bool):
        def run():
            ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
            if backward:
                xg = x.detach().requires_grad_()
                with ctx:
                    lm, logit = net(xg)
                (lm[..., :2].sum() + logit.sum()).backward()
            else:
                with torch.no_grad(), ctx:
                    net(x)
        return run

    contenders = {}
    for b in batches:
        hwc = batch_of(b)
        x = torch.from_numpy(hwc).permute(0, 3, 1, 2).contiguous()
        for p in precisions:
            for backward in (False, True):
                contenders[(b, p, "fwd+bwd" if backward else "fwd")] = ours(x, p, backward)
        contenders[(b, "litert", "fwd")] = (lambda h: lambda: [litert(c) for c in h])(hwc)

    for fn in contenders.values():           # warm-up, then interleaved repeats
        for _ in range(args.warmup):
            fn()
    times = {k: [] for k in contenders}
    for _ in range(args.repeats):
        for k, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)

    rows, results = [], []
    for (b, p, mode), ts in times.items():
        ms = 1000 * median(ts)
        litert_per_crop = 1000 * median(times[(b, "litert", "fwd")]) / b
        entry = {"batch": b, "engine": "litert" if p == "litert" else "torch",
                 "precision": "fp32" if p == "litert" else p, "mode": mode,
                 "ms_per_batch": ms, "ms_per_crop": ms / b,
                 "litert_per_crop_over_ours": litert_per_crop / (ms / b),
                 "times_s": ts}
        results.append(entry)
        rows.append([f"{'litert' if p == 'litert' else 'torch ' + p} {mode}", b, ms, ms / b,
                     entry["litert_per_crop_over_ours"]])
    print(f"FaceMeshNet vs LiteRT ({data_note}); {threads} thread(s); {machine()['processor']}")
    print(table(rows, ["engine", "batch", "ms/batch", "ms/crop", "litert/ours"]))
    print(f"GFLOP per crop: forward {gflop_fwd:.3f}, forward+backward {gflop_fwd_bwd:.3f}")
    for k, v in acc.items():
        print(f"{k}: {v:.3g}")
    write_json(args.json, {"machine": machine(), "data": data_note, "threads": threads,
                           "repeats": args.repeats, "warmup": args.warmup, "results": results,
                           "agreement": acc, "gflop_per_crop_forward": gflop_fwd,
                           "gflop_per_crop_forward_backward": gflop_fwd_bwd})


if __name__ == "__main__":
    main()
