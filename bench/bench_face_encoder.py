"""Speed of the PyTorch port of dlib's face ResNet (faces/dlib_encoder.py) against dlib itself.

Per face, from a uint8 photo and dlib's 68 points to the 128-D descriptor (the chip alignment
included on both sides), medians over ``--repeats`` with the contenders interleaved per repeat
in one process (load from other jobs hits them alike; compare the ratios):

- ``dlib one by one``: ``face_recognition_model_v1.compute_face_descriptor(img, shape)`` per
  face, as the evaluation kit called it before;
- ``dlib batched``: the same call with lists of images and shapes (dlib runs its network on
  batches of 16 chips);
- ``torch fp32`` / ``torch bf16`` at batch 1 and batch 16: ``DlibFaceEncoder.descriptor`` on
  (B, 3, H, W) images in [-1, 1] (bf16: the module cast with ``.to(torch.bfloat16)``).

Also printed: the largest descriptor difference to dlib of each torch precision on these faces,
and the network's GFLOP/s (0.54 GFLOP a face). Faces: the first 16 fixture photos
(../shared/fixtures/ffhq-mini/photos, 256x256), or skimage's astronaut repeated. Run under
``nice -n 19`` on a shared machine; say which CPU the numbers came from::

    .venv/bin/python bench/bench_face_encoder.py --repeats 5 --json bench/results/face_encoder.json
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import FIXTURES, machine, median, set_threads, table, write_json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from utils.errors import ToonFaceError, call_or_exit  # noqa: E402

GFLOP_PER_FACE = 0.54
BATCH = 16


def load_faces(n: int):
    """n uint8 RGB photos with dlib's 68-point shapes (dlib objects and (68, 2) arrays)."""
    import dlib
    from PIL import Image

    from faces.dlib_analyser import SHAPE_PREDICTOR_68, model_path

    folder = FIXTURES / "photos"
    if folder.is_dir():
        images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir())[:n]]
    else:
        from skimage import data

        images = [np.ascontiguousarray(data.astronaut()[20:276, 100:356])] * n
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_path(SHAPE_PREDICTOR_68)))
    faces = []
    for rgb in images:
        boxes = detector(rgb, 1)
        if len(boxes):
            shape = predictor(rgb, boxes[0])
            faces.append((rgb, shape, np.array([(p.x, p.y) for p in shape.parts()], np.float64)))
    if len(faces) < n:
        raise ToonFaceError(f"dlib found {len(faces)} faces, {n} needed")
    return faces


def run(args) -> dict:
    import dlib

    from faces.dlib_encoder import RESNET_FILE, DlibFaceEncoder

    threads = set_threads(args.threads)
    faces = load_faces(BATCH)
    rec = dlib.face_recognition_model_v1(str(RESNET_FILE.path()))
    fp32 = DlibFaceEncoder.from_package()
    bf16 = DlibFaceEncoder.from_package().to(torch.bfloat16)
    images = torch.from_numpy(np.stack([f[0] for f in faces])).permute(0, 3, 1, 2).float()
    images = images / 127.5 - 1.0
    points = torch.from_numpy(np.stack([f[2] for f in faces])).float()
    shapes = dlib.full_object_detections()
    for f in faces:
        shapes.append(f[1])

    def torch_run(net, batch):
        def go():
            with torch.no_grad():
                for i in range(0, BATCH, batch):
                    net.descriptor(images[i:i + batch], points[i:i + batch])
        return go

    contenders = {
        "dlib one by one": lambda: [rec.compute_face_descriptor(f[0], f[1], 0) for f in faces],
        "dlib batched": lambda: rec.compute_face_descriptor([f[0] for f in faces],
                                                            [shapes[i:i + 1] for i in range(BATCH)],
                                                            0),
        "torch fp32, batch 1": torch_run(fp32, 1),
        "torch fp32, batch 16": torch_run(fp32, BATCH),
        "torch bf16, batch 1": torch_run(bf16, 1),
        "torch bf16, batch 16": torch_run(bf16, BATCH),
    }
    times = {k: [] for k in contenders}
    for fn in contenders.values():  # warm-up: allocators, oneDNN kernels
        fn()
    for r in range(args.repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / BATCH * 1e3)
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)

    ref = np.array([np.array(rec.compute_face_descriptor(f[0], f[1], 0)) for f in faces])
    with torch.no_grad():
        diffs = {name: float(np.abs(net.descriptor(images, points).numpy() - ref).max())
                 for name, net in (("fp32", fp32), ("bf16", bf16))}
    base = median(times["dlib one by one"])
    rows = [[name, median(ts), base / median(ts), GFLOP_PER_FACE / median(ts) * 1e3]
            for name, ts in times.items()]
    info = machine()
    info["cpu_model"] = _cpu_model()
    info["load_average_1min"] = os.getloadavg()[0]
    print(f"\n{BATCH} faces ({'fixture photos' if (FIXTURES / 'photos').is_dir() else 'astronaut'}"
          f", 256x256), median of {args.repeats}; torch threads {threads}; {info['cpu_model']}"
          f" (bf16 units: {', '.join(info.get('bf16_units', [])) or 'none'}); load average "
          f"{info['load_average_1min']:.1f} on {os.cpu_count()} cores")
    print(table(rows, ["per face (photo + 68 points -> descriptor)", "ms", "x dlib one by one",
                       "GFLOP/s"]))
    print(f"max |descriptor - dlib|: fp32 {diffs['fp32']:.2g}, bf16 {diffs['bf16']:.2g}")
    report = {"machine": info, "faces": BATCH, "repeats": args.repeats,
              "ms_per_face": {k: median(v) for k, v in times.items()},
              "runs_ms_per_face": times, "speedup_vs_dlib_one_by_one": {r[0]: r[2] for r in rows},
              "max_abs_diff_vs_dlib": diffs}
    write_json(args.json, report)
    return report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", help="write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    call_or_exit(run, args)


if __name__ == "__main__":
    main()
