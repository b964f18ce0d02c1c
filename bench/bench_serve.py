"""Load test of the web service (serve.py) on 127.0.0.1: throughput, latency, 503s, memory.

Starts ``serve.py`` as a child process on a free 127.0.0.1 port (never another host), then

1. warm-up: ``--warmup`` requests from ``--clients`` clients (loads the style and brings the
   process to its working set: the first concurrent requests raise the resident size once, by
   about 95 MB at 512x512 and 8 clients, and it stays flat after that);
2. steady load: ``--requests`` cartoonizations of ``--size`` PNGs from ``--clients`` concurrent
   clients (keep-alive connections; the service's capacity, workers + ``--queue``, is above the
   client count, so none should be refused): throughput, p50/p95/p99 latency;
3. overload: ``--burst`` requests from ``--burst-clients`` clients at once (more than the
   capacity): the 503 count; every other answer must be a 200;
4. the server's resident memory (VmRSS) at start, after the warm-up and at the end (growth
   from the warm-up to the end must stay under 10%).

Every request is answered or refused: a connection error or any status other than 200 and 503
is an error; the script exits 1 when there is one or when memory grew too much. It stops by
itself. The style is a seeded random generator of the white-box architecture (32 channels,
4 blocks: the real inference cost) unless ``--styles-dir`` / ``--style`` name a trained one.

    .venv/bin/python bench/bench_serve.py                     # 200 x 512x512, 8 clients
    .venv/bin/python bench/bench_serve.py --requests 50 --json bench/results/serve.json
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HOST = "127.0.0.1"  # the only host this script talks to
BOUNDARY = "benchboundary7c1f"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--size", type=int, default=512, help="image side (square PNGs)")
    p.add_argument("--warmup", type=int, default=48,
                   help="warm-up requests (at --clients); 16 left the allocator short of its "
                        "steady state (RSS then grew 15%% more, then stayed)")
    p.add_argument("--burst", type=int, default=48, help="requests of the overload phase")
    p.add_argument("--burst-clients", type=int, default=24)
    p.add_argument("--queue", type=int, default=8, help="serve.py --queue")
    p.add_argument("--workers", type=int, default=1, help="serve.py --workers")
    p.add_argument("--threads", type=int, default=0, help="serve.py --threads (0: torch's default)")
    p.add_argument("--styles-dir", default=None, help="a styles folder (default: a random style)")
    p.add_argument("--style", default=None)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p.parse_args(argv)


def random_style(folder: Path) -> str:
    import torch

    from models import Generator
    from models.checkpoint import save_generator, weights_hash

    torch.manual_seed(0)
    G = Generator().eval()
    with torch.no_grad():
        G.out.weight.mul_(0.5 / G(torch.rand(1, 3, 64, 64) * 2 - 1).std())
    save_generator(folder / "bench.pt", G, style="bench", pretrained_hash=weights_hash(G.state_dict()),
                   image_size=256, face_size=90.0, step=0, kind="train", run="bench")
    return "bench"


def picture(side: int, seed: int) -> bytes:
    """A photo-like PNG: gradients, flat discs, mild noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    img = np.stack([xx / side, yy / side, 0.5 + 0.5 * np.sin(xx / 17 + yy / 23)], -1) * 200
    for _ in range(8):
        cy, cx, r = rng.integers(0, side, 2).tolist() + [int(rng.integers(side // 16, side // 4))]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def body_of(png: bytes, style: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"style\"\r\n\r\n{style}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"b.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()


def rss_mb(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Client:
    """One keep-alive connection; ``post`` returns (status, seconds) or raises."""

    def __init__(self, port: int):
        self.port, self.conn = port, None
        self.reconnects = 0  # keep-alive connections the server closed between requests

    def post(self, body: bytes) -> tuple[int, float]:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=600)
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", "/api/cartoonize", body=body, headers={
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Accept": "image/png"})
                r = self.conn.getresponse()
                r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, time.perf_counter() - t0
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # a keep-alive connection the server closed between requests: reconnect once
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                self.reconnects += 1
        raise AssertionError("unreachable")


def run_phase(port: int, bodies: list[bytes], n: int, clients: int) -> dict:
    local = threading.local()
    statuses, latencies, errors, clients_made = [], [], [], []
    lock = threading.Lock()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = Client(port)
            with lock:
                clients_made.append(local.client)
        try:
            status, seconds = local.client.post(bodies[i % len(bodies)])
        except Exception as exc:  # noqa: BLE001 - counted and reported
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            statuses.append(status)
            if status == 200:
                latencies.append(seconds)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    ok = statuses.count(200)
    return {"requests": n, "clients": clients, "wall_s": wall, "ok": ok,
            "rejected_503": statuses.count(503),
            "other_status": sorted(s for s in statuses if s not in (200, 503)),
            "connection_errors": errors, "answered": len(statuses),
            "reconnects": sum(c.reconnects for c in clients_made),
            "throughput_per_s": ok / wall if wall else float("nan"),
            "latency_s": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
                          "p99": percentile(latencies, 0.99),
                          "mean": statistics.fmean(latencies) if latencies else float("nan")}}


def start_server(args, styles_dir: str, tmp: Path) -> tuple[subprocess.Popen, int, list[str]]:
    cmd = [sys.executable, str(ROOT / "serve.py"), "--host", HOST, "--port", "0",
           "--styles-dir", styles_dir, "--queue", str(args.queue), "--workers", str(args.workers),
           "--threads", str(args.threads), "--tmp-dir", str(tmp), "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    port = None
    while port is None:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit("serve.py exited before listening:\n" + "".join(lines))
        lines.append(line)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        port = int(m.group(1)) if m else None
    # drain the request log so the pipe never fills
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc, port, lines
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("serve.py did not answer /healthz")
        time.sleep(0.2)


def main(argv=None) -> int:
    args = parse(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        styles_dir, style = args.styles_dir, args.style
        if styles_dir is None:
            (tmp / "styles").mkdir()
            styles_dir, style = str(tmp / "styles"), random_style(tmp / "styles")
        style = style or ""
        bodies = [body_of(picture(args.size, seed), style) for seed in range(8)]
        (tmp / "svc").mkdir()
        proc, port, log_lines = start_server(args, styles_dir, tmp / "svc")
        try:
            rss_start = rss_mb(proc.pid)
            warm = run_phase(port, bodies, args.warmup, args.clients)
            rss_before = rss_mb(proc.pid)
            steady = run_phase(port, bodies, args.requests, args.clients)
            rss_steady = rss_mb(proc.pid)
            burst = run_phase(port, bodies, args.burst, args.burst_clients)
            time.sleep(0.5)
            rss_after = rss_mb(proc.pid)
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            conn.request("GET", "/metrics")
            metrics = conn.getresponse().read().decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        left = list((tmp / "svc").iterdir())

    served = sum(float(v) for v in re.findall(
        r'toonface_http_requests_total\{method="POST",route="/api/cartoonize",status="(?:200|503)"\} (\S+)',
        metrics))
    growth = (rss_after - rss_before) / rss_before
    answered = warm["answered"] + steady["answered"] + burst["answered"]
    errors = (warm["connection_errors"] + steady["connection_errors"] + burst["connection_errors"]
              + [f"status {s}" for s in warm["other_status"] + steady["other_status"] + burst["other_status"]])
    if served != answered:  # the server answered requests whose answer no client read
        errors.append(f"the server counted {served:.0f} answers, the clients read {answered}")
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "size": args.size,
              "queue": args.queue, "workers": args.workers, "warmup": warm, "steady": steady,
              "overload": burst, "rss_mb": {"start": rss_start, "after_warmup": rss_before, "after_steady": rss_steady,
                                            "end": rss_after, "growth": growth},
              "server_counted": served, "errors": errors, "temporary_files_left": [p.name for p in left]}

    lat = steady["latency_s"]
    print(f"steady: {steady['requests']} x {args.size}x{args.size} PNG, {steady['clients']} clients: "
          f"{steady['throughput_per_s']:.2f} images/s; latency p50 {lat['p50']:.2f} s, "
          f"p95 {lat['p95']:.2f} s, p99 {lat['p99']:.2f} s; 503s {steady['rejected_503']}")
    print(f"overload: {burst['requests']} requests from {burst['clients']} clients at once "
          f"(capacity {args.workers} + {args.queue}): {burst['ok']} answered 200, "
          f"{burst['rejected_503']} refused 503, {len(burst['other_status'])} other statuses, "
          f"{len(burst['connection_errors'])} connection errors")
    print(f"server RSS: {rss_start:.0f} MB at start, {rss_before:.0f} MB after warm-up, "
          f"{rss_steady:.0f} MB after the steady phase, {rss_after:.0f} MB at the end "
          f"({growth:+.1%}); the server counted {served:.0f} of "
          f"{answered} answers "
          f"({warm['reconnects'] + steady['reconnects'] + burst['reconnects']} reconnects); "
          f"temporary files left: {len(left)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    bad = bool(errors) or growth > 0.10 or left or steady["rejected_503"] > 0
    if bad:
        print("FAILED: " + "; ".join(errors[:5] + (["memory grew over 10%"] if growth > 0.10 else [])
                                     + (["temporary files left"] if left else [])
                                     + (["503 under the steady load"] if steady["rejected_503"] else [])))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
