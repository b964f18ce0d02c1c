"""The face-network terms (--w-landmark-regressor, --w-identity) in the trainer: flags in the
config and --dry-run, the objective's shared choice of faces, bitwise --resume, a run folder
written by main before these terms still resuming, and bad input as one line before any run
folder exists."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from losses import registry
from models import checkpoint as ckpt
from tests.conftest import ROOT, requires_dlib
from training.config import Config, resolve
from utils.errors import ToonFaceError

MAIN_RUN = ROOT / "tests" / "data" / "main-c3782c3"
TINY = {"image_size": 32, "batch_size": 2, "workers": 0, "progress": False, "holdout": 0,
        "tensorboard": False, "log_every": 1, "sample_every": 100}
FACE_TERMS = [t for t in registry.TERMS if t.network]


def cfg_for(tmp_path, demo_data, explicit=None, **over):
    photos, cartoons = demo_data
    params = {**TINY, "photo_dir": str(photos), "cartoon_dir": str(cartoons), "vgg_weights": "random",
              "init": "none", "checkpoints_dir": str(tmp_path / "ck"), **over}
    return resolve("train", params, explicit)


def network_or_skip(name: str):
    try:
        return registry.NETWORKS[name]()
    except (ImportError, ToonFaceError) as exc:
        pytest.skip(f"the {name} network is not installed here: {exc}")


# ------------------------------------------------------------------------ config and CLI
@pytest.mark.parametrize("term", FACE_TERMS, ids=lambda t: t.name)
def test_flags_in_config_dry_run_and_help(term):
    import train

    flag = "--" + term.key.replace("_", "-")
    assert resolve("train", {}).loss.weights[term.name] == 0.0          # off by default
    cfg = resolve("train", {term.key: 0.5, "face_crops": 3})
    assert cfg.loss.active()[term.name] == 0.5 and cfg.flat()[term.key] == 0.5
    assert cfg.flat()["face_crops"] == 3
    for spelling in (flag, "--" + term.key):
        out = CliRunner().invoke(train.main, [spelling, "0.5", "--face-crops", "3", "--dry-run"])
        assert out.exit_code == 0, out.output
        assert re.search(rf"^\* {term.key}\s+0\.5$", out.output, re.M)
        assert re.search(r"^\* face_crops\s+3$", out.output, re.M)
    plain = CliRunner().invoke(train.main, ["--dry-run"])
    assert re.search(rf"^  {term.key}\s+0\.0$", plain.output, re.M)
    assert flag in CliRunner().invoke(train.main, ["--help"]).output
    bad = CliRunner().invoke(train.main, [flag, "-1", "--dry-run"])
    assert bad.exit_code == 2 and flag in bad.output


def test_a_config_without_the_new_keys_reads_them_as_zero():
    flat = json.loads((MAIN_RUN / "config.json").read_text())
    assert not any(t.key in flat for t in FACE_TERMS)
    cfg = Config.from_flat(flat)
    assert all(cfg.loss.weights[t.name] == 0.0 for t in FACE_TERMS)
    assert cfg.loss.weights["landmark"] == flat["w5"]
    assert not any(t.name in cfg.loss.active() for t in FACE_TERMS)


# ------------------------------------------------------------------------ the objective
class CountingMesh(torch.nn.Module):
    """FaceMeshNet's interface: points from the crop's pooled colours; counts its crops."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.base = torch.rand(468, 2, generator=g) * 150 + 21
        self.mix = torch.randn(192, 936, generator=g)
        self.crops = 0

    def forward(self, crops):
        self.crops += crops.shape[0]
        pooled = torch.nn.functional.adaptive_avg_pool2d(crops, 8).flatten(1)
        pts = self.base[None] + (pooled @ self.mix).view(-1, 468, 2)
        return torch.cat([pts, torch.zeros(*pts.shape[:2], 1)], -1), torch.full((crops.shape[0],), 5.0)


def face_batch(b=4, size=32):
    g = torch.Generator().manual_seed(3)
    photo = torch.rand(b, 3, size, size, generator=g) * 2 - 1
    raw = (photo + 0.2 * torch.rand(b, 3, size, size, generator=g)).requires_grad_()
    pts = torch.rand(b, 468, 2, generator=g) * 16 + 8
    pts[0] = float("nan")
    valid = torch.tensor([False] + [True] * (b - 1))
    return photo, raw, {"lmap": torch.zeros(b, 2, size, size), "valid": valid, "points": pts}


def test_objective_runs_the_regressor_on_the_first_face_crops_found_faces():
    from losses.landmark_regressor import landmark_regressor_loss
    from training.objective import Objective

    photo, raw, batch = face_batch()
    mesh = CountingMesh()
    obj = Objective({"landmark_regressor": 1.0}, {}, None, None, 1e-2, torch.device("cpu"),
                    networks={"facemesh": mesh}, face_crops=2)
    terms, state = obj.generator_terms(photo, raw, batch, torch.ones(3))
    assert state.face_rows().tolist() == [1, 2] and mesh.crops == 4     # 2 faces, both sides
    expected, _ = landmark_regressor_loss(state.output, photo, batch["points"], batch["valid"],
                                          CountingMesh(), faces=2)
    torch.testing.assert_close(terms["landmark_regressor"], expected)
    assert float(state.logged["landmark_regressor/faces"]) == 2
    terms["landmark_regressor"].backward()
    assert raw.grad.abs().sum() > 0
    # not on scenery batches, and a term of weight 0 never runs its network
    mesh.crops = 0
    terms, _ = obj.generator_terms(photo, raw, batch, torch.ones(3), face=False)
    assert terms == {} and mesh.crops == 0
    idle = Objective({"tv": 1.0, "landmark_regressor": 0.0}, {}, None, None, 1e-2,
                     torch.device("cpu"), networks={"facemesh": mesh})
    assert list(idle.generator_terms(photo, raw, batch, torch.ones(3))[0]) == ["tv"]
    assert mesh.crops == 0
    with pytest.raises(ValueError, match="facemesh"):
        Objective({"landmark_regressor": 1.0}, {}, None, None, 1e-2, torch.device("cpu"))


# ---------------------------------------------------------------------------- --resume
@pytest.mark.parametrize("term", FACE_TERMS, ids=lambda t: t.name)
def test_terms_are_bitwise_identical_across_resume(tmp_path, demo_data, term):
    from training.loop import train

    network_or_skip(term.network)
    # 64 px: the demo faces at 32 px are too blurred for FaceMesh to see them on every photo
    opts = dict(save_every=2, keep_ckpt=1, w3=0, w4=0, w5=0, face_crops=1, image_size=64,
                **{term.key: 1.0})
    full = train(cfg_for(tmp_path, demo_data, name="full", total_iter=3, **opts))
    train(cfg_for(tmp_path, demo_data, name="part", total_iter=2, **opts))
    part = train(cfg_for(tmp_path, demo_data, name="part", total_iter=3, resume=True, **opts))
    a, b = (ckpt.load_checkpoint_file(Path(r["run_dir"]) / "ckpt" / "latest.pt") for r in (full, part))
    for key in ("G", "Ds", "Dt"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    lines = [[json.loads(x) for x in (Path(r["run_dir"]) / "stats.jsonl").read_text().splitlines()]
             for r in (full, part)]
    key = f"G/{term.name}"
    assert [x[key] for x in lines[0]] == [x[key] for x in lines[1]]    # every step, bitwise
    assert all(x[key] > 0 for x in lines[0]) and all(x[f"{term.name}/faces"] == 1 for x in lines[0])


def checkpoint_structure(state: dict) -> dict:
    """What tests/data/main-c3782c3/checkpoint_manifest.json records of a checkpoint."""
    return {"keys": sorted(state), "G": sorted(state["G"]), "Ds": sorted(state["Ds"]),
            "Dt": sorted(state["Dt"]),
            "opt_G": {"state_len": len(state["opt_G"]["state"]),
                      "param_groups": state["opt_G"]["param_groups"]},
            "opt_D": {"state_len": len(state["opt_D"]["state"]),
                      "param_groups": state["opt_D"]["param_groups"]},
            "rng": sorted(state["rng"]), "step": state["step"], "kind": state["kind"],
            "generator_config": state["generator_config"]}


def test_a_run_folder_written_before_the_face_terms_still_resumes(tmp_path, demo_data):
    """tests/data/main-c3782c3 holds the config.json of a run that main wrote before these
    terms, and the structure of its checkpoint. A checkpoint of that structure holding that
    config resumes with the new weights at 0, and gives exactly the weights of an
    uninterrupted run."""
    from faces.landmark_detectors import default_detector_name
    from training.loop import train

    photos, cartoons = demo_data
    old = json.loads((MAIN_RUN / "config.json").read_text())
    manifest = json.loads((MAIN_RUN / "checkpoint_manifest.json").read_text())
    old.update(photo_dir=str(photos), cartoon_dir=str(cartoons), checkpoints_dir=str(tmp_path / "ck"))
    # the detector it trained with, where installed (the numpy-2 environment has dlib only)
    old["landmark_detector"] = default_detector_name()
    opts = {k: v for k, v in old.items() if k not in ("kind", "init_resolved", "pretrained_hash",
                                                      "style", "name", "total_iter")}
    train(resolve("train", dict(opts, name="straight", total_iter=3)))
    train(resolve("train", dict(opts, name="part", total_iter=2)))
    run = tmp_path / "ck" / "part"
    state = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    # the same structure as main's checkpoint (JSON round trip: tuples read back as lists)
    assert json.loads(json.dumps(checkpoint_structure(state))) == {
        k: v for k, v in manifest.items() if k != "config_equals_config_json"}
    saved = dict(old, name="part", total_iter=2)
    state["config"] = saved                      # exactly what main stored: no new keys
    torch.save(state, run / "ckpt" / "latest.pt")
    (run / "config.json").write_text(json.dumps(saved))
    train(resolve("train", {"name": "part", "checkpoints_dir": str(tmp_path / "ck"), "resume": True,
                            "total_iter": 3}, {"name", "checkpoints_dir", "resume", "total_iter"}))
    a = ckpt.load_checkpoint_file(tmp_path / "ck" / "straight" / "ckpt" / "latest.pt")
    b = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    for key in ("G", "Ds", "Dt"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    resumed = json.loads((run / "config.json").read_text())
    assert all(resumed[t.key] == 0.0 for t in FACE_TERMS) and resumed["w5"] == old["w5"]
    last = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3 and not any(f"G/{t.name}" in last for t in FACE_TERMS)


# --------------------------------------------------------------------------- bad input
def _cli(args, timeout=300):
    return subprocess.run([sys.executable, "train.py", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("term", FACE_TERMS, ids=lambda t: t.name)
def test_no_face_anywhere_is_one_line_before_any_run_folder(tmp_path, demo_data, term):
    from PIL import Image

    network_or_skip(term.network)
    faceless = tmp_path / "faceless"
    faceless.mkdir()
    for i in range(3):
        Image.fromarray(np.full((64, 64, 3), 40 * i + 60, np.uint8)).save(faceless / f"{i}.png")
    flag = "--" + term.key.replace("_", "-")
    res = _cli(["--checkpoints_dir", str(tmp_path / "ck"), "--photo_dir", str(faceless),
                "--cartoon_dir", str(demo_data[1]), "--vgg-weights", "random", "--init", "none",
                "--no-progress", "--workers", "0", "--total_iter", "1", "--w5", "0", flag, "1"])
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: no face found in any photo of {faceless} while {flag} > 0: use face photos, "
        f"or {flag} 0")
    assert not (tmp_path / "ck" / "train").exists()


@requires_dlib
@pytest.mark.parametrize("term", FACE_TERMS, ids=lambda t: t.name)
def test_points_the_term_cannot_map_are_one_line_before_any_run_folder(tmp_path, demo_data, term,
                                                                       monkeypatch):
    """A detector whose layout the term has no map for (here: dlib's 68 points, with the term
    made to accept FaceMesh's 468 only)."""
    from training.loop import train

    monkeypatch.setitem(registry.TERM_BY_NAME, term.name,
                        dataclasses.replace(term, topologies=("mediapipe468",)))
    flag = "--" + term.key.replace("_", "-")
    with pytest.raises(ToonFaceError) as err:
        train(cfg_for(tmp_path, demo_data, name="x", total_iter=1, w5=0, landmark_detector="dlib",
                      **{term.key: 1.0}))
    assert str(err.value) == (f"{flag} > 0 needs landmarks it can map (mediapipe468), but "
                              f"--landmark-detector dlib gives ibug68: choose another detector, "
                              f"or {flag} 0")
    assert not (tmp_path / "ck" / "x").exists()


@pytest.mark.parametrize("term", FACE_TERMS, ids=lambda t: t.name)
def test_a_missing_network_file_is_one_line_before_any_run_folder(tmp_path, demo_data, term,
                                                                  monkeypatch):
    from training.loop import train

    def missing():
        raise ToonFaceError(f"{term.network}: its package file is missing (simulated)")

    monkeypatch.setitem(registry.NETWORKS, term.network, missing)
    with pytest.raises(ToonFaceError, match="simulated"):
        train(cfg_for(tmp_path, demo_data, name="y", total_iter=1, w5=0, **{term.key: 1.0}))
    assert not (tmp_path / "ck" / "y").exists()
