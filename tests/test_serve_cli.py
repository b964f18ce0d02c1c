"""serve.py: a real server process end to end, and one-line errors at start."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from serve import main
from tests.conftest import ROOT
from tests.serving import png, write_styles


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    return write_styles(tmp_path_factory.mktemp("styles"))


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_the_server_answers_and_cleans_up_on_sigterm(styles, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "serve.py", "--styles-dir", str(styles), "--port", "0",
                             "--tmp-dir", str(tmp_path), "--default-style", "soft", "--threads", "1"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        port = None
        deadline = time.monotonic() + 120
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
        assert port, "".join(lines)
        while True:  # the socket listens before the app has started: poll
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/healthz")
                health = json.loads(conn.getresponse().read())
                break
            except (ConnectionError, http.client.RemoteDisconnected):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health["status"] == "ok" and health["styles"] == 2
        conn.request("GET", "/healthz", headers={"Host": "rebound.example:8080"})
        r = conn.getresponse()  # bound to 127.0.0.1: other Host names are refused by default
        assert r.status == 400 and json.loads(r.read())["error"]["code"] == "invalid_host"
        conn.request("GET", "/api/styles")
        assert json.loads(conn.getresponse().read())["default"] == "Soft"
        body = (b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
                + png() + b"\r\n--b--\r\n")
        conn.request("POST", "/api/cartoonize", body=body,
                     headers={"Content-Type": "multipart/form-data; boundary=b"})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("content-type") == "image/png" and r.getheader("x-style") == "Soft"
        r.read()
        assert len(list(tmp_path.iterdir())) == 1  # the service's folder, while it runs
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM)
        assert proc.returncode in (0, -signal.SIGTERM), err
        assert list(tmp_path.iterdir()) == []  # removed at shutdown
        log = "".join(lines) + err
        assert re.search(r"POST /api/cartoonize 200 in=\d+ out=\d+ style=Soft \d+ms\n", log), log
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_folder_without_styles_fails_at_start_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = run("--styles-dir", tmp_path / "empty")
    assert code == 2 and out.startswith("error: no styles in") and out.count("\n") == 1, out
    code, out = run("--styles-dir", tmp_path / "missing")
    assert code == 2 and "styles folder not found" in out and out.count("\n") == 1, out


def test_a_bad_default_style_or_device_fails_at_start(styles):
    code, out = run("--styles-dir", styles, "--default-style", "nope")
    assert code == 2 and "--default-style: unknown style 'nope'; available: Hard, Soft" in out, out
    code, out = run("--styles-dir", styles, "--precision", "fp16", "--device", "cpu")
    assert code == 2 and "fp16 needs a CUDA device" in out, out


def test_a_bad_face_detector_fails_at_start_not_at_the_first_portrait(styles, tmp_path):
    code, out = run("--styles-dir", styles, "--landmark-detector", "nope")
    assert code == 2 and out.startswith("error:") and "nope" in out and out.count("\n") == 1, out
    code, out = run("--styles-dir", styles, "--landmark-detector", "mediapipe-tasks",
                    "--landmark-model", tmp_path / "missing.task")
    import importlib.util

    # without mediapipe (the numpy-2 environment) the backend itself is what is missing
    want = "missing.task" if importlib.util.find_spec("mediapipe") else "mediapipe is not installed"
    assert code == 2 and out.startswith("error:") and want in out and out.count("\n") == 1, out


def test_a_port_in_use_fails_at_start(styles):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, out = run("--styles-dir", styles, "--port", port)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in out and out.count("\n") == 1, out


def test_an_unwritable_tmp_dir_fails_before_listening(styles, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, out = run("--styles-dir", styles, "--port", 0, "--tmp-dir", locked / "sub")
    finally:
        locked.chmod(0o755)
    assert code == 2 and out.startswith("error: --tmp-dir ") and "read-only" in out, out
    assert out.count("\n") == 1 and "listening" not in out


def test_connection_settings_are_checked_at_start(styles):
    code, out = run("--styles-dir", styles, "--allowed-hosts", " , ")
    assert code == 2 and out == "error: --allowed-hosts ' , ': give at least one name, or * for any\n", out
    code, out = run("--styles-dir", styles, "--max-connections", 10**12)
    assert code == 2 and out.startswith("error: --max-connections ") and "ulimit -n" in out, out
    assert out.count("\n") == 1
