"""The service's decoder processes (serving.decoder): the same frames as the in-process decoder,
limits checked there, a deadline that ends a decode that is still running, and a decoder that
dies failing one request only."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from tests.inference import make_picture


@pytest.fixture()
def decoders():
    from serving.decoder import Decoders

    d = Decoders(1)
    yield d
    d.close()


def limits(**kw):
    from serving.decoder import Limits

    return Limits(**{"max_pixels": 3000 * 3000, "max_side": 3000, **kw})


def test_frames_come_back_as_the_in_process_decoder_gives_them(decoders, tmp_path):
    from media.decode import decode_frames

    rgba = [np.dstack([make_picture(20, 30, seed=i), np.full((20, 30), 60 * i, np.uint8)])
            for i in range(3)]
    ims = [Image.fromarray(a, "RGBA") for a in rgba]
    ims[0].save(tmp_path / "a.png", save_all=True, append_images=ims[1:], duration=[10, 20, 30], loop=4)
    Image.fromarray(make_picture(20, 30)[..., 0], "L").save(tmp_path / "g.png")
    for name in ("a.png", "g.png"):
        want = decode_frames(tmp_path / name)
        with decoders.open(tmp_path / name, limits(), time.monotonic() + 60) as frames:
            got = list(frames)
            assert (frames.format, frames.frames, frames.loop) == ("PNG", len(want.frames), want.loop)
            assert frames.has_alpha == (name == "a.png") and frames.gray == (name == "g.png")
        assert len(got) == len(want.frames)
        for g, w in zip(got, want.frames):
            np.testing.assert_array_equal(g.rgb, w.rgb)
            assert (g.alpha is None) == (w.alpha is None) and g.rgb.flags.writeable
            if w.alpha is not None:
                np.testing.assert_array_equal(g.alpha, w.alpha)
            assert (g.gray, g.bit_depth, g.frames, g.notes, g.duration_ms) == \
                (w.gray, w.bit_depth, w.frames, w.notes, w.duration_ms)


def test_refusals_come_back_as_one_line_and_the_decoder_is_kept(decoders, tmp_path):
    from serving.decoder import DecodeFailed
    from tests import hostile

    Image.fromarray(make_picture(20, 30)).save(tmp_path / "ok.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    cases = [(hostile.delta_apng(tmp_path / "a.png"), limits(max_total_pixels=10**8), "animation-pixels"),
             (hostile.scan_bomb_jpeg(tmp_path / "b.jpg", side=64, scans=500), limits(), "scans"),
             (tmp_path / "ok.png", limits(max_side=29), "side"),
             (tmp_path / "junk.png", limits(), None)]
    for path, lim, what in cases:
        with pytest.raises(DecodeFailed) as info:
            with decoders.open(path, lim, time.monotonic() + 60):
                pass
        assert info.value.kind == ("too_large" if what else "unreadable") and info.value.what == what
        assert "\n" not in info.value.message
    assert decoders.ended == 0
    with decoders.open(tmp_path / "ok.png", limits(), time.monotonic() + 60) as frames:
        assert frames.read().rgb.shape == (20, 30, 3)


def test_a_decode_still_running_at_the_deadline_is_ended_and_replaced(decoders, tmp_path):
    """A decoder that does not answer (stopped with SIGSTOP, as a codec stuck in C would
    be): the deadline ends it; the next request gets a fresh decoder."""
    import signal

    from serving.decoder import DecodeTimeout

    Image.fromarray(make_picture(20, 30)).save(tmp_path / "ok.png")
    with decoders.open(tmp_path / "ok.png", limits(), time.monotonic() + 60) as frames:
        stuck = frames._decoder.proc.pid
    os.kill(stuck, signal.SIGSTOP)
    t = time.monotonic()
    with pytest.raises(DecodeTimeout):
        with decoders.open(tmp_path / "ok.png", limits(), time.monotonic() + 0.5):
            pass
    assert 0.4 < time.monotonic() - t < 5 and decoders.ended == 1
    with pytest.raises(ProcessLookupError):
        os.kill(stuck, 0)  # ended and reaped
    with decoders.open(tmp_path / "ok.png", limits(), time.monotonic() + 60) as frames:
        assert frames._decoder.proc.pid != stuck
        np.testing.assert_array_equal(frames.read().rgb, make_picture(20, 30))


def test_a_decoder_that_dies_fails_one_request_only(decoders, tmp_path):
    from serving.decoder import DecodeFailed

    ims = [Image.fromarray(make_picture(20, 30, seed=i)) for i in range(3)]
    ims[0].save(tmp_path / "a.png", save_all=True, append_images=ims[1:])
    with pytest.raises(DecodeFailed, match="decoder process ended on it: it was killed"):
        with decoders.open(tmp_path / "a.png", limits(), time.monotonic() + 60) as frames:
            frames.read()
            frames._decoder.proc.kill()  # as the kernel's OOM killer would
            frames.read()
    assert decoders.ended == 1
    with decoders.open(tmp_path / "a.png", limits(), time.monotonic() + 60) as frames:
        assert len(list(frames)) == 3
