"""studies/style_settling.py: where a statistic settles, on hand-made rows."""
from studies.style_settling import settled_at


def rows(changes):
    return [{"step": 200 * (i + 1), "flatness_change": c} for i, c in enumerate(changes)]


def test_settled_from_the_first_step_after_which_every_change_is_small():
    assert settled_at(rows([None, 0.30, 0.02, 0.01]), "flatness", 0.05) == 600
    assert settled_at(rows([None, 0.01, 0.02, 0.01]), "flatness", 0.05) == 400
    # a late jump un-settles it; one small change alone is not enough
    assert settled_at(rows([None, 0.01, 0.02, -0.20]), "flatness", 0.05) is None
    assert settled_at(rows([None, 0.30, 0.01]), "flatness", 0.05) is None
