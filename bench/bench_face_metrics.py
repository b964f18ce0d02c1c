"""Speed and reference levels of the dlib face metrics (nme68, identity) on the fixture pairs.

Scores the 49 ffhq-mini photos (256x256) against, per condition:

- ``cartoon``: the white-box authors' own cartoon of the same photo (the reference level the
  README's evaluation section quotes);
- ``blur2``: ``cv2.GaussianBlur`` of the photo, sigma 2 (OpenCV picks the 13x13 kernel);
- ``quant8``: the photo reduced to 8 colours by Pillow's median cut (``Image.quantize(8,
  MEDIANCUT)``, no dithering): a palette of 8 RGB colours chosen per image;
- ``self``: the photo itself (every metric must be exactly 0 / 1).

Prints the wall and CPU time of each scoring run (reading the files + detection + landmarks +
descriptors, models loaded before the clock starts) and its median over ``--repeats``, the
aggregate metrics per condition, and, for context, the identity distance between *different*
fixture people. Run under ``nice -n 19`` on a shared machine::

    .venv/bin/python bench/bench_face_metrics.py --repeats 3 --json bench/results/face_metrics.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from faces.dlib_analyser import DETECTORS, DlibFaceAnalyser  # noqa: E402
from evaluation.face_metrics import identity_distance, score_face_pairs  # noqa: E402
from evaluation.rgb import read_rgb  # noqa: E402
from utils.errors import ToonFaceError, call_or_exit  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "ffhq-mini"
CONDITIONS = ("cartoon", "blur2", "quant8", "self")


def blur2(photo: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(photo, (0, 0), sigmaX=2.0, sigmaY=2.0)


def quant8(photo: np.ndarray) -> np.ndarray:
    from PIL import Image

    pal = Image.fromarray(photo).quantize(8, method=Image.Quantize.MEDIANCUT,
                                          dither=Image.Dither.NONE)
    return np.asarray(pal.convert("RGB"))


def outputs_for(condition: str, names: list[str], photos_dir: Path, cartoons_dir: Path):
    """Output images of one condition, made (or read) one at a time, like a real scoring run."""
    for n in names:
        if condition == "cartoon":
            yield read_rgb(cartoons_dir / n)
        else:
            photo = read_rgb(photos_dir / n)
            yield {"blur2": blur2, "quant8": quant8, "self": lambda x: x}[condition](photo)


def run(args) -> dict:
    fixtures = Path(args.fixtures)
    photos_dir, cartoons_dir = fixtures / "photos", fixtures / "cartoons"
    if not photos_dir.is_dir() or not cartoons_dir.is_dir():
        raise ToonFaceError(f"{fixtures}: expected photos/ and cartoons/ folders")
    names = sorted(p.name for p in photos_dir.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    names = [n for n in names if (cartoons_dir / n).is_file()][:args.limit or None]
    if not names:
        raise ToonFaceError(f"{fixtures}: no photo with a cartoon of the same name")
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise ToonFaceError(f"unknown condition(s) {', '.join(unknown)}: "
                            f"expected some of {', '.join(CONDITIONS)}")

    analyser = DlibFaceAnalyser(detector=args.detector, upsample=args.upsample)
    t0 = time.perf_counter()
    analyser.load()
    load_s = time.perf_counter() - t0
    print(f"{len(names)} pairs, detector {args.detector} upsample {args.upsample}; "
          f"models loaded in {load_s:.2f} s", flush=True)

    report = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
              "pairs": len(names), "detector": args.detector, "upsample": args.upsample,
              "model_load_s": load_s, "conditions": {}}
    for cond in conditions:
        times, cpu, result = [], [], None
        for _ in range(args.repeats if cond == "cartoon" else 1):
            t0, c0 = time.perf_counter(), time.process_time()
            photos = (read_rgb(photos_dir / n) for n in names)
            result = score_face_pairs(photos, outputs_for(cond, names, photos_dir, cartoons_dir),
                                      analyser, names=names)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        s = result["summary"]
        missed = [r["name"] for r in result["per_pair"]
                  if r["status"] == "scored" and not r["output_face_found"]]
        detected = [r["nme68"] for r in result["per_pair"] if r["output_box"] == "detected"]
        s_extra = {"nme68_mean_output_detected": float(np.mean(detected)) if detected else None,
                   "outputs_without_dlib_face": missed}
        report["conditions"][cond] = {"seconds": times, "seconds_median": statistics.median(times),
                                      "cpu_seconds": cpu, "summary": s, **s_extra}
        # CPU time beside wall time: on a shared machine the wall time includes others' load.
        print(f"\n[{cond}] scored in {statistics.median(times):.2f} s wall, "
              f"{statistics.median(cpu):.2f} s CPU (median of {len(times)}: "
              f"{', '.join(f'{t:.2f}' for t in times)} s wall)")
        for k, v in s.items():
            print(f"  {k:26s} {v:.4f}" if isinstance(v, float) else f"  {k:26s} {v}")
        if detected:
            print(f"  {'nme68 (detected outputs)':26s} {s_extra['nme68_mean_output_detected']:.4f}"
                  f" over {len(detected)}")
        if missed:
            print(f"  no dlib face on the output: {', '.join(missed)}")

    if args.between_people:
        descs = []
        for n in names:
            face, _ = analyser.find_face(read_rgb(photos_dir / n))
            if face is not None:
                descs.append(face.descriptor)
        d = [identity_distance(a, b) for a, b in combinations(descs, 2)]
        if d:
            report["different_people"] = {"pairs": len(d), "mean": float(np.mean(d)),
                                          "min": float(np.min(d)),
                                          "below_0.6": float(np.mean(np.array(d) < 0.6))}
            print(f"\n[different people] {len(d)} photo pairs: identity distance mean "
                  f"{np.mean(d):.3f}, min {np.min(d):.3f}, "
                  f"below 0.6: {np.mean(np.array(d) < 0.6):.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixtures", default=str(FIXTURES), help="folder with photos/ and cartoons/")
    ap.add_argument("--detector", choices=DETECTORS, default="hog")
    ap.add_argument("--upsample", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of the cartoon condition")
    ap.add_argument("--conditions", default=",".join(CONDITIONS),
                    help=f"comma-separated, of {', '.join(CONDITIONS)}")
    ap.add_argument("--limit", type=int, default=0, help="first N pairs only (0: all)")
    ap.add_argument("--no-between-people", dest="between_people", action="store_false",
                    help="skip the identity distances between different fixture people")
    ap.add_argument("--json", help="write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    call_or_exit(run, args)


if __name__ == "__main__":
    main()
