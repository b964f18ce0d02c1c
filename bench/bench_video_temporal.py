"""Flicker of cartoonized video: per-frame vs ``--temporal`` stabilised, and portrait jitter.

Two synthetic clips from the shared fixtures (256x256, 60 frames, Gaussian sensor noise of
std ``--noise`` levels drawn afresh per frame, as a camera adds; no codec in the loop):

(a) ``pan``: a window panning across and zooming into ``scenes/wb_london1.jpg`` (its side
    shrinks from 60% to 45% of the photo's width while it moves over 30% of it);
(b) ``face``: ``ffhq-mini/photos/00049.jpg`` cut out by a soft ellipse, moving along an arc and
    growing from 45% to 65% of the frame over a static crop of ``scenes/wb_mountain4.jpg``
    (occlusion and disocclusion at the face's border).

For each clip the generator's per-frame output (what ``cartoonize.py`` writes without
``--temporal``) is stabilised at each ``--strengths`` (``TemporalStabilizer`` on the same
per-frame outputs: exactly what ``Cartoonizer.video(temporal=s)`` does) and measured with
``evaluation.warping`` (warping error: mean over frame pairs; the input's own warping error
is the floor) and ``evaluation.style`` (flatness, edge density: means over frames; the
stabilised ones must stay within 5% of the per-frame ones: "at equal style"). Clip (b) also
runs in portrait mode (tracked faces).

Portrait jitter: a still shot (frame 0 of clip (b), new noise per frame, ``--still-frames``
frames) through plain mode, per-frame portrait mode (the detector re-run on each frame as for
a photo: the behaviour before face tracking) and tracked portrait mode
(``PortraitProcessor.video()``); the mean |O_t - O_{t-1}| per frame pair, in levels.

    .venv/bin/python bench/bench_video_temporal.py --checkpoint checkpoints/v1
    .venv/bin/python bench/bench_video_temporal.py --checkpoint RUN --json bench/results/video_temporal.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
FIXTURES = ROOT.parent / "shared" / "fixtures"
SIZE = 256


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="generator file or run folder")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--noise", type=float, default=2.0, help="sensor noise std (levels)")
    p.add_argument("--strengths", default="0.3,0.5,0.7")
    p.add_argument("--still-frames", type=int, default=30)
    p.add_argument("--landmark-detector", default=None, help="portrait mode's face detector")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json")
    return p.parse_args(argv)


def read(*parts: str) -> np.ndarray:
    from evaluation.rgb import read_rgb

    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        sys.exit(f"error: {path} not found (the shared fixtures belong beside the checkout)")
    return read_rgb(path)


def pan_clip(n: int, noise: float, seed: int = 0) -> list[np.ndarray]:
    import cv2

    img = read("scenes", "wb_london1.jpg")
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n):
        u = t / max(n - 1, 1)
        side = (0.60 - 0.15 * u) * w
        cx, cy = w * (0.35 + 0.30 * u), h * 0.5
        k = SIZE / side
        m = np.float32([[k, 0, -(cx - side / 2) * k], [0, k, -(cy - side / 2) * k]])
        f = cv2.warpAffine(img, m, (SIZE, SIZE), flags=cv2.INTER_AREA)
        frames.append(np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8))
    return frames


def face_clip(n: int, noise: float, seed: int = 1) -> list[np.ndarray]:
    import cv2

    face = read("ffhq-mini", "photos", "00049.jpg").astype(np.float32)
    fh, fw = face.shape[:2]
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    ellipse = ((xx - fw / 2) / (0.40 * fw)) ** 2 + ((yy - fh * 0.52) / (0.47 * fh)) ** 2
    alpha = np.clip((1.0 - ellipse) / 0.15, 0.0, 1.0)[..., None]   # soft 15% border
    bg_img = read("scenes", "wb_mountain4.jpg")
    bh, bw = bg_img.shape[:2]
    side = min(bh, bw)
    bg = cv2.resize(bg_img[(bh - side) // 2:(bh + side) // 2, (bw - side) // 2:(bw + side) // 2],
                    (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n):
        u = t / max(n - 1, 1)
        s = (0.45 + 0.20 * u) * SIZE / fw
        cx = SIZE * (0.30 + 0.40 * u)
        cy = SIZE * (0.55 - 0.10 * math.sin(math.pi * u))
        m = np.float32([[s, 0, cx - s * fw / 2], [0, s, cy - s * fh / 2]])
        fg = cv2.warpAffine(face, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR)[..., None]
        f = bg * (1 - a) + fg * a
        frames.append(np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8))
    return frames


def measure(inputs, outputs) -> dict:
    from evaluation.style import edge_density, flatness
    from evaluation.warping import warping_error

    s = warping_error(inputs, outputs)["summary"]
    return {"warping_error": s["warping_error_mean"], "warping_error_input": s["warping_error_input_mean"],
            "kept_fraction": s["kept_fraction_mean"],
            "flatness": float(np.mean(flatness(np.stack(outputs)))),
            "edge_density": float(np.mean([edge_density(o) for o in outputs]))}


def frame_change(outputs) -> float:
    return float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(outputs, outputs[1:])]))


def still_shot(args, plain, portrait) -> dict:
    """Frame-to-frame change on a still shot (frame 0 of the face clip, fresh noise per frame):
    plain mode, portrait mode with per-frame detection, tracked portrait mode."""
    still_src = face_clip(1, 0.0)[0].astype(np.float32)
    rng = np.random.default_rng(7)
    still = [np.clip(still_src + rng.normal(0, args.noise, still_src.shape), 0, 255).astype(np.uint8)
             for _ in range(args.still_frames)]
    proc = portrait.portrait
    scales_before, scales_after, before, after = [], [], [], []
    for f in still:
        before.append(portrait(f))
        if proc.last_faces:
            scales_before.append(proc.face_size / proc.last_faces[0].interocular)
    video = portrait.video()
    for f in still:
        after.append(video([f])[0])
        if video.portrait.last_faces:
            scales_after.append(video.portrait._scales[video.portrait.last_faces[0].track])
    st = {
        "frames": args.still_frames,
        "plain": frame_change(plain.video()(still)),
        "portrait_per_frame": frame_change(before),
        "portrait_tracked": frame_change(after),
        "distinct_scales_per_frame": len({round(s, 6) for s in scales_before}),
        "distinct_scales_tracked": len({round(s, 6) for s in scales_after}),
        "faces_found": [len(scales_before), len(scales_after)],
    }
    print(f"\nstill shot, {st['frames']} frames, mean |O_t - O_t-1| (levels): plain "
          f"{st['plain']:.3f}; portrait per-frame detection {st['portrait_per_frame']:.3f} "
          f"({st['portrait_per_frame'] / st['plain']:.2f}x plain, {st['distinct_scales_per_frame']} "
          f"distinct scales); portrait tracked {st['portrait_tracked']:.3f} "
          f"({st['portrait_tracked'] / st['plain']:.2f}x plain, {st['distinct_scales_tracked']} "
          f"distinct scale(s)); face found in {st['faces_found'][0]} / {st['faces_found'][1]} frames")
    return st


def main(argv=None) -> dict:
    import torch

    from inference.cartoonizer import Cartoonizer
    from inference.temporal import TemporalStabilizer
    from utils.run_dir import resolve_generator

    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    strengths = [float(s) for s in args.strengths.split(",") if s]
    gen_path = resolve_generator(args.checkpoint)
    plain = Cartoonizer.from_checkpoint(gen_path, "cpu", tile=0)
    portrait = Cartoonizer.from_checkpoint(gen_path, "cpu", tile=0, portrait=True,
                                           landmark_detector=args.landmark_detector)
    print(f"generator: {gen_path} (image_size {plain.image_size}, face_size "
          f"{plain.face_size:.1f}); {args.frames} frames {SIZE}x{SIZE}, noise std {args.noise}")
    clips = {"pan": pan_clip(args.frames, args.noise), "face": face_clip(args.frames, args.noise)}
    runs = [("pan", "plain", plain), ("face", "plain", plain), ("face", "portrait", portrait)]
    result = {"generator": str(gen_path), "frames": args.frames, "size": SIZE,
              "noise": args.noise, "rows": [], "still": {}}
    for clip_name, mode, toon in runs:
        inputs = clips[clip_name]
        t0 = time.perf_counter()
        per_frame = toon.video()(inputs)
        t_style = (time.perf_counter() - t0) / len(inputs)
        base = measure(inputs, per_frame)
        rows = [dict(clip=clip_name, mode=mode, temporal=0.0, s_per_frame=t_style, **base)]
        for s in strengths:
            stab = TemporalStabilizer(s)
            t0 = time.perf_counter()
            outs = [stab(i, o) for i, o in zip(inputs, per_frame)]
            t_stab = (time.perf_counter() - t0) / len(inputs)
            rows.append(dict(clip=clip_name, mode=mode, temporal=s, s_per_frame=t_stab,
                             mean_weight=float(np.mean(stab.mean_weights)), **measure(inputs, outs)))
        for r in rows:
            r["warping_error_vs_per_frame"] = r["warping_error"] / base["warping_error"]
            r["flatness_change"] = r["flatness"] / base["flatness"] - 1
            r["edge_density_change"] = r["edge_density"] / base["edge_density"] - 1
        result["rows"] += rows

    print("\n| clip | mode | --temporal | warping error (input floor) | vs per-frame | flatness | "
          "edge density | stabiliser s/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        t = "per-frame" if not r["temporal"] else f"{r['temporal']:g}"
        cost = "" if not r["temporal"] else f"{r['s_per_frame']:.3f}"
        print(f"| {r['clip']} | {r['mode']} | {t} | {r['warping_error']:.4f} "
              f"({r['warping_error_input']:.4f}) | {r['warping_error_vs_per_frame']:.2f}x | "
              f"{r['flatness']:.4f} ({100 * r['flatness_change']:+.1f}%) | "
              f"{r['edge_density']:.4f} ({100 * r['edge_density_change']:+.1f}%) | {cost} |")

    if args.still_frames >= 2 and args.noise > 0:   # without noise every frame is the same
        result["still"] = still_shot(args, plain, portrait)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
