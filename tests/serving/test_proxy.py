"""The nginx block of docs/service-limits.md, run in front of a live service: its syntax, a
request and an upload passed through, the Host check, an oversize upload answered in the
service's JSON shape, and a client that never finishes its headers closed by nginx. Skipped where nginx is not installed
(``$TOONFACE_NGINX`` may name the binary)."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT
from tests.serving import ServerThread, png, wait_until
from tests.serving.test_server import BOUNDARY, form_head, form_tail

NGINX = os.environ.get("TOONFACE_NGINX") or shutil.which("nginx")
pytestmark = pytest.mark.skipif(not NGINX, reason="nginx is not installed")
NAME = "toon.example.org"


def doc_block() -> str:
    text = (ROOT / "docs" / "service-limits.md").read_text()
    m = re.search(r"<!-- nginx:toonface -->\n```nginx\n(.*?)```\n<!-- /nginx -->", text, re.S)
    assert m, "the nginx block of docs/service-limits.md is missing"
    return m.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def proxy(make_app, tmp_path):
    """(nginx port, service app) with the documented block; the header timeout is shortened to
    1 s so that the test does not wait 10."""
    app, _ = make_app(allowed_hosts=(NAME,))
    with ServerThread(app) as srv:
        port = free_port()
        block = doc_block()
        for old, new in (("listen 80", f"listen 127.0.0.1:{port}"),
                         ("server 127.0.0.1:8080;", f"server 127.0.0.1:{srv.port};"),
                         ("client_header_timeout 10s;", "client_header_timeout 1s;")):
            assert old in block, old
            block = block.replace(old, new)
        temp = " ".join(f"{kind}_temp_path {tmp_path / kind};"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;" if os.geteuid() == 0 else ""
        conf = tmp_path / "nginx.conf"
        conf.write_text(f"{user} daemon off; worker_processes 1; pid {tmp_path / 'nginx.pid'};\n"
                        f"error_log {tmp_path / 'error.log'};\nevents {{ worker_connections 64; }}\n"
                        f"http {{ access_log off; {temp}\n{block}\n}}\n")
        check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def up():
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    return False

            wait_until(up, 20, "nginx listening")
            yield port, app
        finally:
            proc.terminate()
            proc.wait(20)


def call(port: int, path: str, host: str = NAME, data: bytes | None = None):
    headers = {"Host": host}
    if data is not None:
        headers["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_documented_proxy_in_front_of_the_service(proxy):
    port, app = proxy
    status, body = call(port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, body = call(port, "/api/cartoonize", data=form_head() + png() + form_tail())
    assert status == 200 and body.startswith(b"\x89PNG")
    # another Host: closed without an answer (444), nothing reaches the service
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        call(port, "/healthz", host="rebound.example")
    # an oversize upload stops at nginx, in the service's JSON shape
    status, body = call(port, "/api/cartoonize", data=form_head() + bytes(12 * 2**20) + form_tail())
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"
    # a client that never finishes its headers is closed by nginx
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {NAME}\r\n".encode())
        sock.settimeout(10)
        t0 = time.monotonic()
        while sock.recv(65536):
            pass
        assert time.monotonic() - t0 < 5
    assert app.state.connection_guard.refusals["header_timeout"] == 0  # the service saw none

