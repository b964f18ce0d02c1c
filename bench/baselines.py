"""Baseline scores of ``test.py --outputs`` on the 49 ffhq-mini fixture pairs (256x256).

Rows, each scored by the same function as ``test.py --outputs`` (``evaluate_outputs``; dlib
HOG detector, upsample 1; the default training landmark detector; no Inception file):

- ``authors``: the white-box authors' own face cartoons of the photos (fixtures ``cartoons/``):
  the level a good face cartoonizer reaches, which ToonFace aims to beat;
- ``blur2``: the photo blurred by ``cv2.GaussianBlur`` sigma 2 (a floor: geometry and identity
  kept, no style);
- ``quant8``: the photo reduced to 8 colours by Pillow's median cut, no dithering (a floor: flat
  colours without drawing).

The two floors are written as PNG into a temporary folder, named like their photos. Then
``test.py --outputs`` itself (a fresh process: imports, model loading, scoring, reports) is
timed ``--repeats`` times on the authors' cartoons: wall seconds, and the CPU seconds of the
main process and of its dlib workers (on a shared machine the wall time includes other jobs'
load; the CPU time much less so). Run under ``nice -n 19``::

    .venv/bin/python bench/baselines.py --json bench/results/baselines.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from evaluation.scoring import CONTRACT_KEYS  # noqa: E402
from utils.errors import ToonFaceError, call_or_exit  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "ffhq-mini"
ROWS = ("authors", "blur2", "quant8")
SHOWN = ("nme68_mean", "nme68_median", "identity_distance_mean", "identity_same_rate",
         "identity_cosine_mean", "face_found_rate_dlib", "nme_mediapipe_mean",
         "face_found_rate_mediapipe", "distinct_colours", "edge_density", "flatness",
         "smooth_share")


def blur2(photo: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(photo, (0, 0), sigmaX=2.0, sigmaY=2.0)


def quant8(photo: np.ndarray) -> np.ndarray:
    from PIL import Image

    pal = Image.fromarray(photo).quantize(8, method=Image.Quantize.MEDIANCUT,
                                          dither=Image.Dither.NONE)
    return np.asarray(pal.convert("RGB"))


def write_transformed(photos: Path, dest: Path, fn) -> Path:
    from PIL import Image

    from media.decode import read_image_rgb
    from media.folders import list_images

    dest.mkdir(parents=True)
    for p in list_images(photos):
        Image.fromarray(fn(read_image_rgb(p))).save(dest / (p.stem + ".png"))
    return dest


# Runs test.py as __main__ in a fresh interpreter and reports its own CPU time and that of the
# processes it waited for (the dlib workers) on its last stderr line.
_TIMED = """import json, resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({"rc": code, "main_cpu_s": me.ru_utime + me.ru_stime,
                  "workers_cpu_s": kids.ru_utime + kids.ru_stime}), file=sys.stderr)
"""


def time_cli(outputs: Path, photos: Path, out: Path, workers: int) -> dict:
    """Wall seconds and CPU seconds (this process, the dlib workers) of one
    ``test.py --outputs`` run in a fresh interpreter, with the environment as it is (no
    OMP_WAIT_POLICY set here)."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _TIMED, str(ROOT / "test.py"), "--outputs",
                          str(outputs), "--photo_dir", str(photos), "--out", str(out),
                          "--inception", str(out.parent / "no-inception.pt"),
                          "--workers", str(workers)],
                         cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    lines = res.stderr.strip().splitlines()
    usage = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"rc": res.returncode}
    if usage["rc"] != 0:
        raise ToonFaceError(f"test.py --outputs failed: {lines[-2] if len(lines) > 1 else res.stderr}")
    return {"wall_s": wall, "main_cpu_s": usage["main_cpu_s"],
            "workers_cpu_s": usage["workers_cpu_s"],
            "cpu_s": usage["main_cpu_s"] + usage["workers_cpu_s"],
            "load_average_1min": os.getloadavg()[0]}


def run(args) -> dict:
    from evaluation.evaluate import dlib_analyser, evaluate_outputs

    fixtures = Path(args.fixtures)
    photos, cartoons = fixtures / "photos", fixtures / "cartoons"
    if not photos.is_dir() or not cartoons.is_dir():
        raise ToonFaceError(f"{fixtures}: expected photos/ and cartoons/ folders")
    analyser = dlib_analyser("hog", 1)
    report: dict = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
                    "fixtures": str(fixtures), "dlib": {"detector": "hog", "upsample": 1},
                    "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folders = {"authors": cartoons,
                   "blur2": write_transformed(photos, tmp / "blur2", blur2),
                   "quant8": write_transformed(photos, tmp / "quant8", quant8)}
        for row in ROWS:
            res = evaluate_outputs(outputs=str(folders[row]), photo_dir=str(photos),
                                   out=str(tmp / f"{row}_scores"), analyser=analyser,
                                   inception=str(tmp / "no-inception.pt"), echo=lambda m: None)
            m = json.loads(res["metrics_path"].read_text())
            report["rows"][row] = {k: m[k] for k in CONTRACT_KEYS}
            report["rows"][row]["photo_style"] = m["style"]["photo"]
            report["landmark_detector"] = m["landmark"]["detector"]
        runs = []
        for i in range(args.repeats):
            r = time_cli(cartoons, photos, tmp / f"timed{i}", args.workers)
            runs.append(r)
            print(f"test.py --outputs --workers {args.workers} run {i + 1}: {r['wall_s']:.1f} s "
                  f"wall, {r['cpu_s']:.1f} s CPU (main {r['main_cpu_s']:.1f}, dlib workers "
                  f"{r['workers_cpu_s']:.1f}), load average {r['load_average_1min']:.1f}",
                  flush=True)
    report["timing"] = {"workers": args.workers, "runs": runs,
                        **{f"{k}_median": statistics.median(r[k] for r in runs)
                           for k in ("wall_s", "cpu_s", "main_cpu_s", "workers_cpu_s")}}

    print(f"\n{report['rows']['authors']['pairs']} pairs, dlib HOG upsample 1, landmark detector "
          f"{report['landmark_detector']}")
    print(f"{'metric':28s}" + "".join(f"{r:>12s}" for r in ROWS) + f"{'photos':>12s}")
    for k in SHOWN:
        vals = [report["rows"][r][k] for r in ROWS]
        photo = report["rows"]["authors"]["photo_style"].get(k)
        cells = [("n/a" if v is None else f"{v:.4g}") for v in vals]
        print(f"{k:28s}" + "".join(f"{c:>12s}" for c in cells)
              + (f"{photo:>12.4g}" if isinstance(photo, float) else ""))
    t = report["timing"]
    print(f"scoring time (test.py --outputs --workers {args.workers}, median of {args.repeats}): "
          f"{t['wall_s_median']:.1f} s wall, {t['cpu_s_median']:.1f} s CPU (main "
          f"{t['main_cpu_s_median']:.1f}, dlib workers {t['workers_cpu_s_median']:.1f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixtures", default=str(FIXTURES), help="folder with photos/ and cartoons/")
    ap.add_argument("--repeats", type=int, default=3, help="timed test.py --outputs runs")
    ap.add_argument("--workers", type=int, default=2, help="test.py --workers of the timed runs")
    ap.add_argument("--json", help="write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    call_or_exit(run, args)


if __name__ == "__main__":
    main()
