"""studies/all_pairs.py: the rows by hand, and end to end on a 3-step run scored against its own
photos as the reference (the reference row's nme68 and identity are then 0, its style the
photos')."""
import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from studies.all_pairs import CSV_KEYS, RELATIVE_KEYS, relative, table_rows
from tests.conftest import requires_dlib

ROOT = Path(__file__).resolve().parents[1]


def summary(nme, ident, colours, edge, flat, smooth):
    return {"pairs": 3, "pairs_scored": 3, "nme68_mean": nme, "identity_distance_mean": ident,
            "identity_same_rate": 1.0, "face_found_rate_dlib": 1.0, "distinct_colours": colours,
            "edge_density": edge, "flatness": flat, "smooth_share": smooth}


def test_rows_mean_the_saves_and_divide_by_the_reference():
    saves = [(3750, summary(0.03, 0.36, 1800.0, 0.13, 0.05, 0.15)),
             (4000, summary(0.02, 0.40, 2000.0, 0.15, 0.04, 0.17))]
    ref = summary(0.04, 0.50, 1000.0, 0.10, 0.05, 0.34)
    rows = table_rows(saves, ref, "authors' cartoons")
    assert [r["row"] for r in rows] == ["step 3750", "step 4000", "mean of last 2", "authors' cartoons"]
    assert rows[2]["steps"] == "3750 4000" and rows[3]["steps"] == ""
    mean = rows[2]
    assert mean["nme68_mean"] == pytest.approx(0.025)
    assert mean["distinct_colours"] == pytest.approx(1900.0)
    # 1900 / 1000 - 1: 90% more colours; smooth share 0.16 / 0.34 - 1
    assert mean["distinct_colours_vs_reference"] == pytest.approx(0.9)
    assert mean["smooth_share_vs_reference"] == pytest.approx(0.16 / 0.34 - 1)
    assert mean["identity_distance_mean_vs_reference"] == pytest.approx(0.38 / 0.5 - 1)
    assert rows[0]["flatness_vs_reference"] == pytest.approx(0.0)
    assert all(rows[3][f"{k}_vs_reference"] == pytest.approx(0.0) for k in RELATIVE_KEYS)
    assert set(CSV_KEYS) <= set(rows[0])


def test_relative_is_none_without_a_value_or_a_nonzero_reference():
    assert relative(None, 1.0) is None and relative(1.0, None) is None and relative(1.0, 0) is None
    assert relative(1.5, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        table_rows([], summary(0, 0, 1, 1, 1, 1), "x")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "studies.all_pairs", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_a_folder_that_is_not_a_run_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "photos").mkdir()
    res = cli(tmp_path / "nothing", "--photo-dir", tmp_path / "photos", "--reference-dir",
              tmp_path / "photos")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a run folder" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 3-step run (generators saved at steps 1, 2, 3) on 8 demo faces at 64 px."""
    from datasets.demo import build_demo_data
    from training.config import resolve
    from training.loop import train

    tmp = tmp_path_factory.mktemp("allpairs")
    photos, cartoons = build_demo_data(tmp / "data", 8, 4, size=96)
    cfg = resolve("train", dict(photo_dir=str(photos), cartoon_dir=str(cartoons), image_size=64,
                                batch_size=2, total_iter=3, checkpoints_dir=str(tmp / "ck"),
                                name="r", workers=0, progress=False, vgg_weights="random",
                                init="none", save_every=1, tensorboard=False))
    train(cfg)
    return tmp / "ck" / "r", photos


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@requires_dlib
def test_end_to_end_against_the_photos_themselves(run, tmp_path):
    run_dir, photos = run
    gens = sorted((run_dir / "generator").glob("step_*.pt"))
    before = {p.name: _digest(p) for p in gens}
    out = tmp_path / "t.csv"
    res = cli(run_dir, "--photo-dir", photos, "--reference-dir", photos, "--label", "photos",
              "--last-saves", 2, "--csv", out)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [r["row"] for r in rows] == ["step 2", "step 3", "mean of last 2", "photos"]
    # every photo of the folder is scored, held-out or not
    assert all(r["pairs"] == "8" for r in rows)
    ref = rows[3]
    if ref["nme68_mean"]:  # dlib found the demo faces at 64 px: the photos against themselves
        assert float(ref["nme68_mean"]) == pytest.approx(0.0, abs=1e-6)
    for k in ("distinct_colours", "edge_density", "smooth_share"):
        saved = [float(rows[i][k]) for i in (0, 1)]
        assert float(rows[2][k]) == pytest.approx(sum(saved) / 2, rel=1e-5)
        assert float(rows[2][f"{k}_vs_reference"]) == pytest.approx(
            float(rows[2][k]) / float(ref[k]) - 1, rel=1e-4, abs=1e-6)
    # the scored generators keep their bytes (no metrics recorded in them)
    assert {p.name: _digest(p) for p in gens} == before
    # a second call reuses every evaluation
    stamp = {p: p.stat().st_mtime_ns for p in (run_dir / "test_all_pairs").rglob("metrics.json")}
    assert len(stamp) == 3
    again = cli(run_dir, "--photo-dir", photos, "--reference-dir", photos, "--label", "photos",
                "--last-saves", 2, "--csv", out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert list(csv.DictReader(out.open())) == rows


def test_a_csv_path_that_cannot_be_written_is_refused_before_scoring(run, tmp_path):
    run_dir, photos = run
    (tmp_path / "a_file").write_text("x")
    res = cli(run_dir, "--photo-dir", photos, "--reference-dir", photos,
              "--csv", tmp_path / "a_file" / "t.csv")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    # one line and nothing else: the scoring (which reports each evaluation) never started
    assert len(lines) == 1 and lines[0].startswith("error: --csv") and "cannot be written" in lines[0]
    # a folder as --csv: click's own usage error, before anything runs
    res = cli(run_dir, "--photo-dir", photos, "--reference-dir", photos, "--csv", tmp_path)
    assert res.returncode == 2 and "--csv" in res.stderr and "Traceback" not in res.stderr
    assert "scoring" not in res.stderr
