"""Generator files that are not sane are refused on load, one line naming the problem
(models/checkpoint.py): a generator_config outside plausible bounds, weights that do not fit
it, NaN or infinite weights, an output on a test photo that is not an image."""
from __future__ import annotations

import time

import pytest
import torch

from models.checkpoint import load_generator, save_generator, style_name_problem
from tests.inference import make_generator
from utils.errors import ToonFaceError


def _one_line(path) -> str:
    with pytest.raises(ToonFaceError) as e:
        load_generator(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    return str(e.value)


def _saved(path, G, **changes):
    save_generator(path, G, image_size=64, step=1, kind="train")
    obj = torch.load(path, weights_only=True)
    for k, v in changes.items():
        obj[k] = v
    torch.save(obj, path)
    return path


def test_generator_config_out_of_bounds_is_refused_before_allocating(tmp_path):
    G = make_generator(1)
    for key, value in (("num_blocks", 100000), ("channels", 10 ** 6), ("channels", 0),
                       ("num_blocks", -1), ("num_blocks", 4.0), ("channels", True)):
        cfg = {"channels": 32, "num_blocks": 4, "output_act": "none", "upsample": "tf", key: value}
        path = _saved(tmp_path / "g.pt", G, generator_config=cfg)
        t = time.perf_counter()
        msg = _one_line(path)
        assert f"generator_config {key} {value!r} is not plausible" in msg
        assert time.perf_counter() - t < 5  # nothing of the size asked for was built
    cfg = {"channels": 32, "num_blocks": 4, "output_act": "relu6", "upsample": "tf"}
    assert "output_act 'relu6' is not one of none, clip, tanh" in _one_line(
        _saved(tmp_path / "g.pt", G, generator_config=cfg))


def test_weights_that_do_not_fit_name_the_tensors(tmp_path):
    state = make_generator(1).state_dict()
    state["conv0.kernel"] = state.pop("conv0.weight")
    msg = _one_line(_saved(tmp_path / "g.pt", make_generator(1), generator=state))
    assert "do not fit its generator_config (channels 32, num_blocks 4" in msg
    assert "missing conv0.weight" in msg and "unexpected conv0.kernel" in msg
    state = make_generator(1).state_dict()
    state["out.bias"] = torch.zeros(4)
    assert "out.bias has shape (4,), expected (3,)" in _one_line(
        _saved(tmp_path / "g.pt", make_generator(1), generator=state))


def test_nan_weights_and_overflowing_outputs_are_refused(tmp_path):
    G = make_generator(1)
    with torch.no_grad():
        G.blocks[0].conv1.weight[0, 0, 0, 0] = float("nan")
    msg = _one_line(_saved(tmp_path / "nan.pt", G))
    assert "1 NaN or infinite value(s) (in blocks.0.conv1.weight)" in msg
    G = make_generator(1)
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(1e6)
    assert "output on a test photo" in _one_line(_saved(tmp_path / "huge.pt", G))
    good = _saved(tmp_path / "good.pt", make_generator(1))
    assert load_generator(good)[1]["step"] == 1


@pytest.mark.parametrize("name, ok", [("Hayao", True), ("Studio Ghibli", True), ("été", True),
                                      ("a=b", False), ("x,y", False), (" pad", False),
                                      ("pad ", False), ("", False), ("bell\x07", False),
                                      ("esc\x1b[2J", False)])
def test_style_names_that_style_can_select(name, ok):
    assert (style_name_problem(name) is None) == ok
