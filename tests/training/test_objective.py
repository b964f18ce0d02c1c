"""The trainer's own objective (training/objective.py), checked against the recipe composed by
hand from independent pieces: what each term is, which are computed, what is shared."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from losses.registry import TERM_BY_NAME, TERMS
from models.guided_filter import guided_filter
from training.objective import Objective

B, H, W = 2, 16, 16


class CountingVGG(nn.Module):
    """A stand-in feature extractor (a fixed conv) that counts its forwards and batch sizes."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.conv(x)


class MeanDisc(nn.Module):
    """Logit map = 0.5 + channel mean, so every LSGAN value is known in closed form."""

    def forward(self, x):
        return 0.5 + x.mean(dim=1, keepdim=True)


class FlatStructure:
    """Structure operator stand-in: every image filled with its mean colour."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()


def batch():
    g = torch.Generator().manual_seed(1)
    photo = torch.rand(B, 3, H, W, generator=g) * 2 - 1
    raw = (torch.rand(B, 3, H, W, generator=g) * 2 - 1).requires_grad_()
    lmap = torch.zeros(B, 2, H, W)
    lmap[:, 0, 6:9, 3:13] = 1.0
    return photo, raw, {"lmap": lmap, "valid": torch.tensor([True, False])}


def objective(weights, vgg=None, structure=None):
    discs = {"surface": MeanDisc(), "texture": MeanDisc()}
    return Objective(weights, discs, vgg, structure, 1e-2, torch.device("cpu"))


def test_each_term_is_the_recipe_composed_by_hand():
    from losses.landmark import landmark_loss

    photo, raw, b = batch()
    vgg, struct = CountingVGG(), FlatStructure()
    w = torch.tensor([0.3, 0.5, 0.2])
    recipe = [t.name for t in TERMS if t.network is None]  # the face-network terms: below
    obj = objective({n: 1.0 for n in recipe}, vgg, struct)
    terms, state = obj.generator_terms(photo, raw, b, w, face=True)
    assert list(terms) == recipe
    # the constant targets (structure, then photo) run in ONE batched forward, the output in one
    assert vgg.calls == [2 * B, B] and struct.calls == 1

    out = guided_filter(photo, raw, 1, 1e-2)                      # the output the terms see
    torch.testing.assert_close(state.output, out)
    dy, dx = out[:, :, 1:] - out[:, :, :-1], out[:, :, :, 1:] - out[:, :, :, :-1]
    torch.testing.assert_close(terms["tv"], (dy.pow(2).mean() + dx.pow(2).mean()) / (3 * H * W))
    surf = guided_filter(out, out, 5, 0.2)
    torch.testing.assert_close(terms["surface"], (0.5 + surf.mean(1) - 1).pow(2).mean())
    gray = (w.view(1, 3, 1, 1) / w.sum() * out).sum(1)
    torch.testing.assert_close(terms["texture"], (0.5 + gray - 1).pow(2).mean())
    f_out = vgg.conv(out)
    c, h, ww = f_out.shape[1:]
    n = f_out.numel() * c * h * ww
    torch.testing.assert_close(terms["content"], (vgg.conv(photo) - f_out).abs().sum() / n)
    torch.testing.assert_close(terms["structure"], (vgg.conv(struct(out)) - f_out).abs().sum() / n)
    torch.testing.assert_close(terms["landmark"], landmark_loss(out, photo, b["lmap"], b["valid"]))
    assert float(state.logged["landmark/found"]) == 0.5

    total = obj.weighted_sum(terms)
    torch.testing.assert_close(total, sum(terms.values()))
    total.backward()
    assert raw.grad is not None and raw.grad.abs().sum() > 0


def test_zero_weight_terms_are_never_computed():
    photo, raw, b = batch()

    def boom(*a, **k):
        raise AssertionError("computed a term of weight 0")

    obj = objective({"tv": 2.0, "surface": 0.0, "texture": 0.0, "content": 0.0,
                     "structure": 0.0, "landmark": 0.0}, vgg=None, structure=None)
    obj.discriminators = {"surface": boom, "texture": boom}
    terms, _ = obj.generator_terms(photo, raw, b, torch.ones(3))
    assert list(terms) == ["tv"] and obj.adversarial == []
    torch.testing.assert_close(obj.weighted_sum(terms), 2.0 * terms["tv"])


def test_content_alone_runs_one_target_forward_and_no_superpixels():
    photo, raw, b = batch()
    vgg = CountingVGG()
    obj = objective({"content": 1.0}, vgg, structure=None)
    terms, _ = obj.generator_terms(photo, raw, b, torch.ones(3))
    assert list(terms) == ["content"] and vgg.calls == [B, B]


def test_landmark_is_skipped_on_scenery_batches():
    photo, raw, b = batch()
    obj = objective({"tv": 1.0, "landmark": 5.0})
    terms, _ = obj.generator_terms(photo, raw, {}, torch.ones(3), face=False)
    assert list(terms) == ["tv"]


def test_discriminator_terms_by_hand():
    photo, raw, b = batch()
    obj = objective({"surface": 1.0, "texture": 1.0})
    w = torch.tensor([0.3, 0.5, 0.2])
    _, state = obj.generator_terms(photo, raw, b, w)
    cartoon = torch.rand(B, 3, H, W) * 2 - 1
    fake = state.output.detach()
    d, stats = obj.discriminator_terms(state, cartoon, fake)
    s_real, s_fake = 0.5 + guided_filter(cartoon, cartoon, 5, 0.2).mean(1), 0.5 + guided_filter(fake, fake, 5, 0.2).mean(1)
    torch.testing.assert_close(d["surface"], 0.5 * ((s_real - 1).pow(2).mean() + s_fake.pow(2).mean()))
    gray = lambda x: (w.view(1, 3, 1, 1) / w.sum() * x).sum(1)  # noqa: E731
    t_real, t_fake = 0.5 + gray(cartoon), 0.5 + gray(fake)
    torch.testing.assert_close(d["texture"], 0.5 * ((t_real - 1).pow(2).mean() + t_fake.pow(2).mean()))
    torch.testing.assert_close(stats["D/surface_real"], s_real.mean())
    torch.testing.assert_close(stats["D/texture_fake"], t_fake.mean())


def test_registry_flags_names_and_presets_are_consistent():
    flags = [t.flag for t in TERMS if t.flag]
    assert sorted(flags) == [f"w{i}" for i in range(6)]        # the seed's w0..w5, no more
    assert len({t.name for t in TERMS}) == len(TERMS)
    assert len({t.key for t in TERMS}) == len(TERMS)
    # terms the seed never had: key w_<name>, off by default in every preset
    for t in TERMS:
        if not t.flag:
            assert t.key == f"w_{t.name}" and set(t.defaults.values()) == {0.0}
    for t in TERMS:
        assert set(t.defaults) == {"code", "paper"} and all(v >= 0 for v in t.defaults.values())
    # the seed's meaning of w0..w4 and white-box's code weights
    assert [(TERM_BY_NAME[n].flag, TERM_BY_NAME[n].defaults["code"]) for n in
            ("tv", "surface", "texture", "content", "structure")] == [
        ("w0", 1e4), ("w1", 1e-1), ("w2", 1.0), ("w3", 2e2), ("w4", 2e2)]


@pytest.mark.parametrize("flag", ["w5", "w-landmark", "w_landmark"])
def test_a_weight_flag_reaches_its_term(flag):
    from training.config import resolve

    cfg = resolve("train", {"w5": 3.5})
    assert cfg.loss.weights["landmark"] == 3.5 and cfg.loss.active()["landmark"] == 3.5
    import train
    from click.testing import CliRunner

    out = CliRunner().invoke(train.main, [f"--{flag}", "3.5", "--dry-run"])
    assert out.exit_code == 0 and "* w5                   3.5" in out.output
