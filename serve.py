"""Serve the styles of a folder over HTTP: a web page and a JSON/multipart API.

    .venv/bin/python serve.py --styles-dir checkpoints            # http://127.0.0.1:8080
"""
from __future__ import annotations

import logging
import socket
import sys

import click

from inference.onnx_engine import ENGINES
from inference.styles import DEFAULT_STYLES_DIR
from serving.config import DEFAULT_MAX_BYTES, DEFAULT_MAX_SIDE, MAX_SIDE_LIMIT, PRECISIONS, ServeConfig
from utils.device import DEVICE_HELP
from utils.errors import ToonFaceError

EPILOG = ("Endpoints: GET / (web page), GET /docs (OpenAPI), GET /api/styles, POST /api/cartoonize, "
          "POST /api/videos, GET|DELETE /api/jobs/{id}, GET /api/jobs/{id}/result, GET /healthz, "
          "GET /metrics. Errors are JSON {\"error\": {\"code\", \"message\"}}. One log line per "
          "request on stderr.")


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6); ToonFaceError when it cannot bind."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ToonFaceError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ToonFaceError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def parse_hosts(value: str | None, host: str) -> tuple[str, ...] | None:
    """--allowed-hosts: its names, None for any (``*``); unset: the default of ``--host``."""
    from serving.server import default_allowed_hosts

    if value is None:
        return default_allowed_hosts(host)
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise ToonFaceError(f"--allowed-hosts {value!r}: give at least one name, or * for any")
    return None if "*" in names else names


def run_server(config: ServeConfig, host: str, port: int, threads: int, reuse_host_memory: bool,
               landmark_detector: str | None, landmark_model: str | None = None) -> None:
    import uvicorn

    from serving.app import create_app
    from serving.engine import make_engine
    from serving.server import check_connection_limit, uvicorn_config

    if threads:
        import torch

        torch.set_num_threads(threads)
    config.validate()
    check_connection_limit(config.max_connections)
    engine = make_engine(config, landmark_detector, landmark_model, threads)
    if reuse_host_memory and engine.device.type == "cpu":
        from utils.memory import retain_freed_memory

        retain_freed_memory()
    app = create_app(config, engine)
    sock = listen(host, port)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    logging.getLogger("toonface.serve").info("listening on http://%s:%d (engine %s)", shown,
                                             bound[1], engine.name)
    server = uvicorn.Server(uvicorn_config(app, timeout_graceful_shutdown=10))
    server.run(sockets=[sock])


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"],
                                                "max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; put a TLS proxy in front).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="TCP port (0: any free port, printed at start).")
@click.option("--styles-dir", "--styles_dir", "styles_dir", default=DEFAULT_STYLES_DIR,
              show_default=True, type=click.Path(path_type=str),
              help="The styles served: run folders and generator .pt files (see --list-styles "
                   "of cartoonize.py). Read at start.")
@click.option("--default-style", default=None,
              help="Style (or blend) used when a request names none  [default: the first by name]")
@click.option("--max-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_BYTES, show_default=True,
              help="Largest image upload in bytes (413 past it, while it streams).")
@click.option("--max-side", type=click.IntRange(1, MAX_SIDE_LIMIT), default=DEFAULT_MAX_SIDE,
              show_default=True, help="Largest width and height of an image or video frame (413).")
@click.option("--max-video-bytes", type=click.IntRange(min=1), default=ServeConfig.max_video_bytes,
              show_default=True, help="Largest video upload in bytes.")
@click.option("--max-video-frames", type=click.IntRange(min=1), default=ServeConfig.max_video_frames,
              show_default=True, help="Longest video or animated PNG in frames (the job fails past "
                                      "it; an animation is refused before decoding, 413).")
@click.option("--max-animation-pixels", type=click.IntRange(min=1),
              default=ServeConfig.max_animation_pixels, show_default=True,
              help="Largest animated PNG as frames x canvas pixels, counted before decoding (413).")
@click.option("--queue", type=click.IntRange(min=0), default=ServeConfig.queue, show_default=True,
              help="Image requests that may wait for a worker; past it: 503 with Retry-After.")
@click.option("--workers", type=click.IntRange(min=1), default=ServeConfig.workers, show_default=True,
              help="Inference threads (one per device; more only helps on a GPU).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=ServeConfig.timeout,
              show_default=True, help="Seconds for an image request's queue wait, decoding and "
                                      "inference (504; the decoding and inference stop there).")
@click.option("--upload-timeout", type=click.FloatRange(min=0, min_open=True),
              default=ServeConfig.upload_timeout, show_default=True,
              help="Seconds for a request body to arrive in full (408).")
@click.option("--max-loaded-styles", type=click.IntRange(min=1), default=ServeConfig.max_loaded_styles,
              show_default=True, help="Generators kept in memory (least recently used dropped).")
@click.option("--max-jobs", type=click.IntRange(min=1), default=ServeConfig.max_jobs, show_default=True,
              help="Video jobs queued or running at once (503 past it); one runs at a time.")
@click.option("--job-ttl", type=click.FloatRange(min=0, min_open=True), default=ServeConfig.job_ttl,
              show_default=True, help="Seconds a finished video job and its files are kept.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP + ".")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="Generator arithmetic (bf16 autocast: CUDA or CPUs with bf16 units; fp16: CUDA).")
@click.option("--engine", type=click.Choice(ENGINES), default="torch", show_default=True,
              help="What runs the generator: PyTorch, or onnxruntime on each style exported to ONNX "
                   "once (cached in --cache-dir; fp32 only; for machines without PyTorch's fast "
                   "CPU paths). Same images within one uint8 level.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Where --engine onnxruntime keeps the exported styles, named by a hash of the "
                   "weights  [default: ~/.cache/toonface/onnx]")
@click.option("--cache-max-files", type=click.IntRange(min=1), default=ServeConfig.cache_max_files,
              show_default=True, help="Files kept in --cache-dir (every blend is one; least "
                                      "recently used removed).")
@click.option("--cache-max-bytes", type=click.IntRange(min=1), default=ServeConfig.cache_max_bytes,
              show_default=True, help="Bytes kept in --cache-dir (least recently used removed).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="CPU threads of torch and onnxruntime (0: torch's default, one per core).")
@click.option("--landmark-detector", default=None,
              help="Face detector of portrait requests: mediapipe, mediapipe-tasks or dlib  "
                   "[default: mediapipe where installed, else dlib]")
@click.option("--landmark-model", type=click.Path(dir_okay=False), default=None,
              help="FaceLandmarker .task file for --landmark-detector mediapipe-tasks.")
@click.option("--tmp-dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Where the service's temporary folder is made (removed at exit; those of a "
                   "killed service are removed at the next start)  [default: the system's]")
@click.option("--header-timeout", type=click.FloatRange(min=0, min_open=True, max=86400),
              default=ServeConfig.header_timeout, show_default=True,
              help="Seconds for a request's headers to arrive (408, then the connection closes).")
@click.option("--max-connections", type=click.IntRange(min=1), default=ServeConfig.max_connections,
              show_default=True, help="Open connections at once; past it a new one gets 503 and "
                                      "is closed.")
@click.option("--drain-bytes", type=click.IntRange(min=0), default=ServeConfig.drain_bytes,
              show_default=True, help="Of a refused upload, bytes read and dropped so that clients "
                                      "that send before they read get the error (past it: closed).")
@click.option("--allowed-hosts", default=None, metavar="NAMES",
              help="Comma-separated Host header names answered (400 otherwise; * for any)  "
                   "[default: the loopback names when --host is loopback, else any]")
@click.option("--log-client", is_flag=True, help="Put the client's address in the request log.")
@click.option("--reuse-host-memory/--no-reuse-host-memory", default=True, show_default=True,
              help="CPU: malloc keeps freed memory for reuse (glibc); large images run faster.")
def main(host, port, styles_dir, default_style, max_bytes, max_side, max_video_bytes,
         max_video_frames, max_animation_pixels, queue, workers, timeout, upload_timeout,
         max_loaded_styles, max_jobs, job_ttl, device, precision, engine, cache_dir,
         cache_max_files, cache_max_bytes, threads,
         landmark_detector, landmark_model, tmp_dir, header_timeout, max_connections, drain_bytes,
         allowed_hosts, log_client, reuse_host_memory):
    """Serve cartoonization over HTTP: a web page at / and an API under /api."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        config = ServeConfig(
            styles_dir=styles_dir, default_style=default_style, max_bytes=max_bytes,
            max_side=max_side, max_video_bytes=max_video_bytes, max_video_frames=max_video_frames,
            max_animation_pixels=max_animation_pixels, queue=queue, workers=workers,
            timeout=timeout, upload_timeout=upload_timeout,
            max_loaded_styles=max_loaded_styles, max_jobs=max_jobs, job_ttl=job_ttl, device=device,
            precision=precision, engine=engine, cache_dir=cache_dir,
            cache_max_files=cache_max_files, cache_max_bytes=cache_max_bytes, tmp_dir=tmp_dir,
            header_timeout=header_timeout, max_connections=max_connections,
            drain_bytes=drain_bytes, allowed_hosts=parse_hosts(allowed_hosts, host),
            log_client=log_client)
        run_server(config, host, port, threads, reuse_host_memory, landmark_detector, landmark_model)
    except ToonFaceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)

if __name__ == "__main__":
    main()
