"""sweep.py: validation before anything runs, dry run, and a real 2x2 sweep of 2-step runs."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.sweep import parse_grid, plan, read_configs, run_id
from utils.errors import ToonFaceError

ROOT = Path(__file__).resolve().parents[1]


def base(data, ck):
    return ["--photo_dir", str(data / "photos"), "--cartoon_dir", str(data / "cartoons"),
            "--image_size", "32", "--batch_size", "2", "--total_iter", "2", "--checkpoints_dir",
            str(ck), "--workers", "0", "--no-progress", "--vgg-weights", "random", "--init", "none",
            "--no-tensorboard"]


def sweep_cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "sweep.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_grid_keys_and_values_are_checked():
    assert parse_grid(["w-landmark=0,1", "total_iter=5"]) == [("w5", [0.0, 1.0]), ("total_iter", [5])]
    with pytest.raises(ToonFaceError, match="unknown train option 'w9'"):
        parse_grid(["w9=1"])
    with pytest.raises(ToonFaceError, match="bad value 'x' for --w5"):
        parse_grid(["w5=x"])
    with pytest.raises(ToonFaceError, match="bad value '-1'"):
        parse_grid(["w5=-1"])  # weights are >= 0
    with pytest.raises(ToonFaceError, match="set by the sweep"):
        parse_grid(["name=a,b"])
    with pytest.raises(ToonFaceError, match="key=value"):
        parse_grid(["w5"])
    assert run_id({"w5": 0.0, "w4": 200.0}, ["w5", "w4"]) == "w5=0_w4=200"


def test_config_files_json_and_yaml(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"w5": 0}, {"w-landmark": 2, "d_fresh_forward": False}]))
    b, sets = read_configs(tmp_path / "a.json")
    assert b == {} and sets == [{"w5": 0.0}, {"w5": 2.0, "d_fresh_forward": False}]
    (tmp_path / "b.yaml").write_text("base: {total_iter: 3}\nruns:\n  - {w4: 0}\n  - {w4: 200}\n")
    b, sets = read_configs(tmp_path / "b.yaml")
    assert b == {"total_iter": 3} and sets == [{"w4": 0.0}, {"w4": 200.0}]
    (tmp_path / "c.json").write_text(json.dumps([{"image_size": "big"}]))
    with pytest.raises(ToonFaceError, match="c.json run 0: bad value 'big' for --image_size"):
        read_configs(tmp_path / "c.json")


def test_plan_rejects_bad_base_options_before_running(tmp_path):
    with pytest.raises(ToonFaceError, match="No such option"):
        plan("s", ["w5=0,1"], None, ["--bogus", "1"])
    with pytest.raises(ToonFaceError, match="multiple of 8"):
        plan("s", ["image_size=30,32"], None, [])
    with pytest.raises(ToonFaceError, match="--name is set by the sweep"):
        plan("s", ["w5=0,1"], None, ["--name", "x"])
    runs = plan("s", ["w5=0,1"], None, ["--checkpoints_dir", str(tmp_path)])
    assert [r["cfg"].run.name for r in runs] == ["s/w5=0", "s/w5=1"]
    assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_key_via_cli_runs_nothing(tmp_path):
    res = sweep_cli("--name", "s", "--grid", "w5=0,1", "--grid", "wx=1", "--", "--checkpoints_dir", tmp_path)
    assert res.returncode == 2 and res.stderr.strip() == "error: unknown train option 'wx'"
    assert not (tmp_path / "s").exists()


def test_sweep_2x2_summary_figure_and_resume(tmp_path):
    from datasets.demo import build_demo_data
    from tests.evaluation.test_fid import write_tiny_inception

    data, ck = tmp_path / "data", tmp_path / "ck"
    build_demo_data(data, 12, 6, size=48)
    inc = write_tiny_inception(tmp_path / "inc.pt")
    args = ["--name", "abl", "--grid", "w5=0,1", "--grid", "w4=0,200", "--inception", inc, "--",
            *base(data, ck)]

    dry = sweep_cli(*args[:6], "--dry-run", *args[6:])
    assert dry.returncode == 0, dry.stderr[-2000:]
    cmds = [line for line in dry.stdout.splitlines() if "train.py" in line]
    assert len(cmds) == 4 and "--name abl/w5=0_w4=200" in cmds[1] and not (ck / "abl").exists()

    res = sweep_cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    sweep_dir = ck / "abl"
    with open(sweep_dir / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["w5=0_w4=0", "w5=0_w4=200", "w5=1_w4=0", "w5=1_w4=200"]
    assert {"w5", "w4", "nme68_mean", "identity_distance_mean", "nme_mediapipe_mean",
            "face_found_rate_mediapipe", "fid_cartoon", "fid_photo", "kid_cartoon",
            "distinct_colours", "edge_density", "flatness", "smooth_share"} <= set(rows[0])
    assert all(r["status"] == "evaluated" and r["step"] == "2" and r["fid_photo"] == "" for r in rows)
    # 12 photos hold out 1: every run is evaluated on the same face
    photos = {tuple(json.loads((sweep_dir / r["run"] / "test" / "step_000002" / "metrics.json")
                               .read_text())["photos"]) for r in rows}
    assert len(photos) == 1
    for fig in ("comparison.png", "metrics.png", "index.html"):
        assert (sweep_dir / fig).is_file()
    assert "w5=1_w4=200/test/step_000002/index.html" in (sweep_dir / "index.html").read_text()

    again = sweep_cli(*args)  # resumable: nothing retrains, nothing re-evaluates
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("finished, skipped") == 4 and "train.py" not in again.stderr
    assert again.stderr.count("already there") == 4
