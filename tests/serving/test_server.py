"""The service under a real uvicorn on 127.0.0.1, spoken to over raw sockets: what the ASGI test
client cannot show (it hands the app the whole body at once and never disconnects).

- an over-limit upload with no Content-Length is cut off as the limit passes, not read to the end;
- a body that never finishes gets 408 after --upload-timeout;
- a client that disconnects while queued is dropped from the queue and never runs;
- the server keeps serving after each.
"""
from __future__ import annotations

import http.client
import json
import logging
import re
import select
import socket
import threading
import time

import pytest

from tests.serving import GatedEngine, ServerThread, png, wait_until

BOUNDARY = "----toonfaceboundary"


def form_head(field: str = "image", filename: str = "a.png") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()


def form_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(port: int, extra: str) -> bytes:
    return (f"POST /api/cartoonize HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{extra}\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 20) -> tuple[int, dict]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, json.loads(body[:length])


def get(url_port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def post_png(port: int, data: bytes) -> int:
    body = form_head() + data + form_tail()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/cartoonize", body=body,
                 headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    r = conn.getresponse()
    r.read()
    return r.status


def request_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if " /api/cartoonize " in r.getMessage()]


def test_an_oversize_chunked_upload_is_cut_off_at_the_limit(make_app, caplog):
    limit, drain = 100_000, 500_000
    app, _ = make_app(max_bytes=limit, drain_bytes=drain)
    total = 30 * 2**20
    with caplog.at_level(logging.INFO, "toonface.serve"), ServerThread(app) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.sendall(request_head(srv.port, "Transfer-Encoding: chunked\r\n"))
        payload = form_head() + b"\x89PNG\r\n\x1a\n"
        sock.sendall(b"%x\r\n%s\r\n" % (len(payload), payload))
        sent, chunk = len(payload), bytes(64 * 1024)
        answered = False
        sock.setblocking(False)
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                answered = True
                break
            if writable:
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except (BlockingIOError, ConnectionError):
                    time.sleep(0.01)
                    continue
                sent += len(chunk)
        sock.setblocking(True)
        assert answered, f"no answer after {sent} bytes"
        status, body = read_response(sock)
        # ... and the connection is closed: uvicorn does not go on receiving the rest
        sock.settimeout(10)
        try:
            closed = sock.recv(65536) == b""
        except ConnectionResetError:
            closed = True
        sock.close()
        assert status == 413 and body["error"]["code"] == "too_large"
        assert closed
        assert sent < total
        assert get(srv.port, "/healthz")[0] == 200
    line = request_lines(caplog)[0]
    got = int(re.search(r" in=(\d+) ", line).group(1))
    # past the limit, at most --drain-bytes more are read (and dropped) for the client's sake,
    # plus what uvicorn's socket buffer held: far from the 30 MB the client was ready to send
    assert " 413 " in line and limit + drain < got < drain + 2 * 2**20, line


def test_a_body_that_never_finishes_is_408(make_app):
    app, _ = make_app(upload_timeout=0.5)
    with ServerThread(app) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.sendall(request_head(srv.port, "Content-Length: 5000\r\n"))
        sock.sendall(form_head() + png()[:100])  # ... and nothing more
        t0 = time.monotonic()
        status, body = read_response(sock, timeout=20)
        sock.close()
        assert status == 408 and body["error"]["code"] == "request_timeout"
        assert "--upload-timeout" in body["error"]["message"]
        assert 0.4 < time.monotonic() - t0 < 10
        assert post_png(srv.port, png()) == 200


def test_a_client_gone_while_queued_is_dropped(make_app, styles_dir, caplog):
    from serving.engine import TorchEngine

    engine = GatedEngine(TorchEngine(styles_dir, "cpu"))
    app, svc = make_app(engine=engine, workers=1, queue=2)
    with caplog.at_level(logging.INFO, "toonface.serve"), ServerThread(app) as srv:
        first = []
        t = threading.Thread(target=lambda: first.append(post_png(srv.port, png())))
        t.start()
        wait_until(lambda: engine.calls == 1, what="first request running")
        body = form_head() + png() + form_tail()
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.sendall(request_head(srv.port, f"Content-Length: {len(body)}\r\n") + body)
        wait_until(lambda: svc.pool.queued == 1, what="second request queued")
        sock.close()
        wait_until(lambda: svc.pool.queued == 0, 10, "the queue to drop it")
        engine.gate.set()
        t.join(60)
        assert first == [200]
        assert engine.calls == 1  # the one that left never ran
        assert post_png(srv.port, png()) == 200 and engine.calls == 2
        assert list((svc.tmp / "uploads").iterdir()) == []
    statuses = sorted(re.search(r" (\d{3}) in=", line).group(1) for line in request_lines(caplog))
    assert statuses == ["200", "200", "499"]
