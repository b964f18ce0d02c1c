"""The training loops end to end on tiny generated data: pretrain -> train -> resume -> export,
flags, weights, the grid, DDP, atomic checkpoints and bad input."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import ROOT
from models import checkpoint as ckpt
from training.config import resolve

TINY = {"image_size": 32, "batch_size": 2, "workers": 0, "progress": False, "holdout": 0,
        "tensorboard": False, "log_every": 1}


def tiny_cfg(kind, tmp_path, demo_data, **over):
    photos, cartoons = demo_data
    params = {**TINY, "photo_dir": str(photos), "checkpoints_dir": str(tmp_path / "ck"), **over}
    if kind == "train":
        params = {"cartoon_dir": str(cartoons), "vgg_weights": "random", "init": "none", **params}
    return resolve(kind, params)


def read_stats(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_seed_command_resolves_to_the_intended_weights():
    import train

    args = "--total_iter 30000 --model_version 1 --w0 1e5 --w1 2e-1 --w2 5 --w3 2e1 --w4 6e-1".split()
    out = CliRunner().invoke(train.main, args + ["--dry-run"])
    assert out.exit_code == 0, out.output
    got = {m.group(1): json.loads(m.group(2))
           for m in re.finditer(r"^[* ] (\w+)\s+(.+)$", out.output, re.M)}
    assert (got["w0"], got["w1"], got["w2"], got["w3"], got["w4"]) == (1e5, 0.2, 5.0, 20.0, 0.6)
    assert got["name"] == "v1" and got["total_iter"] == 30000 and got["w5"] > 0


def test_aliases_dash_spelling_and_presets():
    import train

    out = CliRunner().invoke(train.main, ["--w-tv", "3", "--total-iter", "7", "--preset", "paper",
                                          "--w-landmark", "0", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert re.search(r"^\* w0\s+3\.0$", out.output, re.M)          # explicit beats the preset
    assert re.search(r"^\* w1\s+1\.0$", out.output, re.M)          # paper: surface 1
    assert re.search(r"^\* w2\s+10\.0$", out.output, re.M)
    assert re.search(r"^\* w3\s+2000\.0$", out.output, re.M)
    assert re.search(r"^\* w5\s+0\.0$", out.output, re.M)
    assert re.search(r"^\* total_iter\s+7$", out.output, re.M)
    bad = CliRunner().invoke(train.main, ["--w1", "-1", "--dry-run"])
    assert bad.exit_code == 2 and "w1" in bad.output


def test_pretrain_train_resume_export(tmp_path, demo_data):
    from training.loop import pretrain, train

    p = pretrain(tiny_cfg("pretrain", tmp_path, demo_data, total_iter=3, save_every=3, sample_every=3))
    run = Path(p["run_dir"])
    assert json.loads((run / "config.json").read_text())["kind"] == "pretrain"
    assert [r["step"] for r in read_stats(run)] == [1, 2, 3]

    # Uninterrupted: 4 steps. Interrupted: 2 steps, then --resume to 4. Same weights.
    common = dict(init=None, w5=1.0, save_every=2, sample_every=2, keep_ckpt=1)
    full = train(tiny_cfg("train", tmp_path, demo_data, name="full", total_iter=4, **common))
    assert json.loads((Path(full["run_dir"]) / "config.json").read_text())["init_resolved"].endswith(
        "pretrain/generator/latest.pt")  # found the latest pretrained generator by itself
    train(tiny_cfg("train", tmp_path, demo_data, name="part", total_iter=2, **common))
    part = train(tiny_cfg("train", tmp_path, demo_data, name="part", total_iter=4, resume=True, **common))
    a = ckpt.load_checkpoint_file(Path(full["run_dir"]) / "ckpt" / "latest.pt")
    b = ckpt.load_checkpoint_file(Path(part["run_dir"]) / "ckpt" / "latest.pt")
    assert a["step"] == b["step"] == 4
    for key in ("G", "Ds", "Dt"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], msg=f"{key}.{name}")

    run = Path(part["run_dir"])
    stats = read_stats(run)
    assert [r["step"] for r in stats] == [1, 2, 3, 4]            # numbering continues
    for r in stats:
        for term in ("tv", "surface", "texture", "content", "structure", "landmark"):
            assert np.isfinite(r[f"G/{term}"]) and np.isfinite(r[f"G/{term}_weighted"])
        assert np.isfinite(r["D/surface"]) and np.isfinite(r["D/texture"])
        for phase in ("data", "g_forward", "structure", "vgg", "landmark", "discriminators",
                      "backward", "optimizer"):
            assert r[f"time/{phase}"] >= 0
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["latest.pt", "step_000004.pt"]
    assert {p.name for p in (run / "generator").iterdir()} >= {"latest.pt", "step_000002.pt",
                                                                "step_000004.pt"}
    assert (run / "samples" / "step_000004.png").is_file()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["w5"] == 1.0 and cfg["total_iter"] == 4 and cfg["name"] == "part"

    G, meta = ckpt.load_generator(run / "generator" / "latest.pt")
    assert meta["step"] == 4 and meta["image_size"] == 32 and meta["kind"] == "train"
    assert meta["face_size"] and 2 < meta["face_size"] < 32
    for name, value in G.state_dict().items():
        torch.testing.assert_close(value, b["G"][name])

    # Running the same name again without --resume would clobber it: refused.
    from utils.errors import ToonFaceError
    with pytest.raises(ToonFaceError, match="--resume"):
        train(tiny_cfg("train", tmp_path, demo_data, name="part", total_iter=4, **common))


def test_zero_weight_removes_term(tmp_path, demo_data, monkeypatch):
    from losses import variation
    from training import loop

    def boom(*a, **k):
        raise AssertionError("a term with weight 0 was computed")

    monkeypatch.setattr(variation, "total_variation_loss", boom)
    monkeypatch.setattr(loop, "build_content_network", boom)
    cfg = tiny_cfg("train", tmp_path, demo_data, name="ablate", total_iter=2, w0=0, w3=0, w4=0,
                   w5=0, w1=0, sample_every=100)
    res = loop.train(cfg)
    stats = read_stats(Path(res["run_dir"]))
    keys = set().union(*stats)
    assert "G/texture" in keys and "D/texture" in keys
    for gone in ("G/tv", "G/content", "G/structure", "G/landmark", "G/surface", "D/surface",
                 "time/structure", "time/vgg", "time/landmark"):
        assert gone not in keys


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, demo_data, monkeypatch):
    from losses import variation
    from training import loop

    real = variation.total_variation_loss
    calls = {"n": 0}

    def tv_nan_at_step_3(x):
        calls["n"] += 1
        v = real(x)
        return v * float("nan") if calls["n"] == 3 else v

    monkeypatch.setattr(variation, "total_variation_loss", tv_nan_at_step_3)
    cfg = tiny_cfg("train", tmp_path, demo_data, name="nan", total_iter=5, save_every=2,
                   sample_every=100, w3=0, w4=0, w5=0)
    with pytest.raises(loop.TrainingDiverged, match=r"G/tv .*nan.* step 3"):
        loop.train(cfg)
    state = ckpt.load_checkpoint_file(tmp_path / "ck" / "nan" / "ckpt" / "latest.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["G"].values())


def test_grid_has_labelled_columns(demo_data):
    from models import Generator
    from training.visuals import COLUMNS, make_grid, representations

    torch.manual_seed(0)
    photos = torch.rand(2, 3, 32, 32) * 2 - 1
    lmaps = torch.zeros(2, 2, 32, 32)
    lmaps[:, 0, 10:12, 5:25] = 1
    cols = representations(Generator(), photos, lmaps)
    assert list(cols) == list(COLUMNS)
    assert all(v.shape == (2, 3, 32, 32) for v in cols.values())
    torch.testing.assert_close(cols["photo"], photos)
    grid = make_grid(cols)
    pad, label_h = 2, 14
    assert grid.shape == (label_h + 2 * (32 + pad) + pad, len(COLUMNS) * (32 + pad) + pad, 3)
    for j in range(len(COLUMNS)):  # every column has a label drawn in the header
        x0 = pad + j * (32 + pad)
        assert (grid[:label_h, x0:x0 + 32] < 128).any(), COLUMNS[j]


def test_killed_during_checkpoint_write_leaves_previous_loadable(tmp_path):
    target = tmp_path / "latest.pt"
    torch.save({"step": 1, "w": torch.ones(3)}, target)
    script = f"""
import os, signal, sys, torch
sys.path.insert(0, {str(ROOT)!r})
from utils import io
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)   # die mid-write
io.atomic_save({str(target)!r}, lambda f: torch.save({{"step": 2, "w": torch.zeros(10**6)}}, f))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    state = ckpt.load_checkpoint_file(target)
    assert state["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] != []  # a stray temp file may stay, never a torn latest.pt


def _cli(args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_bad_input_gives_one_line_and_exit_2(tmp_path, demo_data):
    photos, cartoons = demo_data
    base = ["train.py", "--checkpoints_dir", str(tmp_path / "ck"), "--vgg-weights", "random",
            "--init", "none", "--no-progress", "--workers", "0", "--total_iter", "1"]
    missing = _cli(base + ["--photo_dir", str(tmp_path / "nope"), "--cartoon_dir", str(cartoons)])
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("error: photo folder not found")
    (tmp_path / "empty").mkdir()
    empty = _cli(base + ["--photo_dir", str(photos), "--cartoon_dir", str(tmp_path / "empty")])
    assert empty.returncode == 2 and "holds no images" in empty.stderr
    novgg = _cli(["train.py", "--checkpoints_dir", str(tmp_path / "ck2"), "--photo_dir", str(photos),
                  "--cartoon_dir", str(cartoons), "--vgg-weights", str(tmp_path / "vgg19.pth"),
                  "--init", "none"])
    assert novgg.returncode == 2 and "vgg19.pth" in novgg.stderr and "Traceback" not in novgg.stderr
    assert not (tmp_path / "ck2" / "train" / "stats.jsonl").exists()
    faceless = tmp_path / "faceless"
    faceless.mkdir()
    from PIL import Image
    for i in range(3):
        Image.fromarray(np.full((64, 64, 3), 40 * i + 60, np.uint8)).save(faceless / f"{i}.png")
    noface = _cli(base + ["--photo_dir", str(faceless), "--cartoon_dir", str(cartoons)])
    assert noface.returncode == 2 and "no face found" in noface.stderr
    assert "Traceback" not in noface.stderr


def test_corrupt_files_skipped_and_listed_once(tmp_path, caplog):
    from PIL import Image
    from datasets.folders import collect_images

    d = tmp_path / "mixed"
    d.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)
    Image.fromarray(rgb).save(d / "good.jpg")
    Image.fromarray(rgb[..., 0]).save(d / "gray.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(d / "rgba.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(d / "deep16.png")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    data = (d / "good.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    with caplog.at_level("WARNING"):
        good = collect_images(d, "photo")
    assert sorted(p.name for p in good) == ["cmyk.jpg", "deep16.png", "good.jpg", "gray.png", "rgba.png"]
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 4 unreadable file(s) of 9" in warnings[0]
    for name in ("zero.jpg", "text.png", "truncated.jpg", "corrupt.png"):
        assert name in warnings[0]
    from media.decode import read_image_rgb
    deep = read_image_rgb(d / "deep16.png")
    assert deep.dtype == np.uint8 and abs(int(deep[..., 0].astype(int).mean()) - int(rgb[..., 0].mean())) <= 1


def test_sampler_resume_and_shards():
    from datasets.folders import InfiniteSampler

    def take(s, n):
        it = iter(s)
        return [next(it) for _ in range(n)]

    full = take(InfiniteSampler(5, seed=3), 12)
    assert take(InfiniteSampler(5, seed=3, start=7), 5) == full[7:12]
    assert sorted(i for i, _ in full[:5]) == list(range(5))      # an epoch is a permutation
    r0, r1 = take(InfiniteSampler(5, 3, 0, 2), 6), take(InfiniteSampler(5, 3, 1, 2), 6)
    assert r0 == full[0:12:2] and r1 == full[1:12:2]              # ranks split one stream


DDP_SCRIPT = """
import os, sys, torch
sys.path.insert(0, {root!r})
from training.config import resolve
from training.loop import prepare_train
if __name__ == "__main__":
    run = prepare_train(resolve("train", {params!r}))
    run.run()
    torch.save(run.G.state_dict(), os.path.join({out!r}, f"rank{{os.environ['RANK']}}.pt"))
"""


def test_ddp_two_cpu_processes(tmp_path, demo_data):
    photos, cartoons = demo_data
    params = {**TINY, "photo_dir": str(photos), "cartoon_dir": str(cartoons), "device": "cpu",
              "checkpoints_dir": str(tmp_path / "ck"), "vgg_weights": "random", "init": "none",
              "total_iter": 2, "name": "ddp", "w5": 0.0, "sample_every": 100}
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT), params=params, out=str(tmp_path)))
    import socket

    with socket.socket() as sock:  # a free port: other test runs may share the machine
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(port), str(script)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    init = ckpt.load_checkpoint_file(tmp_path / "ck" / "ddp" / "ckpt" / "latest.pt")
    for name in a:
        torch.testing.assert_close(a[name], b[name])
        torch.testing.assert_close(a[name], init["G"][name])
    assert init["config"]["batch_size"] == 2
    stats = read_stats(tmp_path / "ck" / "ddp")
    assert stats[-1]["kimg"] == pytest.approx(2 * 2 * 2 / 1000)  # 2 ranks x batch 2 x 2 steps


@pytest.mark.parametrize("flag", [True, False])
def test_reuse_host_memory_flag(tmp_path, demo_data, monkeypatch, flag):
    from training import loop

    calls = []
    monkeypatch.setattr(loop, "retain_freed_memory", lambda: calls.append(1) or True)
    loop.prepare_pretrain(tiny_cfg("pretrain", tmp_path, demo_data, name=f"mem{flag}", total_iter=1,
                                   reuse_host_memory=flag, device="cpu"))
    assert calls == ([1] if flag else [])


def test_relative_photo_folder_finds_the_faces_the_absolute_one_finds(tmp_path, demo_data, monkeypatch):
    """`train.py --photo_dir ../photos` (the README's and the study files' spelling): the
    landmark pass reads every photo (it used to read doubled paths, find no face and refuse)."""
    from training.loop import train

    shutil.copytree(demo_data[0], tmp_path / "data" / "photos")
    monkeypatch.chdir(tmp_path)
    relative = "data/photos"
    out = train(tiny_cfg("train", tmp_path, demo_data, photo_dir=relative, total_iter=1, w5=1.0))
    _, meta = ckpt.load_generator(Path(out["run_dir"]) / "generator" / "latest.pt")
    assert meta["face_size"] and 2 < meta["face_size"] < 32     # faces were found and measured


def test_dry_run_says_which_inputs_are_missing(tmp_path):
    """--dry-run prints the configuration and one '#' line per input that is not there (the run
    itself refuses it); nothing is created."""
    import pretrain
    import train

    photos = tmp_path / "photos"
    photos.mkdir()
    res = CliRunner().invoke(train.main, ["--dry-run", "--photo_dir", str(photos), "--cartoon_dir",
                                          str(tmp_path / "nope"), "--init", str(tmp_path / "g.pt"),
                                          "--checkpoints_dir", str(tmp_path / "ck")])
    assert res.exit_code == 0, res.output
    notes = [line for line in res.output.splitlines() if "does not exist here" in line]
    assert notes == [f"# cartoon_dir: {tmp_path / 'nope'} does not exist here (the run would stop there)",
                     f"# init: {tmp_path / 'g.pt'} does not exist here (the run would stop there)"]
    res = CliRunner().invoke(pretrain.main, ["--dry-run", "--photo_dir", str(tmp_path / "p2")])
    assert res.exit_code == 0 and f"# photo_dir: {tmp_path / 'p2'} does not exist here" in res.output
    assert not (tmp_path / "ck").exists()
