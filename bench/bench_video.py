"""Video pipeline speed and memory: media/'s video decode + encode with an identity process.

Speed: a generated 640x480 clip (300 frames at 30 fps: moving gradients plus ``--noise``
grain, an AAC track) is decoded only (``VideoReader``) and transcoded (``transcode``, identity,
one x264 preset each); frames/s (wall) and CPU ms per frame (user + sys, all threads; steadier
than wall time on a shared machine) are medians over ``--repeats`` runs, presets interleaved.

Memory: a short and a long clip are transcoded, each in a fresh child process; the child
reports its resident memory after imports (VmRSS) and its peak during the transcode (VmHWM,
reset after the imports through /proc/self/clear_refs; ``ru_maxrss`` would not do: after fork +
exec it still holds the parent's peak). Streaming means the peak is the same whatever the
length.

    .venv/bin/python bench/bench_video.py
    .venv/bin/python bench/bench_video.py --presets medium,veryfast --json bench/results/video.json
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="640x480", help="WxH of the speed clip")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--noise", type=int, default=8, help="grain amplitude (0-255) in the clip")
    p.add_argument("--presets", default="medium", help="comma-separated x264 presets")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory-frames", default="150,1500",
                   help="frame counts of the short and long memory clips (same size)")
    p.add_argument("--json")
    p.add_argument("--child", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_clip(path: Path, w: int, h: int, frames: int, fps: int = 30, noise: int = 8) -> Path:
    """Moving gradients plus grain (so x264 has motion to code) and a 440 Hz AAC track."""
    import av

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    grain = rng.integers(0, noise + 1, (h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "20"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = c.add_stream("aac", rate=44100)
        aus.layout = "mono"
        for i in range(frames):
            img = np.dstack([(x + 3 * i) % 256, (y + 2 * i) % 256, (x + y + i) % 256])
            img = img.astype(np.uint8) + np.roll(grain, i, axis=1)
            c.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(vs.encode(None))
        t = np.arange(int(44100 * frames / fps)) / 44100
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(wave), 1024):
            af = av.AudioFrame.from_ndarray(wave[None, i:i + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts = 44100, i
            c.mux(aus.encode(af))
        c.mux(aus.encode(None))
    return path


def proc_status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def child(src: str, dst: str) -> None:
    import av  # noqa: F401 - loaded before the baseline, as transcode would load it

    from media.transcode import transcode

    before = proc_status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    res = transcode(src, dst, lambda frames: frames, progress=False)
    print(json.dumps({"frames": res.frames, "rss_after_imports_mib": before,
                      "rss_peak_mib": proc_status_mib("VmHWM")}))


def main(argv=None) -> dict:
    args = parse(argv)
    if args.child:
        child(*args.child)
        return {}
    from media.transcode import transcode
    from media.video_reader import VideoReader

    w, h = (int(v) for v in args.size.lower().split("x"))
    presets = [p for p in args.presets.split(",") if p]
    tmp = Path(tempfile.mkdtemp(prefix="bench_video_"))
    src = make_clip(tmp / "speed.mp4", w, h, args.frames, noise=args.noise)

    def timed(fn) -> tuple[float, float]:
        """(frames/s wall, CPU ms per frame) of fn() -> frame count."""
        c0, t0 = os.times(), time.perf_counter()
        n = fn()
        c1, t1 = os.times(), time.perf_counter()
        return n / (t1 - t0), 1000 * (c1.user - c0.user + c1.system - c0.system) / n

    def decode_all() -> int:
        with VideoReader(src) as r:
            return sum(1 for _ in r)

    runs: dict[str, list[tuple[float, float]]] = {"decode_only": []}
    runs.update({f"transcode_{p}": [] for p in presets})
    for _ in range(args.repeats):
        runs["decode_only"].append(timed(decode_all))
        for p in presets:
            runs[f"transcode_{p}"].append(timed(lambda p=p: transcode(
                src, tmp / f"out_{p}.mp4", lambda frames: frames, progress=False,
                preset=p).frames))
    speed = {}
    for name, xs in runs.items():
        speed[f"{name}_fps"] = statistics.median(x[0] for x in xs)
        speed[f"{name}_cpu_ms_per_frame"] = statistics.median(x[1] for x in xs)
    speed.update({f"output_{p}_kib": (tmp / f"out_{p}.mp4").stat().st_size / 1024
                  for p in presets})

    memory = {}
    for n in (int(v) for v in args.memory_frames.split(",")):
        clip = make_clip(tmp / f"mem_{n}.mp4", w, h, n, noise=args.noise)
        out = subprocess.run([sys.executable, __file__, "--child", str(clip), str(tmp / "m.mp4")],
                             check=True, capture_output=True, text=True, env=os.environ)
        memory[n] = json.loads(out.stdout.strip().splitlines()[-1])

    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_1min": os.getloadavg()[0]},
              "clip": {"size": f"{w}x{h}", "frames": args.frames, "noise": args.noise},
              "speed": speed,
              "memory": memory}
    print(f"{w}x{h}, {args.frames} frames, median of {args.repeats}:")
    for k, v in speed.items():
        print(f"  {k:36s} {v:8.1f}")
    print("peak RSS of a transcode in a fresh process (MiB):")
    for n, m in memory.items():
        print(f"  {n:5d} frames: after imports {m['rss_after_imports_mib']:6.1f}, peak "
              f"{m['rss_peak_mib']:6.1f}, growth {m['rss_peak_mib'] - m['rss_after_imports_mib']:6.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return result


if __name__ == "__main__":
    main()
