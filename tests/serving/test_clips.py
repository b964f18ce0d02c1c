"""The service and the command line run one clip pipeline (inference/clips.py): a portrait
video served as a job, and an animated PNG served directly, give the frames that
``cartoonize.py`` writes for the same file and options (faces tracked and smoothed, the same
``temporal`` stabiliser), compared exactly after decoding.

Why exact: both sides hand the same cartoon frames to the same encoder (the H.264 writer of
media/transcode.py with the same settings, in one process; libx264 is deterministic for the
same input and options; PNG is lossless), so any difference is a different pipeline."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from tests.conftest import fixtures_dir
from tests.serving.test_jobs import post_video, wait_job

av = pytest.importorskip("av")

OPTIONS = {"style": "soft", "strength": "0.8", "portrait": "true", "temporal": "0.5"}


@pytest.fixture(scope="module")
def face_frames():
    """Six 128x128 frames of a still portrait (face ~45 px between the eye corners: the tiny
    styles' face size is 20, so every frame re-renders the face) with camera noise and a
    1-px drift, so detections wander and the tracker has something to smooth."""
    from PIL import Image

    from faces import resolve_detector
    from utils.errors import ToonFaceError

    try:
        resolve_detector()
    except ToonFaceError as exc:
        pytest.skip(f"no face detector here: {exc}")
    photo = np.asarray(Image.open(fixtures_dir("ffhq-mini", "photos", "00049.jpg")).convert("RGB"))
    photo = np.ascontiguousarray(photo[::2, ::2]).astype(np.float32)
    rng = np.random.default_rng(3)
    return [np.clip(np.roll(photo, i // 2, axis=1) + rng.normal(0, 3, photo.shape), 0, 255)
            .astype(np.uint8) for i in range(6)]


def cartoonize_cli(src, out, styles_dir):
    from cartoonize import main

    args = [str(src), "--out", str(out), "--style", OPTIONS["style"], "--styles-dir",
            str(styles_dir), "--strength", OPTIONS["strength"], "--portrait", "--temporal",
            OPTIONS["temporal"], "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    files = [p for p in out.iterdir() if p.is_file()]
    assert len(files) == 1, files
    return files[0], result.output


def test_a_served_portrait_video_is_the_command_lines(make_app, tmp_path, styles_dir, face_frames):
    from media.video_reader import VideoReader
    from tests.inference.clips import write_clip

    src = write_clip(tmp_path / "face.mp4", face_frames)
    cli_file, log = cartoonize_cli(src, tmp_path / "cli", styles_dir)
    app, _ = make_app()
    with TestClient(app) as c:
        r = post_video(c, src.read_bytes(), filename="face.mp4", **OPTIONS)
        assert r.status_code == 202, r.text
        assert r.json()["temporal"] == 0.5 and r.json()["portrait"] is True
        done = wait_job(c, r.json()["id"], timeout=300)
        assert done["status"] == "done", done
        served = tmp_path / "served.mp4"
        served.write_bytes(c.get(done["result_url"]).content)
    with VideoReader(cli_file) as a, VideoReader(served) as b:
        want, got = [f.rgb for f in a], [f.rgb for f in b]
    assert len(want) == len(got) == len(face_frames)
    for i, (w, g) in enumerate(zip(want, got)):
        np.testing.assert_array_equal(g, w, err_msg=f"frame {i}")
    # the face was found and re-rendered: portrait mode, not a plain pass, is what matched
    assert "no face" not in log


def test_a_served_animated_png_is_the_command_lines(client, tmp_path, styles_dir, face_frames):
    from PIL import Image

    src = tmp_path / "face.png"
    Image.fromarray(face_frames[0]).save(src, format="PNG", save_all=True, duration=80, loop=0,
                                         append_images=[Image.fromarray(f) for f in face_frames[1:]])
    cli_file, _ = cartoonize_cli(src, tmp_path / "cli", styles_dir)
    r = client.post("/api/cartoonize", files={"image": ("face.png", src.read_bytes(), "image/png")},
                    data=OPTIONS, headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["temporal"] == 0.5
    served = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    want = Image.open(cli_file)
    assert served.n_frames == want.n_frames == len(face_frames)
    for i in range(len(face_frames)):
        served.seek(i)
        want.seek(i)
        np.testing.assert_array_equal(np.asarray(served.convert("RGB")),
                                      np.asarray(want.convert("RGB")), err_msg=f"frame {i}")


@pytest.mark.parametrize("value", ["1", "-0.1", "nan", "x", "inf"])
def test_temporal_is_validated_as_the_command_line_does(client, tmp_path, value):
    from tests.serving.test_api import assert_error
    from tests.serving.test_jobs import clip

    r = post_video(client, clip(tmp_path), temporal=value)
    assert_error(r, 422, "invalid_field", "temporal must be a number in [0, 1)")
