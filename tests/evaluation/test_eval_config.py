"""EvalConfig: test.py's flat options land in their groups, and the defaults are test.py's."""
from __future__ import annotations

import pytest

from evaluation.config import EvalConfig, GeneratorChoice, PhotoChoice, Scoring


def test_flat_options_land_in_their_groups():
    c = EvalConfig.of(model_version=3, step=2, num=4, metrics=False, workers=1, out="o", gf_eps=0.01)
    assert c.generator == GeneratorChoice(model_version=3, step=2)
    assert c.photos == PhotoChoice(num=4)
    assert c.scoring == Scoring(metrics=False, workers=1)
    assert (c.out, c.gf_eps, c.device, c.record) == ("o", 0.01, "auto", True)
    with pytest.raises(TypeError, match="'batch'"):
        EvalConfig.of(batch=3)


def test_the_defaults_are_test_py_s():
    """Every option test.py has and EvalConfig knows; test.py's own default for each (its
    --workers default 2 is the command line's, the library's 0 runs the judge in-process)."""
    import test as test_cli

    flat = {}
    for group in (EvalConfig(), EvalConfig().generator, EvalConfig().photos, EvalConfig().scoring):
        flat.update({k: v for k, v in vars(group).items()
                     if k not in ("generator", "photos", "scoring")})
    for param in test_cli.main.params:
        if param.name in flat and param.name not in ("workers",):
            assert param.default == flat[param.name], param.name
    known = set(flat) | {"outputs"}
    assert {p.name for p in test_cli.main.params} - {"help"} <= known
