"""What the service bounds that clients choose: metrics labels, control characters in the log,
clients that leave mid-upload, the temporary folders of killed services. A real uvicorn on
127.0.0.1 where the transport matters."""
from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ROOT
from tests.serving import ServerThread, png, wait_until
from tests.serving.test_server import BOUNDARY, form_head, form_tail, get, request_head


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        return read_to_close(sock, timeout)


def read_to_close(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            return out
        out += chunk
    return out


def parse(response: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def error_of(response: bytes, status: int, code: str, *words: str) -> dict[str, str]:
    got, headers, body = parse(response)
    assert got == status and headers["content-type"] == "application/json", response[:300]
    assert body["error"]["code"] == code and "\n" not in body["error"]["message"], body
    for w in words:
        assert w in body["error"]["message"], (w, body)
    return headers


def metric(port: int, name: str) -> float:
    text = get(port, "/metrics")[1].decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


# ------------------------------------------------------------------------------- metrics
def test_metrics_labels_come_from_a_fixed_set(client):
    """An invented method is a label value the client chooses: each would be a series kept for
    the life of the process."""
    methods = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    sizes = []
    client.get("/metrics")  # its own series exist from here on
    for batch in range(2):
        for i in range(30):
            client.request(f"M{batch}{i:03d}" + "X" * 200, "/healthz")
            client.request("PROPFIND", f"/no/such/{i}")
        sizes.append(len(client.get("/metrics").text))
    text = client.get("/metrics").text
    series = [line for line in text.splitlines() if line.startswith("toonface_http_requests_total{")]
    labels = [dict(re.findall(r'(\w+)="([^"]*)"', line)) for line in series]
    routes = {getattr(r, "path", None) for r in client.app.routes} | {"unmatched"}
    assert {lab["method"] for lab in labels} <= methods, series
    assert {lab["route"] for lab in labels} <= routes
    assert all(re.fullmatch(r"\d{3}|[1-5]xx|other", lab["status"]) for lab in labels)
    assert len(series) <= 4, series
    assert 'method="other",route="/healthz",status="405"} 60.0' in text
    assert sizes[1] - sizes[0] < 100  # the second batch changed counts, not the series


# ----------------------------------------------------------------------------------- log
def test_control_characters_never_reach_the_log_raw(make_app, caplog):
    app, _ = make_app()
    paths = ["/x%0a2024-01-01T00:00:00.000Z%20GET%20/admin%20200", "/a%0d%1b[31mred",
             "/b%e2%80%a8c%e2%80%aed", "/c%5cx0a"]
    with TestClient(app) as c, caplog.at_level(logging.INFO, "toonface.serve"):
        for p in paths:
            assert c.get(p).status_code == 404
        logging.getLogger("toonface.serve").warning("a message with %s", "a\nforged line")
    lines = [r.getMessage() for r in caplog.records]
    assert not [m for m in lines if any(ch in m for ch in "\n\r\x1b\u2028\u202e")], lines
    request_lines = [m for m in lines if " 404 " in m]
    assert len(request_lines) == 4
    assert r" GET /x\x0a2024-01-01T00:00:00.000Z\x20GET\x20/admin\x20200 404 " in request_lines[0]
    assert r"/b\u2028c\u202ed " in request_lines[2]
    assert r" GET /c\\x0a 404 " in request_lines[3]  # a backslash the client sent is doubled
    assert r"a message with a\x0aforged line" in lines


# -------------------------------------------------------------------- clients that leave
def test_a_client_gone_mid_upload_is_a_quiet_499(make_app, caplog):
    app, svc = make_app()
    with caplog.at_level(logging.INFO, "toonface.serve"), ServerThread(app) as srv:
        for route, field in (("/api/cartoonize", "image"), ("/api/videos", "video")):
            sock = socket.create_connection(("127.0.0.1", srv.port))
            head = request_head(srv.port, "Content-Length: 900000\r\n").replace(
                b"/api/cartoonize", route.encode())
            data = png() if field == "image" else b"\x00\x00\x00\x18ftypisom" + bytes(1000)
            sock.sendall(head + form_head(field) + data[:300])
            wait_until(lambda: any((svc.tmp / "uploads").iterdir()), 10, "the upload started")
            sock.close()
            wait_until(lambda: not any((svc.tmp / "uploads").iterdir()), 10, "the upload removed")
        wait_until(lambda: sum(" 499 " in r.getMessage() for r in caplog.records) == 2, 10, "2 lines")
        text = get(srv.port, "/metrics")[1].decode()
    assert 'status="499"} 1.0' in text and 'status="500"' not in text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


# ------------------------------------------------------------------- temporary folders
KILLED_SERVICE = """
import os, sys
from fastapi.testclient import TestClient
from serving.app import create_app
from serving.config import ServeConfig
app = create_app(ServeConfig(styles_dir=sys.argv[1], tmp_dir=sys.argv[2], device="cpu"))
client = TestClient(app).__enter__()
folder = app.state.service.tmp
(folder / "jobs" / "abc").mkdir(parents=True)
(folder / "jobs" / "abc" / ".cartoon.1a2b3c4d.partial.mp4").write_bytes(bytes(1000))
print(folder, flush=True)
if sys.argv[3] == "kill":
    os.kill(os.getpid(), 9)
sys.stdin.read()  # a live service: until the test lets it go
client.__exit__(None, None, None)
"""


def test_the_folders_of_a_killed_service_are_removed_at_the_next_start(make_app, styles_dir, tmp_path):
    from pathlib import Path

    parent = tmp_path / "svc"
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-c", KILLED_SERVICE, str(styles_dir), str(parent)]
    killed = subprocess.run([*run, "kill"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    dead = Path(killed.stdout.strip())
    assert killed.returncode == -9 and (dead / "jobs" / "abc").is_dir(), killed.stderr
    live = subprocess.Popen([*run, "live"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        alive = Path(live.stdout.readline().strip())
        unknown = parent / "toonface-serve-notours"  # no lock file: left alone
        unknown.mkdir()
        app, svc = make_app()
        with TestClient(app):
            assert not dead.exists()
            assert alive.is_dir() and unknown.is_dir() and svc.tmp.is_dir()
    finally:
        live.stdin.close()
        live.wait(60)
    assert sorted(p.name for p in parent.iterdir()) == ["toonface-serve-notours"]
