"""test.py end to end on a 2-step run: the seed's flag spelling, outputs, metrics, errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """checkpoints/v3: a 2-step training run on 20 demo faces (2 held out)."""
    from datasets.demo import build_demo_data
    from training.config import resolve
    from training.loop import train

    tmp = tmp_path_factory.mktemp("testcli")
    photos, cartoons = build_demo_data(tmp / "data", 20, 6, size=48)
    ck = tmp / "checkpoints"
    cfg = resolve("train", dict(photo_dir=str(photos), cartoon_dir=str(cartoons), image_size=32,
                                batch_size=2, total_iter=2, checkpoints_dir=str(ck), workers=0,
                                progress=False, vgg_weights="random", init="none",
                                model_version=3, save_every=1, tensorboard=False))
    train(cfg)
    return ck


def cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "test.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_seed_spelling_writes_grids_outputs_index_and_metrics(run, tmp_path):
    from tests.evaluation.test_fid import write_tiny_inception

    inc = write_tiny_inception(tmp_path / "inc.pt")
    res = cli("--model_version", 3, "--batch", 2, "--checkpoints_dir", run, "--inception", inc)
    assert res.returncode == 0, res.stderr[-2000:]
    out = run / "v3" / "test" / "step_000002"
    assert sorted(p.name for p in (out / "outputs").iterdir()) == sorted(
        p.name for p in (out / "photos").iterdir())
    assert len(list((out / "outputs").iterdir())) == 2  # heldout.txt: 2 of 20 photos
    assert (out / "grids" / "grid_00.png").is_file()
    html = (out / "index.html").read_text()
    assert "grids/grid_00.png" in html and "outputs/" in html
    m = json.loads((out / "metrics.json").read_text())
    assert m["step"] == 2 and m["n"] == 2
    assert m["photos"] == (run / "v3" / "heldout.txt").read_text().split()
    for key in ("nme", "found_rate", "fid_cartoon", "fid_photo", "kid_cartoon",
                "distinct_colours", "edge_density", "flatness"):
        assert key in m["summary"]
    assert m["fid"]["cartoon"]["n_real"] == 6 and m["fid"]["photo"]["fid"] is not None
    assert set(m["style"]) == {"output", "photo", "cartoon"}


def test_checkpoint_path_photo_dir_num_and_no_inception(run, tmp_path):
    gen = run / "v3" / "generator" / "latest.pt"
    photos = json.loads((run / "v3" / "config.json").read_text())["photo_dir"]
    res = cli("--checkpoint", gen, "--photo_dir", photos, "--num", 3, "--out", tmp_path / "o",
              "--inception", tmp_path / "none.pt")
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["n"] == 3 and m["fid"] is None and "none.pt" in m["fid_reason"]
    assert sum("FID/KID skipped" in line for line in res.stderr.splitlines()) == 1


def test_missing_run_or_step_is_one_line(run):
    res = cli("--model_version", 99, "--checkpoints_dir", run)
    assert res.returncode == 2 and res.stderr.strip().startswith("error:")
    assert str(run / "v99") in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cli("--model_version", 3, "--batch", 7, "--checkpoints_dir", run)
    assert res.returncode == 2 and "step_000007.pt" in res.stderr and "steps there: 1, 2" in res.stderr
    res = cli("--checkpoint", run / "nope.pt")
    assert res.returncode == 2 and "nope.pt" in res.stderr


def test_empty_heldout_asks_for_photo_dir(run):
    from evaluation.evaluate import evaluate
    from utils.errors import ToonFaceError

    held = run / "v3" / "heldout.txt"
    saved = held.read_text()
    held.write_text("")
    try:
        with pytest.raises(ToonFaceError, match="--photo_dir"):
            evaluate(model_version=3, checkpoints_dir=str(run), metrics=False)
    finally:
        held.write_text(saved)


def _one_line_exit_2(res):
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_image_size_that_the_generator_cannot_take_is_one_line(run):
    line = _one_line_exit_2(cli("--model_version", 3, "--checkpoints_dir", run, "--image_size", 130))
    assert "--image_size 130" in line and "multiple of 4" in line


@pytest.mark.parametrize("content", ["tensor", "list", "no generator_config"])
def test_malformed_checkpoint_is_one_line(run, tmp_path, content):
    import torch

    obj = {"tensor": torch.zeros(3), "list": [torch.zeros(3)],
           "no generator_config": {"format": "toonface-generator", "generator": {}}}[content]
    torch.save(obj, tmp_path / "bad.pt")
    line = _one_line_exit_2(cli("--checkpoint", tmp_path / "bad.pt", "--photo_dir", tmp_path,
                                "--out", tmp_path / "o"))
    assert str(tmp_path / "bad.pt") in line and not (tmp_path / "o").exists()


def test_unwritable_out_is_one_line_before_any_work(run, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # read-only by intent: refused even where root could write
    try:
        line = _one_line_exit_2(cli("--model_version", 3, "--checkpoints_dir", run, "--out", locked / "o"))
    finally:
        locked.chmod(0o755)
    assert "--out" in line and "read-only" in line


def test_disk_full_and_unreadable_cartoons_are_one_line(run, tmp_path, monkeypatch):
    """In process, with the system calls refusing (tests/oserrors.py): a full disk stops with
    the file and the cause; an unreadable cartoon folder is a note naming the cause."""
    from evaluation.evaluate import evaluate
    from tests.oserrors import deny_reading, disk_full
    from utils.errors import ToonFaceError

    cartoons = tmp_path / "cartoons"
    cartoons.mkdir()
    with monkeypatch.context() as m:
        deny_reading(m, cartoons)
        res = evaluate(model_version=3, checkpoints_dir=str(run), out=str(tmp_path / "o1"),
                       cartoon_dir=str(cartoons), inception=str(tmp_path / "none.pt"), num=1)
    assert any("cannot read" in n and "Permission denied" in n for n in res["metrics"]["notes"])
    disk_full(monkeypatch, when=lambda tmp: "metrics.json" in tmp)
    with pytest.raises(ToonFaceError, match=r"cannot write .*metrics\.json: No space left on device"):
        evaluate(model_version=3, checkpoints_dir=str(run), out=str(tmp_path / "o2"), metrics=False)
