"""--precision bf16 against fp32 through the real training step (training.loop.prepare_train).

Two loops with the same seed start from the same weights and read the same batches with the
same texture weights, so step 1's G terms are computed on identical weights and data in both
precisions. Step 1's D terms come after one Adam update of G, which is lr * sign(grad) for
every parameter in both precisions (Adam's first step), so they too compare (near-)identical
weights. Every term must agree within 2%; a short run's curves must track fp32's.
"""
from __future__ import annotations

import pytest
import torch

from training.config import resolve

TERM_RTOL = 0.02      # bf16 vs fp32, same batch and weights (every G and D term)
TOTAL_RTOL = 0.05     # a few steps later: G/total and D/total still track fp32's
CURVE_RTOL = 0.25     # ... and every single term (small terms such as TV wander more)
STEPS = 4


def run_steps(tmp_path, demo_data, precision: str, steps: int) -> list[dict[str, float]]:
    from training.loop import prepare_train

    photos, cartoons = demo_data
    cfg = resolve("train", {
        "photo_dir": str(photos), "cartoon_dir": str(cartoons), "vgg_weights": "random",
        "init": "none", "image_size": 32, "batch_size": 4, "workers": 0, "holdout": 0,
        "progress": False, "tensorboard": False, "checkpoints_dir": str(tmp_path / "ck"),
        "name": precision, "total_iter": 1000, "precision": precision, "w5": 1.0})
    run = prepare_train(cfg)
    seeded_generator(run.G, run.session.to_device(run.sample["image"]))
    curves = []
    for _ in range(steps):
        values = run.run_step()
        curves.append({k: float(v) for k, v in values.items()})
    return curves


@torch.no_grad()
def seeded_generator(G: torch.nn.Module, photos: torch.Tensor, out_std: float = 0.5) -> None:
    """A generator with a photo-sized output (the default init's output is ~1e-4 of it, which
    would make TV, content and structure degenerate): seeded Kaiming weights, last conv
    scaled so the output's std is ``out_std``. Deterministic, so both loops get the same G."""
    torch.manual_seed(1234)
    convs = [m for m in G.modules() if isinstance(m, torch.nn.Conv2d)]
    for m in convs:
        torch.nn.init.kaiming_normal_(m.weight, a=0.2)
        torch.nn.init.zeros_(m.bias)
    convs[-1].weight.mul_(out_std / G(photos).std())


@pytest.fixture(scope="module")
def curves(tmp_path_factory, demo_data):
    tmp = tmp_path_factory.mktemp("precision")
    return {p: run_steps(tmp, demo_data, p, STEPS) for p in ("fp32", "bf16")}


LOSS_TERMS = ("G/tv", "G/surface", "G/texture", "G/content", "G/structure", "G/landmark",
              "G/total", "D/surface", "D/texture", "D/total")


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def test_every_term_is_computed(curves):
    missing = [k for k in LOSS_TERMS if k not in curves["fp32"][0]]
    assert not missing, f"terms missing from run_step's values: {missing}"


@pytest.mark.parametrize("term", LOSS_TERMS)
def test_bf16_term_within_2_percent_of_fp32(curves, term):
    a, b = curves["bf16"][0][term], curves["fp32"][0][term]
    assert torch.isfinite(torch.tensor(a)), f"{term} is {a} in bf16"
    assert rel(a, b) <= TERM_RTOL, f"{term}: bf16 {a:.6g} vs fp32 {b:.6g} ({100 * rel(a, b):.2f}%)"


def test_bf16_curves_track_fp32(curves):
    bad = []
    for step, (a, b) in enumerate(zip(curves["bf16"], curves["fp32"]), start=1):
        for term in LOSS_TERMS:
            tol = TOTAL_RTOL if term.endswith("total") else CURVE_RTOL
            if rel(a[term], b[term]) > tol:
                bad.append(f"step {step} {term}: bf16 {a[term]:.5g} fp32 {b[term]:.5g}")
    assert not bad, "bf16 drifts from fp32:\n" + "\n".join(bad)
    # the same direction over the run, for the terms that move
    for term in ("G/total", "D/total"):
        d32 = curves["fp32"][-1][term] - curves["fp32"][0][term]
        d16 = curves["bf16"][-1][term] - curves["bf16"][0][term]
        if abs(d32) > 0.05 * abs(curves["fp32"][0][term]):
            assert d16 * d32 > 0, f"{term} moves {d32:+.4g} in fp32 but {d16:+.4g} in bf16"
