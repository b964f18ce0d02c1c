"""sweep.py: validation before anything runs, dry run, and a real 2x2 sweep of 2-step runs."""
import csv
import json
import re
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


def test_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path):
    """Nine levels of nine aliases in a run's value: 390 bytes that expand to 9**9 values (main
    took 5.4 GB and printed 1.5 GB of it)."""
    import resource
    import time

    value = '&a0 [' + ",".join(['"lol"'] * 9) + ']'
    for i in range(1, 9):  # each level: the previous one defined once, then used 8 more times
        value = f"&a{i} [{value}," + ",".join([f"*a{i - 1}"] * 8) + "]"
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"runs:\n  - heldout_people: {value}\n")
    assert len(bomb.read_bytes()) < 600
    t = time.perf_counter()
    cap = 4 << 30  # the child may not take more than 4 GB of address space (main took 5.4 GB)
    res = subprocess.run([sys.executable, str(ROOT / "sweep.py"), "--name", "s", "--configs", str(bomb),
                          "--dry-run", "--", "--checkpoints_dir", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
    assert time.perf_counter() - t < 60
    assert res.returncode == 2 and "Traceback" not in res.stderr and "MemoryError" not in res.stderr
    assert res.stderr.strip().splitlines() == [f"error: {bomb}: expands to more than 50000 values (YAML "
                                               "aliases repeat what they name each time they are used: "
                                               "an alias bomb?)"]
    # in this process only now: the capped child above has shown it is not expanded
    with pytest.raises(ToonFaceError, match="expands to more than 50000 values .*alias bomb"):
        read_configs(bomb)
    deep = tmp_path / "deep.yaml"
    deep.write_text("runs: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ToonFaceError, match="nested deeper than"):
        read_configs(deep)
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"w5": 0}] * 100_000))
    with pytest.raises(ToonFaceError, match="larger than 1024 KiB"):
        read_configs(big)


def test_yaml_tags_that_would_run_code_are_one_line(tmp_path):
    marker = tmp_path / "ran"
    f = tmp_path / "evil.yaml"
    f.write_text(f"runs:\n  - w5: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ToonFaceError, match="not valid YAML .*could not determine a constructor") as e:
        read_configs(f)
    assert "\n" not in str(e.value) and not marker.exists()


def test_aliases_and_merge_keys_that_stay_small_are_fine(tmp_path):
    f = tmp_path / "shared.yaml"
    f.write_text("common: &common {w4: 0, total_iter: 3}\n"
                 "runs:\n  - {<<: *common, w5: 0}\n  - {<<: *common, w5: 1, w4: 200}\n")
    with pytest.raises(ToonFaceError, match="unknown section.* common"):
        read_configs(f)
    f.write_text("runs:\n  - &first {w4: 0, total_iter: 3, w5: 0}\n  - {<<: *first, w5: 1}\n")
    assert read_configs(f)[1] == [{"w4": 0.0, "total_iter": 3, "w5": 0.0},
                                  {"w4": 0.0, "total_iter": 3, "w5": 1.0}]


def test_every_problem_of_a_study_file_is_one_line(tmp_path):
    """The whole file is checked: each problem named with its place (and its YAML line), no
    traceback, nothing run."""
    f = tmp_path / "study.yaml"
    f.write_text("\n".join([
        "base:",
        "  lr: 0.1",                       # 2
        "  w3: .inf",                      # 3
        "  total_iter: 1.5",               # 4: not a whole number
        "  heldout_people: [00051, '00057']",  # 5: YAML reads 00051 as octal 41
        "  lr: .inf",                      # 6: duplicate key (its value would win), non-finite
        "runs:",
        "  - {w5: [1, 2]}",                # 8: a list where a number belongs
        "  - {w5: 1, w-landmark: 2}",      # 9: two spellings of one option
        "  - {photo_dir: 5, w5: nan}",     # 10: a number where a folder belongs; NaN
        "evaluate:",
        "  reference: {dir: 5}",           # 12
        "  portrait: {photo_dir: x, photos: stems}",  # 13
        "compare:",
        "  paired: nme68",                 # 15: text where a list belongs (was iterated)
        "  baseline: {w5: true}",          # 16
        ""]))
    with pytest.raises(ToonFaceError) as e:
        read_configs(f)
    lines = str(e.value).splitlines()
    want = [
        "line 6: duplicate key 'lr' (first on line 2",
        "base: bad value inf for --lr: inf is not a finite number. (line 6)",
        "base: bad value inf for --w3",
        "base: bad value for --total_iter: expected a whole number, got the number 1.5 (line 4)",
        "base: bad value for --heldout_people: expected a list of file stems in quotes",
        "run 0: bad value for --w5: expected a number, got a list [1, 2] (line 8)",
        "run 1: 'w5' and 'w-landmark' both set --w5 (line 9)",
        "run 2: bad value for --photo_dir: expected text (a name or a path), got the number 5 (line 10)",
        "run 2: bad value 'nan' for --w5",
        "evaluate: reference: dir: expected text (a name or a path), got the number 5 (line 12)",
        "evaluate: portrait: photos: expected a list of file stems in quotes",
        "compare: paired: expected a list of per-image metrics (e.g. [nme68, identity_distance]), "
        "got the text 'nme68' (line 15)",
        "compare baseline: bad value for --w5: expected a number, got true (line 16)",
    ]
    assert len(lines) == len(want), lines
    for w in want:
        assert sum(w in line for line in lines) == 1, (w, lines)
    assert all(line.startswith(str(f)) for line in lines)
    res = sweep_cli("--name", "s", "--configs", f, "--dry-run", "--", "--checkpoints_dir", tmp_path)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert err == [f"error: {line}" for line in lines]
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("text, want", [
    ('{"runs": [{"w5": 0}], "runs": [{"w5": 1}]}', "duplicate key 'runs'"),
    ('[{"w5": 0, "w5": 1}]', "duplicate key 'w5'"),
    ('[{"lr": Infinity}]', "bad value inf for --lr"),
    ('[{"w5": NaN}]', "bad value nan for --w5"),
    ('{"runs": [{}], "compare": {"paired": 5}}', "paired: expected a list of per-image metrics"),
    ('{"runs": [{}], "evaluate": {"reference": {"dir": 5}}}', "dir: expected text"),
    ('{"runs": [{}], "evaluate": {"reference": 5}}', "reference: expected {dir: FOLDER, label: TEXT}"),
    ('{"runs": [{}], "compare": {"replicate": 3}}', "replicate: expected an option name"),
    ('{"runs": 5}', "expected a list of option sets"),
    ('[5]', "run 0: expected a mapping of train options, got the number 5"),
    ('[{"progress": 2}]', "expected true or false, got the number 2"),
    ('[{"seed": [1]}]', "expected a whole number, got a list [1]"),
])
def test_json_study_files_are_checked_alike(tmp_path, text, want):
    f = tmp_path / "s.json"
    f.write_text(text)
    with pytest.raises(ToonFaceError, match=re.escape(want)) as e:
        read_configs(f)
    assert len(str(e.value).splitlines()) == 1
