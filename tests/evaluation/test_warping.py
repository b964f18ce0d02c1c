"""Warping error of videos (evaluation/warping.py)."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from evaluation.warping import (CONSISTENCY_ALPHA, CONSISTENCY_BETA, WarpingErrorAccumulator,
                                consistency_mask, farneback_flow, warping_error)
from tests.conftest import fixtures_dir
from utils.errors import ToonFaceError

H = W = 128


def translated_clip(image: np.ndarray, k: int, n: int = 4, y: int = 20, x: int = 150):
    """n frames of a window moving k px per frame over a real photo: every frame is the
    previous one translated by exactly k px, with real texture and no border fill. The
    default window holds the astronaut's face (a flat background would leave the flow
    undetermined and measure Farneback's guess, not the warp)."""
    return [np.ascontiguousarray(image[y:y + H, x + t * k:x + t * k + W]) for t in range(n)]


def flickered(frames, c: int):
    """Add c to every other frame (the oracle: a warping error of c / 255 more)."""
    return [np.clip(f.astype(np.int16) + (c if i % 2 else 0), 0, 255).astype(np.uint8)
            for i, f in enumerate(frames)]


@pytest.fixture(scope="module")
def photo():
    # Mid-range values, so a +c flicker is never clipped.
    return (40 + data.astronaut().astype(np.float32) * (160 / 255)).astype(np.uint8)


def test_static_clip_is_zero(photo):
    clip = [photo[:H, :W].copy() for _ in range(3)]
    s = warping_error(clip, clip)["summary"]
    assert s["frames"] == 3 and s["frame_pairs"] == 2
    assert s["warping_error_mean"] < 1e-4 and s["warping_error_input_mean"] < 1e-4
    assert s["kept_fraction_mean"] > 0.98


@pytest.mark.parametrize("k", [1, 3, 6])
def test_translated_clip_is_near_zero(photo, k):
    clip = translated_clip(photo, k)
    r = warping_error(clip, clip)
    s = r["summary"]
    unwarped = np.mean([np.abs(a.astype(float) - b).mean() / 255 for a, b in zip(clip, clip[1:])])
    assert s["warping_error_mean"] < 0.005 and s["warping_error_mean"] < 0.05 * unwarped
    # output == input: the output's error is the input's own floor, pair by pair
    assert r["per_pair"]["warping_error"] == r["per_pair"]["warping_error_input"]
    # pixels entering at the leading edge come from outside the previous frame: masked
    assert s["kept_fraction_mean"] <= 1 - k / W + 1e-6


def test_flicker_adds_its_amplitude(photo):
    c = 12
    static = [photo[:H, :W].copy() for _ in range(4)]
    s = warping_error(static, flickered(static, c))["summary"]
    assert s["warping_error_mean"] == pytest.approx(c / 255, abs=5e-4)
    moving = translated_clip(photo, 3)
    s = warping_error(moving, flickered(moving, c))["summary"]
    floor = s["warping_error_input_mean"]
    assert c / 255 - floor <= s["warping_error_mean"] <= c / 255 + floor


def test_flow_comes_from_the_input_only(photo):
    clip = translated_clip(photo, 2)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, f.shape, dtype=np.uint8) for f in clip]
    a, b = warping_error(clip, clip), warping_error(clip, noise)
    assert a["per_pair"]["kept_fraction"] == b["per_pair"]["kept_fraction"]
    assert a["per_pair"]["warping_error_input"] == b["per_pair"]["warping_error_input"]
    assert b["summary"]["warping_error_mean"] > 0.25       # uniform noise: E|U - U'| = 1/3


@pytest.mark.parametrize("max_side", [None, 64])
def test_flow_of_a_translation_is_the_translation(photo, max_side):
    import cv2

    k = 4
    prev, nxt = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in translated_clip(photo, k, n=2))
    back = farneback_flow(nxt, prev, max_side=max_side)     # frame t -> t-1: content at x + k
    assert back.shape == (H, W, 2)
    inner = back[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(k, abs=0.2)
    assert np.median(inner[..., 1]) == pytest.approx(0, abs=0.2)
    s = warping_error(translated_clip(photo, k), translated_clip(photo, k),
                      flow_max_side=max_side)["summary"]
    assert s["warping_error_mean"] < 0.01


def test_consistency_mask_hand_values():
    h, w = 6, 10
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = 2.0                               # x of frame t came from x + 2 in t-1
    fwd_ok = -back                                   # and goes back exactly
    mask, maps = consistency_mask(back, fwd_ok)
    assert np.allclose(maps[0, :, 0], np.arange(w) + 2)
    assert mask[:, :w - 2].all() and not mask[:, w - 2:].any()   # last 2 columns leave the frame
    # |w_b + w_f|^2 = 16 > alpha (4 + 4) + beta: inconsistent everywhere
    assert 16 > CONSISTENCY_ALPHA * 8 + CONSISTENCY_BETA
    assert not consistency_mask(back, back)[0].any()
    # a round trip off by 0.5 px passes: 0.25 <= 0.01 (4 + 2.25) + 0.5
    assert consistency_mask(back, fwd_ok + [0.5, 0.0])[0][:, :w - 2].all()


def test_streaming_matches_the_batch_function(photo):
    clip = translated_clip(photo, 2, n=5)
    out = flickered(clip, 8)
    acc = WarpingErrorAccumulator()
    assert acc.add(clip[0], out[0]) is None
    steps = [acc.add(a, b) for a, b in zip(clip[1:], out[1:])]
    batch = warping_error(iter(clip), (f for f in out))
    assert [s["warping_error"] for s in steps] == batch["per_pair"]["warping_error"]
    assert acc.result()["summary"] == batch["summary"]
    assert batch["settings"]["flow_on"] == "input"


def test_output_of_another_size_is_resized(photo):
    import cv2

    clip = translated_clip(photo, 2)
    big = [cv2.resize(f, (2 * W, 2 * H), interpolation=cv2.INTER_CUBIC) for f in clip]
    s = warping_error(clip, big)["summary"]
    assert s["warping_error_mean"] < 0.02


def test_bad_input(photo):
    clip = translated_clip(photo, 1)
    with pytest.raises(ToonFaceError, match="no video frames"):
        warping_error([], [])
    with pytest.raises(ToonFaceError, match="differ in length"):
        warping_error(clip, clip[:-1])
    with pytest.raises(ToonFaceError, match="aspect ratio"):
        warping_error(clip, [f[:, :W // 2] for f in clip])
    with pytest.raises(ToonFaceError, match="input frame 1"):
        warping_error([clip[0], clip[1][:64]], clip[:2])
    with pytest.raises(ToonFaceError, match="uint8"):
        warping_error(clip, [f.astype(np.float32) for f in clip])
    with pytest.raises(ToonFaceError, match="flow_max_side"):
        WarpingErrorAccumulator(flow_max_side=4)
    one = warping_error(clip[:1], clip[:1])["summary"]
    assert one["frame_pairs"] == 0 and one["warping_error_mean"] is None


def test_fixture_scene_pan():
    from evaluation.rgb import read_rgb

    scene = read_rgb(fixtures_dir("scenes", "wb_london1.jpg"))
    clip = translated_clip(scene, 5, y=scene.shape[0] // 3, x=scene.shape[1] // 3)
    r = warping_error(clip, clip)
    s = r["summary"]
    unwarped = np.mean([np.abs(a.astype(float) - b).mean() / 255 for a, b in zip(clip, clip[1:])])
    assert s["warping_error_mean"] < 0.01 and s["warping_error_mean"] < 0.2 * unwarped
    still = warping_error(clip, [clip[0]] * len(clip))["summary"]   # an output that froze
    assert still["warping_error_mean"] > 5 * s["warping_error_mean"]
