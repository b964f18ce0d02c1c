"""test.py end to end: a 2-step run (the seed's flag spelling, outputs, metrics, errors) and
--outputs on folders of outputs made from the photos by known transforms."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from evaluation.scoring import CONTRACT_KEYS, PER_IMAGE_COLUMNS
from tests.conftest import fixtures_dir, requires_dlib, requires_mediapipe

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
    assert m["step"] == 2 and m["n"] == 2 and m["mode"] == "checkpoint"
    assert m["photos"] == (run / "v3" / "heldout.txt").read_text().split()
    assert_contract(m, out)
    # 32 px demo faces are below dlib's smallest face: counted and excluded, never NaN
    assert m["pairs"] == m["pairs_without_photo_face"] == 2 and m["nme68_mean"] is None
    assert m["fid_cartoon"] is not None and m["kid_photo"] is not None
    assert m["fid"]["cartoon"]["n_real"] == 6 and m["fid"]["photo"]["fid"] is not None
    assert set(m["style"]) == {"output", "photo", "cartoon"}
    assert "nme68_mean=" in res.stdout and "per image:" in res.stdout


def assert_contract(m: dict, out: Path) -> None:
    """Every contract key flat in "summary" and at the top level, per_image.csv beside."""
    assert tuple(m["summary"]) == CONTRACT_KEYS
    assert all(m[k] == m["summary"][k] for k in CONTRACT_KEYS)
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == PER_IMAGE_COLUMNS and len(rows) == m["pairs"]
    assert [r["name"] for r in rows] == [r["name"] for r in m["per_image"]]


def test_checkpoint_path_photo_dir_num_and_no_inception(run, tmp_path):
    gen = run / "v3" / "generator" / "latest.pt"
    photos = json.loads((run / "v3" / "config.json").read_text())["photo_dir"]
    res = cli("--checkpoint", gen, "--photo_dir", photos, "--num", 3, "--out", tmp_path / "o",
              "--inception", tmp_path / "none.pt", "--workers", 0)
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["n"] == 3 and m["fid"] is None and "none.pt" in m["fid_reason"]
    assert m["fid_photo"] is None and m["gf_eps"] == 5e-3
    assert sum("FID/KID skipped" in line for line in res.stderr.splitlines()) == 1
    # The outputs are what the inference path (cartoonize.py's Cartoonizer) makes of the crops.
    from media.decode import read_image_rgb
    from inference.cartoonizer import Cartoonizer

    toon = Cartoonizer.from_checkpoint(gen, eps=5e-3)
    crops = [read_image_rgb(tmp_path / "o" / "photos" / f"{r['name']}.png") for r in m["per_image"]]
    for row, expected in zip(m["per_image"], toon.stylize_batch(crops)):  # one batch, as test.py
        assert np.array_equal(read_image_rgb(row["output"]), expected), row["name"]


def test_out_must_not_be_the_photo_folder(run, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(json.loads((run / "v3" / "config.json").read_text())["photo_dir"], photos)
    before = sorted(photos.rglob("*"))
    for out in (photos, photos / "eval"):
        res = cli("--checkpoint", run / "v3", "--photo_dir", photos, "--out", out, "--num", 1)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stderr.startswith("error: --out") and "--photo_dir folder" in res.stderr
    assert sorted(photos.rglob("*")) == before


def test_out_above_the_photo_folder_is_refused(run, tmp_path):
    """--out the parent of --photo_dir: test.py's photos/NNNN_<stem>.png would land in the
    user's photo folder (replacing a user's file of that name, and read by the next run)."""
    photos = tmp_path / "photos"
    shutil.copytree(json.loads((run / "v3" / "config.json").read_text())["photo_dir"], photos)
    first = sorted(photos.glob("*.png"))[0]
    mine = photos / f"0000_{first.stem}.png"       # the name test.py would give its crop
    mine.write_bytes(b"the user's own file")
    before = {p: p.read_bytes() for p in photos.rglob("*")}
    res = cli("--checkpoint", run / "v3", "--photo_dir", photos, "--out", tmp_path, "--num", 1,
              "--no-metrics")
    line = _one_line_exit_2(res)
    assert "photos/" in line and "--photo_dir folder" in line, line
    assert {p: p.read_bytes() for p in photos.rglob("*")} == before
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "metrics.json").exists()


def test_out_subfolders_must_not_be_any_input_folder(run, tmp_path):
    """Every folder an evaluation reads: the photos (given, or the run's held-out ones), the
    cartoon set, a folder of outputs."""
    from evaluation.evaluate import EvalConfig, evaluate, evaluate_outputs
    from utils.errors import ToonFaceError

    cfg = json.loads((run / "v3" / "config.json").read_text())
    cartoons = tmp_path / "o" / "outputs"
    shutil.copytree(cfg["cartoon_dir"], cartoons)
    with pytest.raises(ToonFaceError, match=r"outputs/ images .*--cartoon_dir folder"):
        evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), out=str(tmp_path / "o"),
                               cartoon_dir=str(cartoons), metrics=False))
    held = Path((run / "v3" / "heldout.txt").read_text().split()[0]).parent
    with pytest.raises(ToonFaceError, match=r"photos/ images .*--photo_dir folder"):
        evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), out=str(held.parent), metrics=False))
    link = tmp_path / "linked"
    link.mkdir()
    (link / "grids").symlink_to(held, target_is_directory=True)  # a link is where it leads
    with pytest.raises(ToonFaceError, match=r"grids/ images"):
        evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), out=str(link), metrics=False))
    outs = shutil.copytree(held, tmp_path / "outs")
    with pytest.raises(ToonFaceError, match=r"--out .* is inside the --cartoon_dir folder"):
        evaluate_outputs(outputs=str(outs), photo_dir=str(held), out=str(tmp_path / "x"),
                         cartoon_dir=str(tmp_path), analyser=object(), echo=lambda m: None)
    assert not (tmp_path / "o" / "metrics.json").exists() and not (tmp_path / "x").exists()


def test_never_replaces_a_file_it_did_not_write(run, tmp_path):
    """A file of test.py's layout that test.py did not write stops the run before any work;
    test.py's own files (an earlier run into the same folder) are replaced."""
    from evaluation.evaluate import EvalConfig, evaluate
    from utils.errors import ToonFaceError

    out = tmp_path / "o"
    evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), out=str(out), metrics=False, num=1))
    first = json.loads((out / "metrics.json").read_text())
    evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), out=str(out), metrics=False))  # rerun
    assert len(list((out / "outputs").iterdir())) == 2

    other = tmp_path / "other"
    (other / "outputs").mkdir(parents=True)
    name = Path(first["per_image"][0]["output"]).name
    (other / "outputs" / name).write_bytes(b"mine")
    (other / "index.html").write_text("my page")
    with pytest.raises(ToonFaceError, match=r"was not written by test\.py"):
        evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), out=str(other), metrics=False,
                               num=1))
    assert (other / "outputs" / name).read_bytes() == b"mine"
    assert (other / "index.html").read_text() == "my page"
    assert {p.name for p in other.rglob("*")} == {"index.html", "outputs", name}
    record = json.loads((out / ".toonface-test-files.json").read_text())  # what test.py wrote
    assert {"metrics.json", "index.html", f"outputs/{name}"} <= set(record)


def test_missing_run_or_step_is_one_line(run):
    res = cli("--model_version", 99, "--checkpoints_dir", run)
    assert res.returncode == 2 and res.stderr.strip().startswith("error:")
    assert str(run / "v99") in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cli("--model_version", 3, "--batch", 7, "--checkpoints_dir", run)
    assert res.returncode == 2 and "step_000007.pt" in res.stderr and "steps there: 1, 2" in res.stderr
    res = cli("--checkpoint", run / "nope.pt")
    assert res.returncode == 2 and "nope.pt" in res.stderr


def test_step_of_a_run_folder_checkpoint_is_that_step(run, tmp_path):
    """--checkpoint RUN_FOLDER --step N scores generator/step_N.pt (it used to score the newest
    generator whatever N said); with a generator file, --step is refused in one line."""
    res = cli("--checkpoint", run / "v3", "--step", 1, "--out", tmp_path / "o1", "--workers", 0)
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((tmp_path / "o1" / "metrics.json").read_text())
    assert m["step"] == 1 and m["checkpoint"].endswith("step_000001.pt")
    res = cli("--checkpoint", run / "v3", "--step", 7)
    assert res.returncode == 2 and "steps there: 1, 2" in res.stderr
    res = cli("--checkpoint", run / "v3" / "generator" / "latest.pt", "--step", 1)
    assert res.returncode == 2 and "is a file" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_empty_heldout_asks_for_photo_dir(run):
    from evaluation.evaluate import EvalConfig, evaluate
    from utils.errors import ToonFaceError

    held = run / "v3" / "heldout.txt"
    saved = held.read_text()
    held.write_text("")
    try:
        with pytest.raises(ToonFaceError, match="--photo_dir"):
            evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), metrics=False))
    finally:
        held.write_text(saved)


# ------------------------------------------------------------------------------ --outputs
def astronaut_face(dx: int = 0) -> np.ndarray:
    """A 256x256 window on the astronaut photo with her face inside (dlib finds it)."""
    return np.ascontiguousarray(data.astronaut()[20:276, 100 + dx:356 + dx])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """photos/ and outs/ made by known transforms, one case per name:
    a: identical pixels (a.jpg / a.png), b: identical (b.png / b.webp, lossless), c: the output
    at twice the size, d: another aspect ratio, e: an unreadable output, f: no output,
    g: no photo."""
    from media.decode import read_image_rgb

    tmp = tmp_path_factory.mktemp("scoring")
    ph, out = tmp / "photos", tmp / "outs"
    ph.mkdir()
    out.mkdir()
    Image.fromarray(astronaut_face()).save(ph / "a.jpg", quality=95)
    Image.fromarray(read_image_rgb(ph / "a.jpg")).save(out / "a.png")
    for name, dx in (("b", 4), ("c", 8), ("d", 0), ("e", 0), ("f", 0)):
        Image.fromarray(astronaut_face(dx)).save(ph / f"{name}.png")
    Image.fromarray(astronaut_face(4)).save(out / "b.webp", lossless=True)
    Image.fromarray(cv2.resize(astronaut_face(8), (512, 512), interpolation=cv2.INTER_CUBIC)
                    ).save(out / "c.png")
    Image.fromarray(cv2.resize(astronaut_face(), (256, 192))).save(out / "d.png")
    (out / "e.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    Image.fromarray(astronaut_face()).save(out / "g.png")
    return ph, out


@pytest.fixture(scope="module")
def scored(folders):
    ph, out = folders
    res = cli("--outputs", out, "--photo_dir", ph)
    return res, out.parent / "outs_scores"


@requires_dlib
def test_outputs_end_to_end(folders, scored):
    res, dest = scored
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((dest / "metrics.json").read_text())
    assert m["mode"] == "outputs" and m["n"] == 5
    assert_contract(m, dest)
    rows = {r["name"]: r for r in m["per_image"]}
    assert list(rows) == ["a", "b", "c", "d", "e"]
    # stems pair across extensions; identical pixels score exactly 0
    for name in ("a", "b"):
        assert rows[name]["nme68"] == 0.0 and rows[name]["identity_distance"] == 0.0, name
        assert rows[name]["same_person"] is True and rows[name]["face_found_dlib"] is True
    # twice the size, same aspect: resized to the photo's size and scored
    assert rows["c"]["status"] == "scored" and rows["c"]["nme68"] < 0.02 and rows["c"]["same_person"]
    assert rows["d"]["status"] == "error" and "another aspect ratio" in rows["d"]["error"]
    assert rows["e"]["status"] == "error" and "unreadable output" in rows["e"]["error"]
    assert (m["pairs"], m["pairs_scored"], m["pairs_failed"]) == (5, 3, 2)
    assert m["identity_same_rate"] == 1.0 and m["face_found_rate_dlib"] == 1.0
    assert m["nme68_mean"] == pytest.approx(rows["c"]["nme68"] / 3)
    assert [Path(p).name for p in m["photos_without_output"]] == ["f.png"]
    assert [Path(p).name for p in m["outputs_without_photo"]] == ["g.png"]
    assert "2 pair(s) skipped" in res.stderr and "1 photo(s) without an output" in res.stderr
    assert "nme68_mean=" in res.stdout and f"metrics: {dest / 'metrics.json'}" in res.stdout
    html = (dest / "index.html").read_text()
    assert "../outs/a.png" in html and "../photos/a.jpg" in html and "another aspect ratio" in html


@requires_dlib
@requires_mediapipe
def test_outputs_mediapipe_nme_follows_the_landmark_detector(scored):
    res, dest = scored
    m = json.loads((dest / "metrics.json").read_text())
    rows = {r["name"]: r for r in m["per_image"]}
    assert m["landmark"]["detector"] == "mediapipe"
    assert rows["a"]["nme_mediapipe"] == 0.0 and m["face_found_rate_mediapipe"] == 1.0


def test_outputs_refusals_are_one_line_and_write_nothing(folders, tmp_path):
    ph, out = folders
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(astronaut_face()).save(other / "zz.png")
    dest = tmp_path / "dest"
    cases = [
        (("--outputs", other, "--photo_dir", ph, "--out", dest), "no output in"),
        (("--outputs", out, "--photo_dir", ph, "--out", ph), "--out"),
        (("--outputs", out, "--photo_dir", ph, "--checkpoint", "x.pt", "--batch", 3),
         "--batch, --checkpoint apply to a generator only"),
    ]
    for args, expected in cases:
        res = cli(*args)
        assert res.returncode == 2, (args, res.stderr[-2000:])
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not dest.exists() and not (ph / "metrics.json").exists()
    assert not (out.parent / "outs_scores" / "x").exists()


@pytest.mark.parametrize("case, match", [
    ("empty", "outputs folder .* holds no images"),
    ("out_is_outputs", "--out .* is the --outputs folder"),
    ("out_inside_photos", "--out .* is inside the --photo_dir folder"),
    ("no_photo_dir", "--outputs needs --photo_dir"),
])
def test_outputs_refusals_before_any_work(folders, tmp_path, case, match):
    from evaluation.evaluate import evaluate_outputs
    from utils.errors import ToonFaceError

    ph, out = folders
    kw = dict(outputs=str(out), photo_dir=str(ph), out=str(tmp_path / "dest"))
    if case == "empty":
        (tmp_path / "empty").mkdir()
        kw["outputs"] = str(tmp_path / "empty")
    elif case == "out_is_outputs":
        kw["out"] = str(out)
    elif case == "out_inside_photos":
        kw["out"] = str(ph / "scores")
    else:
        kw["photo_dir"] = None
    with pytest.raises(ToonFaceError, match=match):
        evaluate_outputs(**kw, analyser=object(), echo=lambda m: None)
    assert not (tmp_path / "dest").exists() and not (ph / "scores").exists()
    assert not (out / "metrics.json").exists()


def test_duplicate_names_are_refused_naming_them(folders, tmp_path):
    from evaluation.evaluate import evaluate_outputs
    from utils.errors import ToonFaceError

    ph, _ = folders
    dup = tmp_path / "dup"
    dup.mkdir()
    for ext in ("png", "jpg"):
        Image.fromarray(astronaut_face()).save(dup / f"a.{ext}")
    with pytest.raises(ToonFaceError, match=r"several files.*a\.jpg, a\.png"):
        evaluate_outputs(outputs=str(dup), photo_dir=str(ph), out=str(tmp_path / "dest"))
    assert not (tmp_path / "dest").exists()


def test_fixture_photos_scored_against_themselves_are_zero(face_analyser, tmp_path):
    from media.decode import read_image_rgb
    from evaluation.evaluate import evaluate_outputs

    photos = fixtures_dir("ffhq-mini", "photos")
    outs = tmp_path / "outs"
    outs.mkdir()
    for n in ("00049", "00050", "00051"):
        Image.fromarray(read_image_rgb(photos / f"{n}.jpg")).save(outs / f"{n}.png")
    res = evaluate_outputs(outputs=str(outs), photo_dir=str(photos), out=str(tmp_path / "s"),
                           analyser=face_analyser, echo=lambda m: None)
    m = json.loads(res["metrics_path"].read_text())
    assert (m["pairs"], m["pairs_scored"]) == (3, 3)
    assert m["nme68_mean"] == 0.0 and m["identity_distance_mean"] == 0.0
    assert m["identity_same_rate"] == 1.0 and m["face_found_rate_dlib"] == 1.0
    assert m["style"]["output"] == m["style"]["photo"]
    assert len(m["photos_without_output"]) == 46


@requires_dlib
def test_outputs_with_the_cnn_detector(folders, tmp_path):
    from evaluation.evaluate import evaluate_outputs

    ph, out = folders
    res = evaluate_outputs(outputs=str(out), photo_dir=str(ph), out=str(tmp_path / "s"), num=1,
                           dlib_detector="cnn", dlib_upsample=0, landmark_detector="dlib",
                           echo=lambda m: None)
    m = json.loads(res["metrics_path"].read_text())
    assert m["face"]["settings"] == {"detector": "cnn", "upsample": 0, "jitters": 0}
    assert m["pairs"] == 1 and m["nme68_mean"] == 0.0 and m["face_found_rate_dlib"] == 1.0
    assert m["nme_mediapipe_mean"] is None and m["landmark"]["detector"] == "dlib"


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
    (tmp_path / "photos").mkdir()
    line = _one_line_exit_2(cli("--checkpoint", tmp_path / "bad.pt", "--photo_dir", tmp_path / "photos",
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
    from evaluation.evaluate import EvalConfig, evaluate
    from tests.oserrors import deny_reading, disk_full
    from utils.errors import ToonFaceError

    cartoons = tmp_path / "cartoons"
    cartoons.mkdir()
    with monkeypatch.context() as m:
        deny_reading(m, cartoons)
        res = evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), out=str(tmp_path / "o1"),
                                     cartoon_dir=str(cartoons), inception=str(tmp_path / "none.pt"),
                                     num=1))
    assert any("cannot read" in n and "Permission denied" in n for n in res["metrics"]["notes"])
    disk_full(monkeypatch, when=lambda tmp: "metrics.json" in tmp)
    with pytest.raises(ToonFaceError, match=r"cannot write .*metrics\.json: No space left on device"):
        evaluate(EvalConfig.of(model_version=3, checkpoints_dir=str(run), out=str(tmp_path / "o2"), metrics=False))
