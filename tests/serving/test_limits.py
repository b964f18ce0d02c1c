"""What the service bounds that clients choose: connections that never finish their headers, too
many connections, requests h11 refuses, refused bodies drained for clients that send before they
read, the Host header, metrics labels, control characters in the log, clients that leave
mid-upload, the temporary folders of killed services, and the service's option names in its
messages. A real uvicorn on 127.0.0.1 where the transport matters (docs/service-limits.md)."""
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


# -------------------------------------------------------------------------- connections
def test_connections_that_never_finish_their_headers_are_closed(make_app):
    app, _ = make_app(header_timeout=0.5)
    with ServerThread(app) as srv:
        guard = app.state.connection_guard
        partial = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(20)]
        for sock in partial[:10]:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and no more
        # a kept-alive connection whose next request stops mid-headers
        kept = socket.create_connection(("127.0.0.1", srv.port))
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        kept.settimeout(10)
        assert b"200 OK" in kept.recv(65536)
        kept.sendall(b"GET /healthz HTTP/1.1\r\n")
        t0 = time.monotonic()
        for sock in [*partial, kept]:
            answer = read_to_close(sock, timeout=10)  # the server closes it
            if answer and sock is not kept:  # kept: its first answer was read above
                error_of(answer, 408, "request_timeout", "--header-timeout")
            sock.close()
        assert 0.4 < time.monotonic() - t0 < 8
        wait_until(lambda: guard.open == 0, 10, "every connection closed")
        assert guard.refusals["header_timeout"] == 21
        assert get(srv.port, "/healthz")[0] == 200
        assert metric(srv.port, 'toonface_connections_refused_total{reason="header_timeout"}') == 21


def test_past_max_connections_a_new_one_gets_503_and_the_server_recovers(make_app):
    app, _ = make_app(max_connections=4)
    with ServerThread(app) as srv:
        guard = app.state.connection_guard
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(4)]
        wait_until(lambda: guard.open == 4, 10, "four connections")
        answer = exchange(srv.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        headers = error_of(answer, 503, "busy", "--max-connections")
        assert headers["retry-after"] == "1"
        for sock in idle:
            sock.close()
        wait_until(lambda: guard.open == 0, 10, "the idle connections closed")
        assert get(srv.port, "/healthz")[0] == 200
        assert guard.refusals["max_connections"] == 1


@pytest.mark.parametrize("header,status,code,words", [
    (b"Content-Length: abc", 400, "bad_request", ("Content-Length",)),
    (b"Content-Length: 5\r\nContent-Length: 6", 400, "bad_request", ("Content-Length",)),
    (b"X-Big: " + b"a" * 100_000, 431, "headers_too_large", ()),  # never ends: h11 stops at 16 KB
])
def test_requests_h11_refuses_get_the_json_error(make_app, header, status, code, words):
    app, _ = make_app()
    with ServerThread(app) as srv:
        end = b"" if code == "headers_too_large" else b"\r\n\r\n"
        answer = exchange(srv.port, b"POST /api/cartoonize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          + header + end)
        error_of(answer, status, code, *words)
        assert get(srv.port, "/healthz")[0] == 200


# ------------------------------------------------------------------------ refused bodies
def multipart(data: bytes, field: str = "image") -> bytes:
    return form_head(field) + data + form_tail()


def test_python_clients_read_the_error_of_an_oversize_body(make_app):
    """urllib sends the whole body before it reads: the server reads and drops the rest (up to
    --drain-bytes) so that it reads the JSON error, not a broken pipe or a reset."""
    app, _ = make_app(max_bytes=100_000)
    ctype = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    with ServerThread(app) as srv:
        # refused from its Content-Length, before a byte of the body is read
        body = multipart(b"\x89PNG\r\n\x1a\n" + bytes(12 * 2**20))
        request = urllib.request.Request(srv.url + "/api/cartoonize", data=body, headers=ctype)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == 413
        assert json.loads(err.value.read())["error"]["code"] == "too_large"
        # without Content-Length (chunked): refused mid-stream at the limit
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("POST", "/api/cartoonize", headers=ctype, encode_chunked=True,
                     body=iter([form_head(), b"\x89PNG\r\n\x1a\n", *[bytes(2**20)] * 12, form_tail()]))
        r = conn.getresponse()
        assert r.status == 413 and json.loads(r.read())["error"]["code"] == "too_large"
        assert post_ok(srv.port)
    # any refusal before the end of the body: here the magic bytes of a body within the limit
    app, _ = make_app(max_bytes=32 * 2**20)
    with ServerThread(app) as srv:
        request = urllib.request.Request(srv.url + "/api/cartoonize", headers=ctype,
                                         data=multipart(b"GIF89a" + bytes(12 * 2**20)))
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == 415
        assert json.loads(err.value.read())["error"]["code"] == "unsupported_format"


def test_past_drain_bytes_the_connection_is_cut(make_app):
    app, _ = make_app(max_bytes=100_000, drain_bytes=2**20)
    with ServerThread(app) as srv:
        # a declared length past the bound: answered at once and closed, nothing read
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(request_head(srv.port, f"Content-Length: {64 * 2**20}\r\n") + form_head())
            error_of(read_to_close(sock, 10), 413, "too_large", "--max-bytes")
        # Expect: 100-continue (curl): the client never sends the body
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(request_head(srv.port, f"Content-Length: {5 * 2**20}\r\n"
                                                "Expect: 100-continue\r\n"))
            answer = read_to_close(sock, 10)
            assert b"100 Continue" not in answer
            error_of(answer, 413, "too_large")
        assert post_ok(srv.port)


def post_ok(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/cartoonize", body=multipart(png()),
                 headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    r = conn.getresponse()
    r.read()
    return r.status == 200


# ---------------------------------------------------------------------------- Host header
def test_the_host_header_must_name_this_server(make_app):
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends its own name."""
    from serve import parse_hosts
    from serving.server import default_allowed_hosts

    app, svc = make_app(allowed_hosts=default_allowed_hosts("127.0.0.1"))
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        for host in ("127.0.0.1:8080", "localhost:8080", "LOCALHOST.", "[::1]:8080", "127.0.0.1"):
            assert c.get("/healthz", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example:8080"):
            r = c.get("/api/styles", headers={"Host": host})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host", host
            assert "--allowed-hosts" in r.json()["error"]["message"]
        r = c.post("/api/cartoonize", headers={"Host": "evil.example"},
                   files={"image": ("a.png", png(), "image/png")})
        assert r.status_code == 400 and svc.pool.running == 0
    assert default_allowed_hosts("::1") == ("localhost", "127.0.0.1", "::1")
    assert default_allowed_hosts("0.0.0.0") is None and default_allowed_hosts("192.0.2.7") is None
    assert parse_hosts(None, "localhost") == ("localhost", "127.0.0.1", "::1")
    assert parse_hosts("toon.example, 192.0.2.7", "0.0.0.0") == ("toon.example", "192.0.2.7")
    assert parse_hosts("*", "127.0.0.1") is None


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


# ----------------------------------------------------------------------------- messages
def test_a_video_over_the_pixel_budget_names_the_services_option(make_app, tmp_path):
    pytest.importorskip("av")
    from tests.serving.test_jobs import clip, post_video, wait_job

    app, _ = make_app(max_side=40)
    with TestClient(app) as c:
        job = wait_job(c, post_video(c, clip(tmp_path, 2, (64, 48))).json()["id"])
    assert job["status"] == "failed" and "64x48" in job["message"], job
    assert "--max-side 40" in job["message"] and "--max-pixels" not in job["message"], job
