"""inference.temporal: the flow-guided temporal stabiliser of cartoonize.py --temporal."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from evaluation.warping import warping_error
from inference.temporal import TemporalStabilizer
from utils.errors import ToonFaceError

S = 96


@pytest.fixture(scope="module")
def photo():
    # mid-range values, so the +-c flicker below is never clipped
    return (40 + data.astronaut().astype(np.float32) * (160 / 255)).astype(np.uint8)


def pan(photo, n: int, k: int = 2):
    """A window moving k px per frame over a real photo (the astronaut's face and suit)."""
    return [np.ascontiguousarray(photo[40:40 + S, 150 + t * k:150 + t * k + S]) for t in range(n)]


def flicker(frames, c: int):
    """+c on even frames, -c on odd ones: a per-frame result that flickers by 2c."""
    return [np.clip(f.astype(int) + (c if i % 2 == 0 else -c), 0, 255).astype(np.uint8)
            for i, f in enumerate(frames)]


def run(stab: TemporalStabilizer, inputs, outputs):
    return [stab(i, o) for i, o in zip(inputs, outputs)]


def test_static_clip_gives_the_per_frame_output_exactly(photo):
    still = [photo[:S, :S].copy() for _ in range(5)]
    cartoon = np.roll(still[0], 7, axis=1)  # any deterministic per-frame result
    outs = run(TemporalStabilizer(0.9), still, [cartoon.copy() for _ in still])
    for o in outs:
        np.testing.assert_array_equal(o, cartoon)


def test_static_input_is_an_exponential_average_of_the_outputs(photo):
    """Equal inputs: zero flow, every pixel trusted: S_t = O_t + s (S_{t-1} - O_t), by hand."""
    still = [photo[:S, :S].copy() for _ in range(4)]
    outs_in = [np.full((S, S, 3), v, np.uint8) for v in (100, 140, 100, 140)]
    outs = run(TemporalStabilizer(0.5), still, outs_in)
    expect = [100.0]
    for v in (140, 100, 140):
        expect.append(v + 0.5 * (expect[-1] - v))           # 120, 110, 125
    assert [int(o[0, 0, 0]) for o in outs] == [round(e) for e in expect]
    assert all((o == o[0, 0]).all() for o in outs)


@pytest.mark.parametrize("strength", [0.5, 0.7])
def test_flicker_on_a_pan_is_damped_as_an_exponential_average(photo, strength):
    """An alternating +-c flicker passed through S_t = O_t + s (W(S_{t-1}) - O_t) settles at
    amplitude c (1 - s) / (1 + s): the warping error above the input's floor shrinks by that
    factor (1/3 at 0.5, 0.18 at 0.7), apart from the first frames and the pixels entering."""
    inputs = pan(photo, 12)
    per_frame = flicker(inputs, 12)
    stable = run(TemporalStabilizer(strength), inputs, per_frame)
    a = warping_error(inputs, per_frame)["summary"]
    b = warping_error(inputs, stable)["summary"]
    floor = a["warping_error_input_mean"]
    assert a["warping_error_mean"] > floor + 20 / 255
    factor = (1 - strength) / (1 + strength)
    excess = (b["warping_error_mean"] - floor) / (a["warping_error_mean"] - floor)
    assert excess < factor + 0.12, (excess, factor)


def test_no_ghost_after_a_cut(photo):
    """A cut to unrelated content: nothing of the previous shot is blended in."""
    a = [photo[:S, :S].copy()] * 3
    b = photo[300:300 + S, 300:300 + S].copy()
    outs_a = [np.roll(f, 5, axis=0) for f in a]
    out_b = np.roll(b, 5, axis=0)
    stab = TemporalStabilizer(0.8)
    run(stab, a, outs_a)
    after = stab(b, out_b)
    diff = np.abs(after.astype(int) - out_b)
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 3, (diff.mean(), diff.max())


def test_no_ghost_where_a_moving_object_uncovers_the_background():
    """A flat red square slides 4 px per frame over a static textured background; the
    'cartoon' is the frame itself. Pixels the square just uncovered fail the flow check or the
    visibility term, so they show the background, not a trail of red."""
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, (S // 4, S // 4, 3)).astype(np.uint8)
    import cv2

    bg = cv2.resize(base, (S, S), interpolation=cv2.INTER_CUBIC)
    frames = []
    for t in range(8):
        f = bg.copy()
        f[30:60, 10 + 4 * t:40 + 4 * t] = (230, 20, 20)
        frames.append(f)
    outs = run(TemporalStabilizer(0.8), frames, frames)
    uncovered = (slice(30, 60), slice(10 + 4 * 6, 10 + 4 * 7))    # square left it at frame 7
    err = np.abs(outs[7][uncovered].astype(int) - frames[7][uncovered]).mean()
    trail = np.abs(frames[6][uncovered].astype(int) - frames[7][uncovered]).mean()
    assert trail > 60 and err < 0.1 * trail, (err, trail)


def test_strength_zero_is_off_and_bad_values_are_one_line(photo):
    inputs = pan(photo, 3)
    outs = flicker(inputs, 10)
    for a, b in zip(run(TemporalStabilizer(0.0), inputs, outs), outs):
        assert a is b
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ToonFaceError, match="temporal strength"):
            TemporalStabilizer(bad)
    with pytest.raises(ToonFaceError, match="at least 16"):
        TemporalStabilizer(0.5, flow_max_side=8)
    stab = TemporalStabilizer(0.5)
    with pytest.raises(ValueError, match="one"):
        stab(inputs[0], outs[0][:50])
