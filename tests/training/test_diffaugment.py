"""DiffAugment (training/diffaugment.py): each transform checked against what it must be, by
search over its few possible parameters (numpy), gradients, and the trainer's use of it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training import diffaugment as A
from utils.errors import ToonFaceError


def _images(c=3, seed=0, b=6, h=16, w=24):
    return torch.rand((b, c, h, w), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_policy_parsing_orders_and_refuses_unknown_names():
    assert A.parse_policy("") == () and A.parse_policy(None) == ()
    assert A.parse_policy("cutout, color,translation,color") == ("color", "translation", "cutout")
    with pytest.raises(ValueError, match="'colour'"):
        A.parse_policy("colour")
    x = _images()
    assert A.diff_augment(x, ()) is x


def _shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = img[y - dy, x - dx], zeros outside (the oracle of `translation`)."""
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    yi, xi = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[..., ys, xs] = img[..., yi, xi]
    return out


def test_translation_is_a_whole_pixel_shift_within_an_eighth():
    torch.manual_seed(1)
    x = _images()
    out = A.translation(x).numpy()
    seen = set()
    for i in range(x.shape[0]):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-3, 4)
                   if np.array_equal(out[i], _shift(x[i].numpy(), dy, dx))]
        assert len(matches) == 1, f"image {i}: {matches}"
        seen.add(matches[0])
    assert len(seen) > 1                          # each image draws its own shift


def test_cutout_zeroes_one_half_size_square_and_keeps_the_rest():
    torch.manual_seed(2)
    x = _images() + 3.0                           # no zeros of its own
    out = A.cutout(x).numpy()
    for i in range(x.shape[0]):
        zero = (out[i] == 0).all(axis=0)
        assert ((out[i] == 0) == zero).all()      # every channel cut alike
        ys, xs = np.nonzero(zero)
        assert zero.sum() > 0
        box = zero[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        assert box.all() and box.shape[0] <= 8 and box.shape[1] <= 12   # a rectangle, clipped square
        assert (box.shape[0] == 8 or ys.min() == 0 or ys.max() == 15)
        assert (box.shape[1] == 12 or xs.min() == 0 or xs.max() == 23)
        np.testing.assert_array_equal(out[i][:, ~zero], x[i].numpy()[:, ~zero])


def test_color_is_an_affine_map_per_image_and_leaves_gray_saturation_alone():
    torch.manual_seed(3)
    gray = _images(c=1).double()
    out = A.color(gray)
    for i in range(gray.shape[0]):
        a, b = np.polyfit(gray[i].flatten().numpy(), out[i].flatten().numpy(), 1)
        np.testing.assert_allclose(a * gray[i].numpy() + b, out[i].numpy(), atol=1e-12)
        assert 0.5 - 1e-9 <= a <= 1.5 + 1e-9      # contrast factor; saturation is 1 on one channel
    rgb = _images().double()
    # brightness, saturation and contrast keep the image's mean colour direction: a gray
    # (equal-channel) image stays gray
    flat = rgb[:, :1].repeat(1, 3, 1, 1)
    got = A.color(flat)
    torch.testing.assert_close(got[:, 0], got[:, 1])
    torch.testing.assert_close(got[:, 0], got[:, 2])


def test_gradients_pass_through_every_transform():
    x = _images(b=2, h=8, w=8).double().requires_grad_()

    def f(t):
        torch.manual_seed(4)
        return A.diff_augment(t, ("color", "translation", "cutout"))

    assert torch.autograd.gradcheck(f, (x,))


def test_config_accepts_a_policy_and_refuses_a_typo():
    from training.config import resolve

    cfg = resolve("train", {"diffaugment": "translation,color"})
    assert cfg.flat()["diffaugment"] == "translation,color"
    with pytest.raises(ToonFaceError, match="--diffaugment: unknown DiffAugment transform 'flip'"):
        resolve("train", {"diffaugment": "flip"})
    assert resolve("train", {}).loss.diffaugment == ""   # off by default: the recipe


def test_augmented_run_resumes_bitwise_and_differs_from_the_recipe(tmp_path, demo_data):
    from models import checkpoint as ckpt
    from tests.training.test_loop import tiny_cfg
    from training.loop import train

    common = dict(init="none", save_every=2, sample_every=2, keep_ckpt=1, w3=0, w4=0)
    aug = dict(common, diffaugment="color,translation,cutout")
    full = train(tiny_cfg("train", tmp_path, demo_data, name="full", total_iter=3, **aug))
    train(tiny_cfg("train", tmp_path, demo_data, name="part", total_iter=2, **aug))
    part = train(tiny_cfg("train", tmp_path, demo_data, name="part", total_iter=3, resume=True, **aug))
    plain = train(tiny_cfg("train", tmp_path, demo_data, name="plain", total_iter=3, **common))
    a, b, c = (ckpt.load_checkpoint_file(Path(r["run_dir"]) / "ckpt" / "latest.pt")
               for r in (full, part, plain))
    for key in ("G", "Ds", "Dt"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    assert any(not torch.equal(a["Dt"][n], c["Dt"][n]) for n in a["Dt"])
    assert json.loads((Path(full["run_dir"]) / "config.json").read_text())["diffaugment"] == \
        "color,translation,cutout"
