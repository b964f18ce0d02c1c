"""The HTTP API through the ASGI test client: answers, every error status with the JSON error
shape, the decoding path shared with cartoonize.py, metrics, the log, and no leftover files.

The cartoon oracle is the inference package itself, outside the service:
``Cartoonizer(load_style(name))`` applied to ``media.decode.decode_image(file).rgb``.
"""
from __future__ import annotations

import base64
import io
import logging
import re
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.serving import GatedEngine, H, W, decode, encode, photo, png


@pytest.fixture(scope="module")
def oracle(styles_dir):
    """cartoon(file bytes, style, strength) -> uint8 RGB, computed without the service."""
    import tempfile
    from pathlib import Path

    from media.decode import decode_image
    from inference.cartoonizer import Cartoonizer, blend
    from inference.styles import load_style

    toons = {}

    def cartoon(data: bytes, style: str = "Hard", strength: float = 1.0) -> np.ndarray:
        if style not in toons:
            G, meta = load_style(style, styles_dir, "cpu")
            toons[style] = Cartoonizer(G, "cpu", image_size=meta.get("image_size"))
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "in"
            path.write_bytes(data)
            rgb = decode_image(path).rgb
        return blend(rgb, toons[style](rgb), strength)

    return cartoon


def post(client, data: bytes | None = None, filename: str = "photo.png", headers=None, **fields):
    files = {"image": (filename, data, "application/octet-stream")} if data is not None else None
    return client.post("/api/cartoonize", files=files, data={k: str(v) for k, v in fields.items()},
                       headers=headers or {})


def assert_error(r, status: int, code: str, *words: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    msg = body["error"]["message"]
    assert "\n" not in msg and "Traceback" not in msg and "/tmp" not in msg and "svc" not in msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# ------------------------------------------------------------------------------ answers
def test_styles_lists_the_registry(client):
    r = client.get("/api/styles")
    assert r.status_code == 200
    body = r.json()
    assert [s["name"] for s in body["styles"]] == ["Hard", "Soft"]
    assert body["default"] == "Hard" and [s["default"] for s in body["styles"]] == [True, False]
    hard = body["styles"][0]
    assert hard["image_size"] == 64 and hard["step"] == 200 and hard["metrics"]["nme68_mean"] == pytest.approx(0.06)
    assert body["limits"] == {"max_bytes": 10 * 2**20, "max_side": 3000,
                              "max_video_bytes": 100 * 2**20, "max_video_frames": 1800,
                              "max_animation_pixels": 100_000_000}


def test_cartoon_png_has_the_input_size_and_the_inference_result(client, oracle):
    data = png()
    r = post(client, data, style="soft", strength="1")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-style"] == "Soft"
    im = decode(r.content)
    assert im.size == (W, H) and im.mode == "RGB" and im.info.get("icc_profile")  # sRGB-tagged
    np.testing.assert_array_equal(np.asarray(im), oracle(data, "Soft"))


def test_strength_blends_photo_and_cartoon(client, oracle):
    data = png()
    zero = np.asarray(decode(post(client, data, strength="0").content))
    np.testing.assert_array_equal(zero, photo())
    half = np.asarray(decode(post(client, data, strength="0.5").content))
    np.testing.assert_array_equal(half, oracle(data, "Hard", 0.5))
    assert np.abs(half.astype(int) - photo().astype(int)).mean() > 1  # not the photo


def test_blend_of_styles(client, oracle):
    data = png()
    r = post(client, data, style="soft=0.5, HARD=0.5")
    assert r.status_code == 200 and r.headers["x-style"] == "Soft=0.5,Hard=0.5"
    np.testing.assert_array_equal(np.asarray(decode(r.content)), oracle(data, "soft=0.5,hard=0.5"))


def test_an_animated_png_is_answered_frame_by_frame_with_its_timing(client, oracle):
    """An APNG upload is a PNG by its magic bytes: every frame is stylized (the same pixels as
    each frame sent alone), frame times and loop count kept; never a silent 1-frame answer."""
    from PIL import Image

    frames = [np.roll(photo(), 7 * i, axis=1) for i in range(3)]
    buf = io.BytesIO()
    Image.fromarray(frames[0]).save(buf, format="PNG", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]],
                                    duration=[100, 200, 300], loop=2)
    r = post(client, buf.getvalue(), headers={"accept": "application/json"}, style="soft")
    assert r.status_code == 200, r.text
    body = r.json()
    assert any("3-frame animation" in n for n in body["notices"]), body["notices"]
    im = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    assert im.n_frames == 3 and im.info.get("loop") == 2
    for i, f in enumerate(frames):
        im.seek(i)
        assert im.info["duration"] == 100 * (i + 1)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), oracle(encode(f), "Soft"))


def test_jpeg_and_json_answers(client, oracle):
    data = png()
    jpg = post(client, data, headers={"Accept": "image/jpeg"})
    assert jpg.status_code == 200 and jpg.headers["content-type"] == "image/jpeg"
    im = decode(jpg.content)
    assert im.format == "JPEG" and im.size == (W, H)
    assert np.abs(np.asarray(im).astype(int) - oracle(data).astype(int)).mean() < 6  # lossy
    js = post(client, data, headers={"Accept": "application/json"})
    assert js.status_code == 200 and js.headers["content-type"] == "application/json"
    body = js.json()
    assert (body["width"], body["height"], body["media_type"], body["style"]) == (W, H, "image/png", "Hard")
    assert body["strength"] == 1.0 and body["portrait"] is False and body["duration_ms"] >= 0
    np.testing.assert_array_equal(np.asarray(decode(base64.b64decode(body["image"]))), oracle(data))
    q = post(client, data, headers={"Accept": "image/png;q=0.5, image/jpeg;q=0.9"})
    assert q.headers["content-type"] == "image/jpeg"
    assert post(client, data, headers={"Accept": "*/*"}).headers["content-type"] == "image/png"


def _tiff_exif(orientation: int) -> bytes:
    """A minimal little-endian EXIF block holding only an Orientation tag."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1, orientation) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd


def _kinds():
    import cv2

    rgb = photo()
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:, : W // 3] = 0
    alpha[H // 2:, W // 2:] = 128
    rgba = np.dstack([rgb, alpha])
    ok, png16 = cv2.imencode(".png", (rgb[..., ::-1].astype(np.uint16) * 257 + 5))
    assert ok
    return {
        "gray": (encode(rgb, mode="L"), (W, H), "L"),
        "rgba": (encode(rgba), (W, H), "RGBA"),
        "palette": (encode(rgb, mode="P"), (W, H), "RGB"),
        "16-bit": (png16.tobytes(), (W, H), "RGB"),
        "cmyk-jpeg": (encode(rgb, "JPEG", mode="CMYK", quality=95), (W, H), "RGB"),
        "exif-rotated-jpeg": (encode(rgb, "JPEG", quality=95, exif=_tiff_exif(6)), (H, W), "RGB"),
    }


@pytest.mark.parametrize("kind", ["gray", "rgba", "palette", "16-bit", "cmyk-jpeg", "exif-rotated-jpeg"])
def test_every_kind_of_input_goes_through_the_shared_decoder(client, oracle, kind):
    data, size, mode = _kinds()[kind]
    js = post(client, data, filename="x.bin", headers={"Accept": "application/json"}).json()
    assert (js["width"], js["height"]) == size  # as shown: EXIF orientation applied
    r = post(client, data, filename="x.bin")
    assert r.status_code == 200, r.text
    im = decode(r.content)
    assert im.size == size and im.mode == mode
    expected = oracle(data)
    if mode == "L":
        from PIL import Image

        expected = np.asarray(Image.fromarray(expected).convert("L"))
        got = np.asarray(im)
    else:
        got = np.asarray(im)[..., :3]
    np.testing.assert_array_equal(got, expected)
    if mode == "RGBA":  # the file's alpha comes back unchanged
        np.testing.assert_array_equal(np.asarray(im)[..., 3], np.asarray(decode(data))[..., 3])


def test_the_format_is_judged_by_content_not_by_name(client):
    assert post(client, png(), filename="photo.gif").status_code == 200


# ---------------------------------------------------------------------------- bad input
def test_missing_and_unexpected_fields(client):
    r = client.post("/api/cartoonize", data={"style": "Hard"}, files={"other": ("a", b"x")})
    assert_error(r, 422, "invalid_field", "unexpected field 'other'")
    r = client.post("/api/cartoonize", files={"style": (None, "Hard")})
    assert_error(r, 422, "missing_field", "image")


def test_not_multipart_is_415(client):
    r = client.post("/api/cartoonize", json={"image": "x"})
    assert_error(r, 415, "unsupported_media_type", "multipart/form-data")
    r = client.post("/api/cartoonize", content=png(), headers={"Content-Type": "image/png"})
    assert_error(r, 415, "unsupported_media_type")


def test_malformed_multipart_bodies_are_400(client):
    ctype = {"Content-Type": "multipart/form-data; boundary=xyz"}
    r = client.post("/api/cartoonize", content=b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; "
                    b"filename=\"a.png\"\r\n\r\n" + png(), headers=ctype)  # no closing boundary
    assert_error(r, 400, "bad_request", "incomplete multipart body")
    r = client.post("/api/cartoonize", content=b"garbage without any boundary", headers=ctype)
    assert_error(r, 400, "bad_request", "malformed multipart body")
    r = client.post("/api/cartoonize", content=b"x",
                    headers={"Content-Type": "multipart/form-data; boundary=" + "b" * 100})
    assert_error(r, 400, "bad_request", "malformed multipart body")
    r = client.post("/api/cartoonize", content=b"--xyz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--xyz--\r\n",
                    headers=ctype)
    assert_error(r, 400, "bad_request", "no form-data name")


def test_unknown_style_lists_the_names(client):
    assert_error(post(client, png(), style="Hayao"), 400, "unknown_style", "'Hayao'", "Hard, Soft")
    assert_error(post(client, png(), style="soft=x,hard=1"), 400, "invalid_style", "not a number")


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "inf", "abc"])
def test_strength_outside_0_1_is_422(client, value):
    assert_error(post(client, png(), strength=value), 422, "invalid_field", "strength")


def test_portrait_must_be_a_boolean(client):
    assert_error(post(client, png(), portrait="maybe"), 422, "invalid_field", "portrait")


def test_empty_file_is_400(client):
    assert_error(post(client, b""), 400, "empty_file", "empty")


def test_other_formats_are_415_by_magic_bytes(client):
    gif = encode(photo(), "GIF")
    assert_error(post(client, gif, filename="photo.png"), 415, "unsupported_format", "PNG or JPEG")
    assert_error(post(client, b"BM" + b"\0" * 100, filename="a.jpg"), 415, "unsupported_format")
    assert_error(post(client, b"\x89PN", filename="a.png"), 415, "unsupported_format")  # too short


def test_truncated_and_corrupt_images_are_400(client):
    data = png(64, 64)
    assert_error(post(client, data[: len(data) // 2]), 400, "unreadable_image", "truncated")
    assert_error(post(client, data[:20]), 400, "unreadable_image")  # magic, but no header
    bad = bytearray(encode(photo(), "JPEG"))
    bad[200:] = b"\x00" * (len(bad) - 200)
    r = post(client, bytes(bad))
    assert r.status_code in (200, 400)  # libjpeg may conceal; never a 500
    if r.status_code == 400:
        assert_error(r, 400, "unreadable_image")


def test_body_over_max_bytes_is_413(make_app):
    app, _ = make_app(max_bytes=2000)
    big = encode(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8))
    with TestClient(app) as c:
        # within the form allowance: the file part itself is counted as it streams
        assert_error(post(c, big), 413, "too_large", "2 KB", "--max-bytes")
        huge = b"\x89PNG\r\n\x1a\n" + bytes(200_000)
        # Content-Length over the limit: refused before the body is read, connection closed
        r = post(c, huge)
        assert_error(r, 413, "too_large", "request body is")
        assert r.headers["connection"] == "close"
        assert post(c, png(16, 16)).status_code == 200


def test_side_over_max_side_is_413_from_the_header(make_app):
    app, _ = make_app(max_side=44)
    with TestClient(app) as c:
        assert_error(post(c, png()), 413, "image_too_large", "48x40", "--max-side")
        assert post(c, png(40, 44)).status_code == 200


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, with one tiny IDAT (a decompression bomb's
    header: the size costs nothing to claim)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [3001, 20000, 100000])
def test_decompression_bombs_are_refused_from_the_header(client, side):
    assert_error(post(client, _png_header_only(side, side)), 413, "image_too_large")


# ------------------------------------------------ work bounds and the deadline (issue 26)
# The decode guard turns any Pillow decode in this process into an error: the service parses
# uploads only in its decoder processes (and today's code, which decoded in its worker thread,
# fails here at the first frame instead of allocating gigabytes).
def test_an_animation_over_its_budget_is_413_before_decoding(make_app, tmp_path):
    """Issue 26: a 26 KB APNG of 300 one-pixel frames on a 1500x1500 canvas took the server
    from 282 MB to 2.9 GB and answered 504; its frames x canvas pixels are refused first."""
    from tests import hostile

    app, _ = make_app()
    apng = hostile.delta_apng(tmp_path / "a.png").read_bytes()
    with TestClient(app) as c, hostile.decode_guard():
        assert_error(post(c, apng), 413, "image_too_large", "300 frames of 1500x1500",
                     "675,000,000", "--max-animation-pixels")
    app, _ = make_app(max_video_frames=299)
    with TestClient(app) as c, hostile.decode_guard():
        assert_error(post(c, apng), 413, "image_too_large", "300 frames", "--max-video-frames")
    app, _ = make_app(max_side=1000)
    with TestClient(app) as c, hostile.decode_guard():
        assert_error(post(c, apng), 413, "image_too_large", "1500x1500", "--max-side")
        assert post(c, png()).status_code == 200


def test_a_jpeg_of_too_many_scans_is_413_before_decoding(client, tmp_path):
    """Issue 26: a 513 KB progressive JPEG of 20,000 scans blocked the worker > 100 s."""
    from tests import hostile

    bomb = hostile.scan_bomb_jpeg(tmp_path / "bomb.jpg").read_bytes()
    with hostile.decode_guard():
        assert_error(post(client, bomb, filename="a.jpg"), 413, "image_too_large", "over 100 scans")
        assert post(client, png()).status_code == 200


def test_a_slow_decode_is_ended_at_the_timeout_and_never_blocks_the_service(make_app, tmp_path):
    """A PNG whose header is 9.9 MB of empty chunks keeps Pillow busy for seconds (5 s here
    when measured). It is parsed in a decoder process: the service answers /healthz meanwhile,
    the request gets its 504 at --timeout, the worker is free at once (the decoder was ended)
    and the next image is served. Today's code parsed the header in the event loop."""
    import threading
    import time

    from tests import hostile
    from tests.serving import wait_until

    spam = hostile.chunk_spam_png(tmp_path / "spam.png", 9.9).read_bytes()
    app, svc = make_app(timeout=1.5)
    with TestClient(app) as c:
        assert post(c, png()).status_code == 200  # the decoder process is up
        answers = []
        slow = threading.Thread(target=lambda: answers.append(post(c, spam)))
        slow.start()
        latencies = []
        while slow.is_alive():
            t = time.monotonic()
            assert c.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - t)
            time.sleep(0.05)
        slow.join()
        assert_error(answers[0], 504, "timeout", "--timeout")
        assert max(latencies) < 1.0, latencies
        wait_until(lambda: svc.pool.running == 0, 2, "the worker to be released")
        assert svc.decoders.ended == 1
        assert post(c, png()).status_code == 200


def test_accept_without_a_type_we_answer_is_406(client):
    assert_error(post(client, png(), headers={"Accept": "text/html"}), 406, "not_acceptable")


def test_unknown_routes_and_methods_are_json(client):
    assert_error(client.get("/api/nothing"), 404, "not_found", "/api/nothing")
    assert_error(client.get("/api/cartoonize"), 405, "method_not_allowed")
    assert_error(client.get("/static/missing.js"), 404, "not_found")


class BrokenEngine:
    """Raises a bug (not an ApiError) on the first call only."""

    name = "broken"

    def __init__(self, inner):
        self.inner, self.failed = inner, False

    def load(self, spec):
        stylizer = self.inner.load(spec)
        engine = self

        class S:
            meta = stylizer.meta

            def __call__(self, rgb, **kw):
                if not engine.failed:
                    engine.failed = True
                    raise RuntimeError("secret internal detail /srv/models")
                return stylizer(rgb, **kw)

        return S()


def test_a_bug_is_a_500_without_details_and_the_server_keeps_serving(make_app, styles_dir, caplog):
    from serving.engine import TorchEngine

    app, _ = make_app(engine=BrokenEngine(TorchEngine(styles_dir, "cpu")))
    with TestClient(app) as c, caplog.at_level(logging.ERROR, "toonface.serve"):
        msg = assert_error(post(c, png()), 500, "internal_error")
        assert "secret" not in msg and "RuntimeError" not in msg
        assert post(c, png()).status_code == 200
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)


# ------------------------------------------------------------------------- concurrency
def test_a_full_queue_answers_503_with_retry_after(make_app, styles_dir):
    import threading

    from serving.engine import TorchEngine
    from tests.serving import wait_until

    engine = GatedEngine(TorchEngine(styles_dir, "cpu"))
    app, svc = make_app(engine=engine, workers=1, queue=1)
    with TestClient(app) as c:
        results = []
        threads = [threading.Thread(target=lambda: results.append(post(c, png()).status_code))
                   for _ in range(2)]
        threads[0].start()
        wait_until(lambda: svc.pool.running == 1, what="first request running")
        threads[1].start()
        wait_until(lambda: svc.pool.queued == 1, what="second request queued")
        r = post(c, png())
        assert_error(r, 503, "busy", "try again")
        assert int(r.headers["retry-after"]) >= 1
        assert "toonface_queue_length 1.0" in c.get("/metrics").text
        engine.gate.set()
        for t in threads:
            t.join(30)
        assert sorted(results) == [200, 200]
        assert c.get("/healthz").json()["queue"] == 0


def test_twenty_uploads_against_a_queue_of_four(make_app, styles_dir, tmp_path):
    """1 running + 4 waiting are answered; the other 15 get 503 at once; nothing crashes, and
    at most 5 uploads are held on disk at any time."""
    import threading

    from serving.engine import TorchEngine
    from tests.serving import wait_until

    engine = GatedEngine(TorchEngine(styles_dir, "cpu"))
    app, svc = make_app(engine=engine, workers=1, queue=4)
    statuses, lock = [], threading.Lock()
    held = []
    data = png(64, 64)

    def one():
        r = post(c, data)
        with lock:
            statuses.append(r.status_code)

    with TestClient(app) as c:
        threads = [threading.Thread(target=one) for _ in range(20)]
        for t in threads:
            t.start()
        wait_until(lambda: len(statuses) == 15, what="15 refusals")
        held.append(len(list((svc.tmp / "uploads").iterdir())))
        assert svc.pool.queued == 4 and svc.pool.running == 1
        engine.gate.set()
        for t in threads:
            t.join(60)
        assert sorted(statuses) == [200] * 5 + [503] * 15
        assert engine.calls == 5
        assert post(c, data).status_code == 200
        assert list((svc.tmp / "uploads").iterdir()) == []
    assert held == [5]


def test_the_request_timeout_covers_queue_and_inference(make_app, styles_dir):
    from serving.engine import TorchEngine

    engine = GatedEngine(TorchEngine(styles_dir, "cpu"))
    app, svc = make_app(engine=engine, timeout=0.5)
    with TestClient(app) as c:
        assert_error(post(c, png()), 504, "timeout", "--timeout")
        engine.gate.set()
        assert post(c, png()).status_code == 200


def test_styles_are_loaded_once_and_kept_lru(make_app):
    app, svc = make_app(max_loaded_styles=1)
    with TestClient(app) as c:
        for style in ("Soft", "soft", "Hard", "Soft"):
            assert post(c, png(), style=style).status_code == 200
        assert svc.cache.loads == 3 and svc.cache.loaded() == ["Soft"]
    app, svc = make_app(max_loaded_styles=2)
    with TestClient(app) as c:
        for style in ("Soft", "Hard", "Soft", "HARD"):
            assert post(c, png(), style=style).status_code == 200
        assert svc.cache.loads == 2


# ---------------------------------------------------------------- health, metrics, logs
def test_healthz_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok", "styles": 2, "queue": 0, "running": 0,
                                             "workers": 1, "jobs_active": 0}
    post(client, png())
    post(client, png(), strength="7")
    text = client.get("/metrics").text
    assert 'toonface_http_requests_total{method="POST",route="/api/cartoonize",status="200"} 1.0' in text
    assert 'toonface_http_requests_total{method="POST",route="/api/cartoonize",status="422"} 1.0' in text
    assert 'toonface_http_request_duration_seconds_bucket{le="+Inf",route="/api/cartoonize"} 2.0' in text
    assert "toonface_queue_length 0.0" in text and "toonface_inference_duration_seconds_count 1.0" in text
    assert 'toonface_video_jobs{state="running"} 0.0' in text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_one_log_line_per_request_without_content_or_client(make_app, caplog):
    for log_client in (False, True):
        app, _ = make_app(log_client=log_client)
        caplog.clear()
        with TestClient(app) as c, caplog.at_level(logging.INFO, "toonface.serve"):
            data = png()
            r = post(c, data, style="soft")
        lines = [r_.getMessage() for r_ in caplog.records if "/api/cartoonize" in r_.getMessage()]
        assert len(lines) == 1
        m = re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z POST /api/cartoonize 200 in=(\d+) out=(\d+) "
                         r"style=Soft (\d+)ms( client=testclient:\d+)?", lines[0])
        assert m, lines[0]
        assert int(m.group(1)) > len(data) and int(m.group(2)) == len(r.content)
        assert bool(m.group(4)) == log_client


def test_nothing_is_left_in_the_temporary_folder(make_app, tmp_path):
    app, svc = make_app(max_bytes=50_000)
    with TestClient(app) as c:
        root = svc.tmp
        assert root.parent == tmp_path / "svc"
        post(c, png())
        post(c, png()[:60])
        post(c, encode(photo(), "GIF"))
        post(c, np.random.default_rng(1).integers(0, 255, 60_000, dtype=np.uint8).tobytes())
        post(c, png(), style="nope")
        assert list((root / "uploads").iterdir()) == []
    assert not root.exists() and list((tmp_path / "svc").iterdir()) == []


# The answer model of each route in /openapi.json (generated from serving/schemas.py).
ANSWER_MODELS = {("/api/styles", "get"): "StylesAnswer", ("/api/cartoonize", "post"): "CartoonAnswer",
                 ("/api/videos", "post"): "JobAnswer", ("/api/jobs/{job_id}", "get"): "JobAnswer",
                 ("/api/jobs/{job_id}", "delete"): "DeletedAnswer", ("/healthz", "get"): "HealthAnswer",
                 ("/api/jobs/{job_id}/result", "get"): None, ("/metrics", "get"): None}


def resolve(spec, schema):
    """``schema`` with a ``$ref`` to ``#/components/schemas/X`` replaced by X."""
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def test_openapi_schema_documents_every_route_with_its_answer_model(client):
    spec = client.get("/openapi.json").json()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert documented == set(ANSWER_MODELS)
    for (path, method), model in ANSWER_MODELS.items():
        ok = spec["paths"][path][method]["responses"]["202" if path == "/api/videos" else "200"]
        if model is None:
            continue
        assert ok["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    assert spec["paths"]["/api/jobs/{job_id}/result"]["get"]["responses"]["200"]["content"] == {"video/mp4": {}}
    assert {"image/png", "image/jpeg"} <= set(spec["paths"]["/api/cartoonize"]["post"]["responses"]["200"]["content"])
    form = spec["paths"]["/api/cartoonize"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(form["schema"]["properties"]) == {"image", "style", "strength", "portrait", "temporal"}
    assert form["schema"]["properties"]["image"]["format"] == "binary" and form["schema"]["required"] == ["image"]
    form = spec["paths"]["/api/videos"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(form["schema"]["properties"]) == {"video", "style", "strength", "portrait", "temporal"}
    assert form["schema"]["properties"]["temporal"]["exclusiveMaximum"] == 1


def test_openapi_documents_the_error_model_for_every_error_answer(client):
    """Every 4xx/5xx answer of every route is the one error shape, and FastAPI's own validation
    model (which the service never answers with) is nowhere."""
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = resolve(spec, spec["components"]["schemas"]["ErrorAnswer"]["properties"]["error"])
    assert set(error["properties"]) == {"code", "message"}
    statuses = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status[0] in "45":
                    statuses.add((path, method, status))
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorAnswer"}, (path, method, status)
    assert {("/api/cartoonize", "post", s) for s in ("400", "406", "413", "415", "422", "503", "504")} <= statuses
    assert {("/api/jobs/{job_id}/result", "get", s) for s in ("404", "409")} <= statuses
    # an answer the service gives matches the documented model
    r = client.get("/api/jobs/nope")
    assert r.status_code == 404 and set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message"}


def test_the_answers_are_their_documented_models_key_for_key(client):
    spec = client.get("/openapi.json").json()
    models = spec["components"]["schemas"]
    assert set(models["StylesAnswer"]["properties"]) == set(client.get("/api/styles").json())
    style = client.get("/api/styles").json()["styles"][0]
    assert set(models["StyleInfo"]["properties"]) == set(style)
    assert set(models["HealthAnswer"]["properties"]) == set(client.get("/healthz").json())


def test_the_json_answer_is_documented_key_for_key(client):
    """Every key of the JSON answer (media_type included) is in the OpenAPI schema, and no other."""
    spec = client.get("/openapi.json").json()
    schema = spec["paths"]["/api/cartoonize"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    schema = resolve(spec, schema)
    body = post(client, png(), headers={"Accept": "application/json"}).json()
    assert set(schema["properties"]) == set(body)
    assert body["media_type"] in schema["properties"]["media_type"]["enum"]
    assert "type of the file in image" in schema["properties"]["media_type"]["description"]


def test_the_favicon_is_served(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.content.startswith(b"<svg")
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/").text


def test_the_page_and_its_files_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert not re.search(r"https?://", text), "the page must not load anything from the internet"


def test_bf16_precision_is_close_to_fp32(make_app, oracle):
    app, _ = make_app(precision="bf16")
    data = png()
    with TestClient(app) as c:
        r = post(c, data)
    assert r.status_code == 200
    got = np.asarray(decode(r.content)).astype(int)
    diff = np.abs(got - oracle(data).astype(int))
    assert got.shape == (H, W, 3) and diff.mean() < 2.0 and diff.max() < 40, (diff.mean(), diff.max())


def test_portrait_mode_runs_the_face_detector(client):
    """The synthetic picture has no face: portrait mode says so and cartoonizes the whole image."""
    r = post(client, png(), portrait="true", headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["portrait"] is True and (body["width"], body["height"]) == (W, H)
    assert any("no face found" in n for n in body["notices"]), body["notices"]


def test_before_startup_the_service_answers_503_unavailable(make_app):
    app, _ = make_app()
    c = TestClient(app)  # no `with`: the lifespan (temporary folder, workers) has not run
    assert_error(c.get("/healthz"), 503, "unavailable", "not running")
    r = post(c, png())
    assert_error(r, 503, "unavailable")
    assert r.headers["connection"] == "close"  # refused before its body was read
