"""studies/style_settling.py: a level's drift and swing, and where it settles, on hand-made rows."""
import numpy as np
import pytest

from studies.style_settling import drift_and_swing, level_settled_at


def test_drift_and_swing_match_numpy_polyfit():
    steps = [250, 500, 750, 1000]
    values = [1477.0, 1678.0, 1995.0, 1332.0]
    slope, intercept = np.polyfit(steps, values, 1)
    residuals = np.asarray(values) - (slope * np.asarray(steps) + intercept)
    drift, swing = drift_and_swing(steps, values)
    assert drift == pytest.approx(slope * 750 / np.mean(values))
    assert swing == pytest.approx(residuals.std() / np.mean(values))


def test_a_ramp_drifts_by_its_rise_and_does_not_swing():
    drift, swing = drift_and_swing([0, 100, 200], [1.0, 2.0, 3.0])
    assert drift == pytest.approx(2.0 / 2.0)  # rose by 2 over the span, mean 2
    assert swing == pytest.approx(0.0, abs=1e-12)


def test_drift_needs_two_points_and_a_nonzero_mean():
    with pytest.raises(ValueError):
        drift_and_swing([250], [1.0])
    with pytest.raises(ValueError):
        drift_and_swing([250, 500], [1.0, -1.0])


def rows(values):
    return [{"step": 250 * (i + 1), "flatness": v} for i, v in enumerate(values)]


def test_a_rise_then_a_plateau_settles_at_the_first_window_on_the_plateau():
    values = [0.2, 0.6, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert level_settled_at(rows(values), "flatness", 0.05, 4) == 250 * 6
    # a late climb un-settles it
    assert level_settled_at(rows(values + [1.5]), "flatness", 0.05, 4) is None


def test_an_alternating_swing_in_an_odd_window_is_swing_not_drift():
    # +-20% from one saved generator to the next: every step-to-step change is 40-50%, yet the
    # level (a window of 3 holds a, b, a) does not move
    values = [1.2, 0.8, 1.2, 0.8, 1.2, 0.8]
    drift, swing = drift_and_swing([250, 500, 750], values[:3])
    assert drift == pytest.approx(0.0, abs=1e-12) and swing > 0.15
    assert level_settled_at(rows(values), "flatness", 0.05, 3) == 750


def test_a_steady_climb_never_settles_and_a_flat_line_settles_at_the_first_window():
    assert level_settled_at(rows([1.0 + 0.1 * i for i in range(8)]), "flatness", 0.05, 4) is None
    assert level_settled_at(rows([1.0] * 6), "flatness", 0.05, 3) == 750
