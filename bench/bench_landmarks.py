"""How the landmark maps of the detector backends agree, and what that does to the loss.

On a folder of face photos (default: the 49 of ../shared/fixtures/ffhq-mini/photos), every
available backend (mediapipe FaceMesh, dlib 68, and mediapipe Tasks when ``--tasks-model`` is
given) detects each photo, and for each backend against mediapipe FaceMesh it reports, over the
photos where both find a face:

- ``corner_nme``: mean distance of 8 corresponding points (outer/inner eye corners, mouth
  corners, chin, nose tip; mediapipe index vs iBUG index) / mediapipe inter-ocular distance;
- ``contour_px``: mean distance (pixels) from each contour pixel of the backend's map (channel 0
  > 0.5) to the nearest mediapipe contour pixel, and the reverse (``contour_px_reverse``: the
  mediapipe face oval runs over the forehead, which the 68-point jaw line lacks); both also /
  inter-ocular distance;
- ``region_iou``: intersection over union of the region masks (channel 1 > 0.5);
- the landmark loss (losses/landmark.py, unchanged) of degraded photos under each backend's map:
  Gaussian blur sigma 1, 2, 4, SLIC-200 flattening, and the reference cartoon of the same name
  when a ``cartoons`` folder sits beside the photos; per condition the mean under each map,
  the ratio, and the Pearson / Spearman correlation across photos;
- detection rate and milliseconds per photo of each backend.

    .venv/bin/python bench/bench_landmarks.py --json bench/results/landmarks.json
    .venv/bin/python bench/bench_landmarks.py --tasks-model face_landmarker.task
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "fixtures" / "ffhq-mini" / "photos"
# (mediapipe FaceMesh index, iBUG 300-W index) of the same anatomical point.
CORRESPONDING = [(33, 36), (133, 39), (362, 42), (263, 45), (61, 48), (291, 54), (152, 8), (4, 30)]
BLURS = (1.0, 2.0, 4.0)


def _detect_all(spec, images):
    pts, t0 = [], time.perf_counter()
    with spec.build() as det:
        for im in images:
            pts.append(det.detect(im))
    return pts, 1000 * (time.perf_counter() - t0) / len(images)


def _chamfer(a_mask, b_mask):
    """Mean distance from each pixel of a_mask to the nearest pixel of b_mask."""
    if not a_mask.any() or not b_mask.any():
        return float("nan")
    dist = cv2.distanceTransform((~b_mask).astype(np.uint8), cv2.DIST_L2, 5)
    return float(dist[a_mask].mean())


def _degraded(photos, cartoon_dir, names):
    from skimage.color import label2rgb
    from skimage.segmentation import slic

    from media.decode import read_image_rgb

    out = {f"blur{s:g}": [cv2.GaussianBlur(p, (0, 0), sigmaX=s) for p in photos] for s in BLURS}
    out["slic200"] = [label2rgb(slic(p, n_segments=200, compactness=10, sigma=1, start_label=0), p,
                                kind="avg", bg_label=-1).astype(np.uint8) for p in photos]
    if cartoon_dir.is_dir() and all((cartoon_dir / n).is_file() for n in names):
        out["reference_cartoon"] = [cv2.resize(read_image_rgb(cartoon_dir / n), p.shape[1::-1],
                                               interpolation=cv2.INTER_AREA)
                                    for p, n in zip(photos, names)]
    return out


def _losses(photos, outputs, maps):
    import torch

    from losses.landmark import landmark_loss_per_image

    def t(imgs):
        return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1

    with torch.no_grad():
        per = landmark_loss_per_image(t(outputs), t(photos), torch.from_numpy(np.stack(maps)))[0]
    return per.numpy().astype(np.float64)


def _spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--tasks-model", type=Path, default=None,
                    help="face_landmarker.task: adds the mediapipe-tasks backend")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from media.decode import read_image_rgb
    from media.folders import list_images
    from faces import render_landmark_map, resolve_detector
    from faces.landmark_detectors import mediapipe_legacy_problem

    if mediapipe_legacy_problem():
        raise SystemExit(f"the reference backend is mediapipe FaceMesh: {mediapipe_legacy_problem()}")
    paths = list_images(args.photos)
    if not paths:
        raise SystemExit(f"no photos in {args.photos}")
    photos = [read_image_rgb(p) for p in paths]
    names = [p.name for p in paths]
    specs = {"mediapipe": resolve_detector("mediapipe"), "dlib": resolve_detector("dlib")}
    if args.tasks_model:
        specs["mediapipe-tasks"] = resolve_detector("mediapipe-tasks", args.tasks_model)

    points, speed = {}, {}
    for name, spec in specs.items():
        points[name], speed[name] = _detect_all(spec, photos)
    maps = {name: [render_landmark_map(p, *im.shape[:2]) if p is not None else None
                   for p, im in zip(pts, photos)] for name, pts in points.items()}
    degraded = _degraded(photos, args.photos.parent / "cartoons", names)

    report = {"photos": str(args.photos), "n": len(photos), "backends": {}}
    ref = "mediapipe"
    for name in specs:
        both = [i for i in range(len(photos)) if points[name][i] is not None and points[ref][i] is not None]
        entry = {"key": specs[name].key, "found": sum(p is not None for p in points[name]),
                 "ms_per_photo": round(speed[name], 2), "both_found": len(both)}
        iod = np.array([np.linalg.norm(points[ref][i][33] - points[ref][i][263]) for i in both])
        paths_of = [names[i] for i in both]
        if name != ref:
            if specs[name].topology.num_points == 68:
                pairs_a, pairs_b = zip(*CORRESPONDING)
            else:
                pairs_a = pairs_b = tuple(a for a, _ in CORRESPONDING)
            corner = np.array([np.linalg.norm(points[ref][i][list(pairs_a)] - points[name][i][list(pairs_b)],
                                              axis=1).mean() for i in both]) / iod
            fwd = np.array([_chamfer(maps[name][i][0] > 0.5, maps[ref][i][0] > 0.5) for i in both])
            rev = np.array([_chamfer(maps[ref][i][0] > 0.5, maps[name][i][0] > 0.5) for i in both])
            iou = []
            for i in both:
                a, b = maps[ref][i][1] > 0.5, maps[name][i][1] > 0.5
                iou.append((a & b).sum() / max((a | b).sum(), 1))
            entry.update(
                corner_nme_mean=float(corner.mean()), corner_nme_median=float(np.median(corner)),
                corner_nme_max=float(corner.max()),
                worst=paths_of[int(np.argmax(corner))],
                contour_px_mean=float(fwd.mean()), contour_px_over_iod=float((fwd / iod).mean()),
                contour_px_reverse_mean=float(rev.mean()),
                contour_px_reverse_over_iod=float((rev / iod).mean()),
                region_iou_mean=float(np.mean(iou)), region_iou_median=float(np.median(iou)),
                region_iou_min=float(np.min(iou)))
            loss = {}
            for cond, outs in degraded.items():
                a = _losses([photos[i] for i in both], [outs[i] for i in both], [maps[ref][i] for i in both])
                b = _losses([photos[i] for i in both], [outs[i] for i in both], [maps[name][i] for i in both])
                loss[cond] = {"mean_mediapipe": float(a.mean()), "mean_this": float(b.mean()),
                              "ratio": float(b.mean() / a.mean()),
                              "pearson": float(np.corrcoef(a, b)[0, 1]), "spearman": _spearman(a, b)}
            # the loss must order the degradations the same way under both maps
            order = sorted(loss, key=lambda c: loss[c]["mean_mediapipe"])
            entry["loss"] = loss
            entry["same_order_of_conditions"] = order == sorted(loss, key=lambda c: loss[c]["mean_this"])
        report["backends"][name] = entry

    print(f"{len(photos)} photos from {args.photos}")
    for name, e in report["backends"].items():
        line = f"{name:16s} found {e['found']}/{len(photos)}  {e['ms_per_photo']:.1f} ms/photo"
        if "corner_nme_mean" in e:
            line += (f"  corner NME {e['corner_nme_mean']:.3f} (median {e['corner_nme_median']:.3f}, "
                     f"max {e['corner_nme_max']:.3f} {e['worst']})"
                     f"  contour->mp {e['contour_px_mean']:.2f} px ({e['contour_px_over_iod']:.3f} IOD)"
                     f"  mp->contour {e['contour_px_reverse_mean']:.2f} px"
                     f"  region IoU {e['region_iou_mean']:.2f} (median {e['region_iou_median']:.2f}, "
                     f"min {e['region_iou_min']:.2f})")
        print(line)
        for cond, v in e.get("loss", {}).items():
            print(f"    loss {cond:18s} mediapipe {v['mean_mediapipe']:.4f}  {name} {v['mean_this']:.4f}"
                  f"  ratio {v['ratio']:.2f}  pearson {v['pearson']:.3f}  spearman {v['spearman']:.3f}")
        if "same_order_of_conditions" in e:
            print(f"    same order of conditions: {e['same_order_of_conditions']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
