"""Opening a run: --resume keeps the run's options and refuses typed changes, a run of the other
kind is refused, the folder a checkpoint is in is the run's, one process per run, Ctrl-C and
SIGTERM save, kill -9 leaves no worker behind, failed starts leave no folder, and config.json
files written by the previous version still resume."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from losses.registry import TERMS
from models import checkpoint as ckpt
from tests.conftest import ROOT
from training.config import Config, resolve
from utils.errors import ToonFaceError

LEGACY = ROOT / "tests" / "data" / "legacy"
TINY = {"image_size": 32, "batch_size": 2, "workers": 0, "progress": False, "holdout": 0,
        "tensorboard": False, "log_every": 1, "sample_every": 100}


def train_cfg(tmp_path, demo_data, explicit=None, **over):
    photos, cartoons = demo_data
    params = {**TINY, "photo_dir": str(photos), "cartoon_dir": str(cartoons), "vgg_weights": "random",
              "init": "none", "checkpoints_dir": str(tmp_path / "ck"), "w5": 0.0, **over}
    return resolve("train", params, explicit)


def pretrain_cfg(tmp_path, demo_data, **over):
    photos, _ = demo_data
    return resolve("pretrain", {**TINY, "photo_dir": str(photos),
                                "checkpoints_dir": str(tmp_path / "ck"), **over})


def test_resume_refuses_a_typed_option_that_differs(tmp_path, demo_data):
    from training.loop import train

    train(train_cfg(tmp_path, demo_data, name="r", total_iter=1))
    # runtime options may change: total_iter, logging ...
    res = train(train_cfg(tmp_path, demo_data, name="r", total_iter=2, resume=True, log_every=2))
    assert res["step"] == 2
    cfg = json.loads((tmp_path / "ck" / "r" / "config.json").read_text())
    assert cfg["total_iter"] == 2 and cfg["w5"] == 0.0
    # a loss weight may not: one line naming the option, the saved and the typed value
    with pytest.raises(ToonFaceError, match=r"--w5 differs: the run has 0\.0, the command line 20\.0"):
        train(train_cfg(tmp_path, demo_data, name="r", total_iter=3, resume=True, w5=20.0))
    # an option the user did not type keeps the run's value, whatever today's default
    res = train(train_cfg(tmp_path, demo_data, explicit={"name", "resume", "total_iter"}, name="r",
                          total_iter=3, resume=True, seg_num=50))
    assert res["step"] == 3
    assert json.loads((tmp_path / "ck" / "r" / "config.json").read_text())["seg_num"] == 200


def test_resume_refusal_on_the_command_line(tmp_path, demo_data):
    photos, cartoons = demo_data
    base = [sys.executable, str(ROOT / "train.py"), "--checkpoints_dir", str(tmp_path / "ck"),
            "--photo_dir", str(photos), "--cartoon_dir", str(cartoons), "--vgg-weights", "random",
            "--init", "none", "--no-progress", "--workers", "0", "--image_size", "32",
            "--batch_size", "2", "--w5", "0", "--name", "c"]
    first = subprocess.run(base + ["--total_iter", "1"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run(base + ["--total_iter", "2", "--resume", "--w-surface", "0.5"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith("error: --resume keeps the run's options, "
                                                           "but --w1 differs")
    assert "Traceback" not in again.stderr


def test_a_run_of_the_other_kind_is_refused(tmp_path, demo_data):
    from training.loop import pretrain, train

    pretrain(pretrain_cfg(tmp_path, demo_data, name="pre", total_iter=1))
    train(train_cfg(tmp_path, demo_data, name="tr", total_iter=1))
    before = (tmp_path / "ck" / "tr" / "ckpt" / "latest.pt").read_bytes()
    with pytest.raises(ToonFaceError, match="is a train run: resume it with train.py"):
        pretrain(pretrain_cfg(tmp_path, demo_data, name="tr", total_iter=2, resume=True))
    assert (tmp_path / "ck" / "tr" / "ckpt" / "latest.pt").read_bytes() == before
    with pytest.raises(ToonFaceError, match="is a pretrain run: resume it with pretrain.py"):
        train(train_cfg(tmp_path, demo_data, name="pre", total_iter=2, resume=True))


def test_malformed_checkpoints_give_one_line(tmp_path, demo_data):
    from training.loop import train

    train(train_cfg(tmp_path, demo_data, name="m", total_iter=1))
    latest = tmp_path / "ck" / "m" / "ckpt" / "latest.pt"
    gen = tmp_path / "ck" / "m" / "generator" / "latest.pt"
    shutil.copy(gen, latest)  # a generator-only file where the full state belongs
    with pytest.raises(ToonFaceError, match="is a generator file, not a training checkpoint"):
        train(train_cfg(tmp_path, demo_data, name="m", total_iter=2, resume=True))
    for bad, msg in ((torch.zeros(3), "holds a Tensor"), ([1, 2], "holds a list"),
                     ({"G": {}, "kind": "train"}, "not a complete train checkpoint")):
        torch.save(bad, latest)
        with pytest.raises(ToonFaceError, match=msg):
            train(train_cfg(tmp_path, demo_data, name="m", total_iter=2, resume=True))
        with pytest.raises(ToonFaceError):
            ckpt.load_generator(latest)


def test_the_folder_a_checkpoint_is_in_is_the_run(tmp_path, demo_data):
    from training.loop import pretrain

    pretrain(pretrain_cfg(tmp_path, demo_data, name="A", total_iter=1))
    a_bytes = (tmp_path / "ck" / "A" / "ckpt" / "latest.pt").read_bytes()
    shutil.copytree(tmp_path / "ck" / "A", tmp_path / "ck" / "B")
    res = pretrain(pretrain_cfg(tmp_path, demo_data, name="B", total_iter=2, resume=True))
    assert Path(res["run_dir"]) == tmp_path / "ck" / "B" and res["step"] == 2
    assert (tmp_path / "ck" / "A" / "ckpt" / "latest.pt").read_bytes() == a_bytes  # A untouched
    # a moved checkpoints folder: its log and stats are where it is now
    shutil.move(str(tmp_path / "ck"), str(tmp_path / "moved"))
    res = pretrain(resolve("pretrain", {**TINY, "photo_dir": str(demo_data[0]), "name": "B",
                                        "checkpoints_dir": str(tmp_path / "moved"), "total_iter": 3,
                                        "resume": True}))
    assert res["step"] == 3
    assert json.loads((tmp_path / "moved" / "B" / "config.json").read_text())["checkpoints_dir"] == \
        str(tmp_path / "moved")


def test_a_run_copied_with_its_pretraining_resumes_with_the_copys_init(tmp_path, demo_data):
    """A study's run continued in another sweep folder: the sweep types --init as the new
    folder's pretraining, a byte copy of the run's own (same pretrained hash): resumed, and
    config.json names the copy. Another generator as --init is still refused."""
    from training.loop import pretrain, train

    pretrain(pretrain_cfg(tmp_path, demo_data, name="s/pre", total_iter=1))
    pre = tmp_path / "ck" / "s" / "pre" / "generator" / "latest.pt"
    train(train_cfg(tmp_path, demo_data, name="s/run", total_iter=1, init=str(pre)))
    (tmp_path / "ck" / "t").mkdir()
    for sub in ("pre", "run"):
        shutil.copytree(tmp_path / "ck" / "s" / sub, tmp_path / "ck" / "t" / sub)
    copy = tmp_path / "ck" / "t" / "pre" / "generator" / "latest.pt"
    res = train(train_cfg(tmp_path, demo_data, name="t/run", total_iter=2, resume=True,
                          init=str(copy)))
    assert res["step"] == 2
    cfg = json.loads((tmp_path / "ck" / "t" / "run" / "config.json").read_text())
    assert cfg["init"] == cfg["init_resolved"] == str(copy)
    orig = json.loads((tmp_path / "ck" / "s" / "run" / "config.json").read_text())
    assert cfg["pretrained_hash"] == orig["pretrained_hash"] and orig["init"] == str(pre)
    # a different generator is another starting point: refused, one line
    pretrain(pretrain_cfg(tmp_path, demo_data, name="other", total_iter=2, seed=5))
    other = tmp_path / "ck" / "other" / "generator" / "latest.pt"
    with pytest.raises(ToonFaceError, match=r"--init differs"):
        train(train_cfg(tmp_path, demo_data, name="t/run", total_iter=3, resume=True,
                        init=str(other)))
    with pytest.raises(ToonFaceError, match=r"--init differs"):
        train(train_cfg(tmp_path, demo_data, name="t/run", total_iter=3, resume=True,
                        init=str(tmp_path / "missing.pt")))


def test_failed_start_leaves_no_run_folder(tmp_path, demo_data):
    from training.loop import train

    bad_init = tmp_path / "not_a_generator.pt"
    torch.save({"hello": torch.zeros(1)}, bad_init)
    with pytest.raises(ToonFaceError, match="not a ToonFace generator"):
        train(train_cfg(tmp_path, demo_data, name="x", total_iter=1, init=str(bad_init)))
    with pytest.raises(ToonFaceError, match="vgg19.pth"):
        train(train_cfg(tmp_path, demo_data, name="x", total_iter=1,
                        vgg_weights=str(tmp_path / "vgg19.pth")))
    with pytest.raises(ToonFaceError, match="cartoon folder not found"):
        train(train_cfg(tmp_path, demo_data, name="x", total_iter=1, cartoon_dir=str(tmp_path / "no")))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not weights at all")
    with pytest.raises(ToonFaceError, match="garbage.pth"):  # found when read, before the folder exists
        train(train_cfg(tmp_path, demo_data, name="x", total_iter=1, vgg_weights=str(garbage)))
    with pytest.raises(ToonFaceError, match="--device mps"):
        train(train_cfg(tmp_path, demo_data, name="x", total_iter=1, device="mps"))
    assert not (tmp_path / "ck" / "x").exists()


def test_a_start_failing_after_the_folder_is_made_removes_it(tmp_path, demo_data, monkeypatch):
    """A fresh run's folder made by a start that then fails is removed (nothing half-made is
    left); a resumed run's folder is never removed."""
    import training.loop as loop

    def broken(cfg):
        raise ToonFaceError("generator cannot be built")

    train = loop.train
    train(train_cfg(tmp_path, demo_data, name="kept", total_iter=1))
    monkeypatch.setattr(loop, "new_generator", broken)
    with pytest.raises(ToonFaceError, match="cannot be built"):
        train(train_cfg(tmp_path, demo_data, name="x", total_iter=1))
    assert not (tmp_path / "ck" / "x").exists()
    with pytest.raises(ToonFaceError, match="cannot be built"):
        train(resolve("train", {"name": "kept", "checkpoints_dir": str(tmp_path / "ck"), "resume": True,
                                "total_iter": 2}, {"name", "checkpoints_dir", "resume", "total_iter"}))
    assert (tmp_path / "ck" / "kept" / "ckpt" / "latest.pt").is_file()


def test_two_fresh_starts_with_one_name_leave_the_winners_folder(tmp_path, demo_data, monkeypatch):
    """Both starts see no folder; the other process makes it and takes the lock first. This
    start fails with "in use" and must not remove the folder it did not make."""
    import training.loop as loop
    from training.run import RunLock

    real = loop.create_run
    held = []

    def other_process_first(cfg, run, info, lock):
        run.mkdirs()
        held.append(RunLock(run).acquire())
        (run.path / "theirs.txt").write_text("kept")
        return real(cfg, run, info, lock)

    monkeypatch.setattr(loop, "create_run", other_process_first)
    try:
        with pytest.raises(ToonFaceError, match="in use by another process"):
            loop.train(train_cfg(tmp_path, demo_data, name="x", total_iter=1))
        assert (tmp_path / "ck" / "x" / "theirs.txt").read_text() == "kept"
    finally:
        for lock in held:
            lock.release()


def test_unwritable_checkpoints_dir_is_one_line_before_any_work(tmp_path, demo_data):
    """Checked when the run is opened: before the photos are read (the photo folder here is
    missing, and that is not what is reported)."""
    from training.loop import pretrain

    ck = tmp_path / "ck"
    ck.mkdir()
    ck.chmod(0o555)  # read-only by intent: refused even where root could write
    try:
        with pytest.raises(ToonFaceError, match=r"run folder .*cannot write in .*read-only"):
            pretrain(pretrain_cfg(tmp_path, demo_data, name="p", total_iter=1,
                                  photo_dir=str(tmp_path / "no_photos")))
    finally:
        ck.chmod(0o755)
    assert list(ck.iterdir()) == []


def test_disk_full_while_training_is_one_line_and_keeps_the_last_checkpoint(tmp_path, demo_data,
                                                                            monkeypatch):
    from tests.oserrors import disk_full
    from training.loop import pretrain

    disk_full(monkeypatch, when=lambda tmp: "step_000004" in tmp)  # the second checkpoint
    with pytest.raises(ToonFaceError) as e:
        pretrain(pretrain_cfg(tmp_path, demo_data, name="f", total_iter=4, save_every=2))
    msg, ck = str(e.value), tmp_path / "ck" / "f" / "ckpt"
    assert "\n" not in msg and "No space left on device" in msg and "step_000004" in msg
    assert f"stopped at step 4, the last checkpoint is {ck / 'latest.pt'} (step 2)" in msg
    assert ckpt.load_checkpoint_file(ck / "latest.pt")["step"] == 2
    assert not list(ck.glob("*.tmp")) and not list(ck.glob(".*.tmp"))


def test_unreadable_cartoon_folder_is_one_line_with_the_cause(tmp_path, demo_data, monkeypatch):
    from tests.oserrors import deny_reading
    from training.loop import train

    cartoons = tmp_path / "cartoons"
    shutil.copytree(demo_data[1], cartoons)
    deny_reading(monkeypatch, cartoons)
    with pytest.raises(ToonFaceError, match=r"cartoon folder .*cannot read it \(Permission denied\)"):
        train(train_cfg(tmp_path, demo_data, name="u", total_iter=1, cartoon_dir=str(cartoons)))
    assert not (tmp_path / "ck" / "u").exists()


def test_stale_temporaries_are_removed_and_divergence_names_no_missing_checkpoint(tmp_path, demo_data,
                                                                                 monkeypatch):
    from losses import variation
    from training import loop

    run = tmp_path / "ck" / "t"
    (run / "ckpt").mkdir(parents=True)
    stale = run / "ckpt" / ".latest.pt.1234abcd.tmp"
    stale.write_bytes(b"x" * 100)
    monkeypatch.setattr(variation, "total_variation_loss", lambda x: x.sum() * float("nan"))
    with pytest.raises(loop.TrainingDiverged, match="G/tv .* step 1; stopped, no checkpoint was written"):
        loop.train(train_cfg(tmp_path, demo_data, name="t", total_iter=3, w0=1.0))
    assert not stale.exists()


def test_heldout_list_survives_any_file_name(tmp_path, demo_data):
    from PIL import Image

    from training.loop import pretrain
    from utils.run_dir import RunDir

    photos = tmp_path / "odd"
    photos.mkdir()
    src = sorted(Path(demo_data[0]).glob("*.png"))
    names = ["new\nline.png", "tab\tand space.png", "ünï.png"] + [f"{i}.png" for i in range(9)]
    for name, s in zip(names, src):
        Image.open(s).save(photos / name)
    res = pretrain(resolve("pretrain", {**TINY, "photo_dir": str(photos), "holdout": 10, "seed": 1,
                                        "checkpoints_dir": str(tmp_path / "ck"), "total_iter": 1}))
    held = RunDir(res["run_dir"]).read_heldout()
    assert len(held) == 1 and all(p.is_file() for p in held)
    r = RunDir(tmp_path / "h")  # the odd names round-trip, however the split fell
    (tmp_path / "h").mkdir()
    r.write_heldout([photos / n for n in names[:3]])
    assert [p.name for p in r.read_heldout()] == names[:3]
    (tmp_path / "h" / "heldout.txt").write_text(f"{photos / '0.png'}\n")  # the earlier format
    assert r.read_heldout() == [photos / "0.png"]


@pytest.mark.parametrize("mode", ["holdout", "people"])
def test_resume_keeps_the_heldout_split_when_the_photo_folder_changed(tmp_path, demo_data, mode):
    """The split is part of the run: a resume after photos were added and removed keeps
    heldout.txt (a new draw would train on former held-out faces), trains on none of them,
    and says in one log line what changed."""
    from training import data as D
    from training.loop import pretrain
    from utils.run_dir import RunDir

    photos = tmp_path / "photos"
    shutil.copytree(demo_data[0], photos)
    extra = {"holdout": 5} if mode == "holdout" else {"heldout_people": "0003,0007"}
    cfg = dict(TINY, photo_dir=str(photos), checkpoints_dir=str(tmp_path / "ck"), name="p", **extra)
    res = pretrain(resolve("pretrain", {**cfg, "total_iter": 1}))
    run = RunDir(res["run_dir"])
    held_before = run.heldout_file.read_text()
    held = run.read_heldout()
    assert len(held) == (1 if mode == "holdout" else 2)
    assert sorted(p.name for p in run.read_photos()) == sorted(p.name for p in photos.glob("*.png"))
    # the folder changes: 9 photos more (a new draw would hold out 2 of 21), one trained photo gone
    for i, src in enumerate(sorted(photos.glob("*.png"))[:9]):
        shutil.copy(src, photos / f"new{i}.png")
    gone = next(p for p in sorted(photos.glob("0*.png")) if p.resolve() not in held)
    gone.unlink()
    if mode == "people":  # a second photo of a held-out person appears
        (photos / "more").mkdir()
        shutil.copy(held[0], photos / "more" / held[0].name)
    resumed = resolve("pretrain", {**cfg, "total_iter": 2, "resume": True},
                      {"total_iter", "resume", "name", "checkpoints_dir"})
    assert pretrain(resumed)["step"] == 2
    log = run.log_file.read_text()
    split = D.split_photos(resumed, run)
    assert run.heldout_file.read_text() == held_before
    assert [p.resolve() for p in split.held] == held
    trained = {p.resolve() for p in split.train}
    assert not trained & set(held)
    assert len(split.train) == 12 + 9 - 1 - len(held)  # (a held-out person's second photo: not trained on)
    if mode == "people":
        assert all(p.stem not in {h.stem for h in held} for p in split.train)
    line = [ln for ln in log.splitlines() if "changed since the run started" in ln]
    added = 9 if mode == "holdout" else 10
    assert len(line) == 1 and f"{added} photo(s) added" in line[0] and "1 missing" in line[0], log
    assert "the held-out split is kept" in line[0]


def test_config_json_of_the_previous_version_resumes(tmp_path, demo_data):
    """tests/data/legacy holds config.json files written by the version before the typed
    config. A checkpoint whose config is such a dict resumes, and gives exactly the weights of
    an uninterrupted run with the same options."""
    from training.loop import train

    photos, cartoons = demo_data
    legacy = json.loads((LEGACY / "train_config.json").read_text())
    legacy.update(photo_dir=str(photos), cartoon_dir=str(cartoons), init="none", init_resolved=None,
                  checkpoints_dir=str(tmp_path / "ck"), holdout=0)
    # read back into today's typed config: every option the old file has
    cfg = Config.from_flat(legacy)
    assert cfg.loss.weights == {"tv": 1e4, "surface": 0.1, "texture": 1.0, "structure": 200.0,
                                "content": 200.0, "landmark": 1.0,
                                **{t.name: 0.0 for t in TERMS if not t.flag}}  # terms added since
    flat = cfg.flat()
    assert {k: flat[k] for k in legacy} == legacy  # every old option read back as it was
    assert {k: v for k, v in flat.items() if k not in legacy} == {
        "landmark_detector": None, "landmark_model": None, "heldout_people": None,
        "style": None, "pretrained_hash": None, "diffaugment": "", "face_crops": 2,
        **{t.key: 0.0 for t in TERMS if not t.flag},  # later ones: defaults, new terms off, but
        "content_network": "random"}  # inferred: the old vgg_weights "random" meant random VGG19
    assert Config.from_flat(json.loads((LEGACY / "pretrain_config.json").read_text())).kind == "pretrain"

    straight = dict(legacy, name="straight", total_iter=3)
    train(resolve("train", {k: v for k, v in straight.items() if k not in ("kind", "init_resolved")}))
    part = dict(legacy, name="part", total_iter=2)
    train(resolve("train", {k: v for k, v in part.items() if k not in ("kind", "init_resolved")}))
    run = tmp_path / "ck" / "part"
    state = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    state["config"] = dict(part)  # exactly what the previous version stored
    torch.save(state, run / "ckpt" / "latest.pt")
    (run / "config.json").write_text(json.dumps(part))
    train(resolve("train", {"name": "part", "checkpoints_dir": str(tmp_path / "ck"), "resume": True,
                            "total_iter": 3}, {"name", "checkpoints_dir", "resume", "total_iter"}))
    a = ckpt.load_checkpoint_file(tmp_path / "ck" / "straight" / "ckpt" / "latest.pt")
    b = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    for key in ("G", "Ds", "Dt"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"


# ------------------------------------------------------------------ processes and signals
def _start(tmp_path, demo_data, name, workers=0, extra=()):
    photos, cartoons = demo_data
    args = [sys.executable, str(ROOT / "train.py"), "--checkpoints_dir", str(tmp_path / "ck"),
            "--photo_dir", str(photos), "--cartoon_dir", str(cartoons), "--vgg-weights", "random",
            "--init", "none", "--no-progress", "--workers", str(workers), "--image_size", "32",
            "--batch_size", "2", "--w5", "0", "--name", name, "--total_iter", "100000",
            "--log_every", "1", "--save_every", "100000", "--sample_every", "100000", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_steps(run: Path, n: int, proc, timeout: float = 120.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        stats = run / "stats.jsonl"
        if stats.is_file() and len(stats.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    raise AssertionError("the trainer did not reach its steps in time")


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and prctl")
def test_one_process_per_run_and_sigterm_saves(tmp_path, demo_data):
    first = _start(tmp_path, demo_data, "busy")
    run = tmp_path / "ck" / "busy"
    try:
        _wait_for_steps(run, 2, first)
        second = _start(tmp_path, demo_data, "busy", extra=("--resume",))
        out, err = second.communicate(timeout=300)
        assert second.returncode == 2, err[-2000:]
        assert f"run {run} is in use by another process (pid {first.pid})" in err.splitlines()[-1]
        lines = len((run / "stats.jsonl").read_text().splitlines())
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: SIGTERM at step ") and "saved" in last and "--resume" in last
    step = int(last.split("at step ")[1].split(":")[0])
    assert step >= lines
    state = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    assert state["step"] == step
    # the lock went with the process: the run resumes
    again = _start(tmp_path, demo_data, "busy", extra=("--resume",))
    try:
        _wait_for_steps(run, step + 1, again)
    finally:
        again.kill()
        again.communicate()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and prctl")
def test_kill_9_leaves_no_loader_worker(tmp_path, demo_data):
    proc = _start(tmp_path, demo_data, "orphans", workers=2)
    try:
        _wait_for_steps(tmp_path / "ck" / "orphans", 2, proc)
        children = _descendants(proc.pid)
        assert len(children) >= 2  # the loader workers (and whatever multiprocessing started)
        proc.kill()
        proc.communicate()
        t0 = time.time()
        while time.time() - t0 < 30 and any(_alive(c) for c in children):
            time.sleep(0.2)
        assert not [c for c in children if _alive(c)]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_heldout_people_are_left_out_on_both_sides(tmp_path):
    from datasets.demo import build_demo_data
    from training.loop import prepare_train
    from utils.run_dir import RunDir

    photos, cartoons = build_demo_data(tmp_path / "data", 10, 10, size=48)
    stems = sorted(p.stem for p in Path(photos).glob("*.png"))[:3]
    (tmp_path / "held.txt").write_text("# the study's people\n" + "\n".join(stems) + "\n")
    for spec in (",".join(stems), f"@{tmp_path / 'held.txt'}"):
        run = prepare_train(resolve("train", {**TINY, "photo_dir": str(photos), "cartoon_dir": str(cartoons),
                                              "vgg_weights": "random", "init": "none", "w5": 0.0,
                                              "checkpoints_dir": str(tmp_path / "ck"), "name": f"h{len(spec)}",
                                              "heldout_people": spec}))
        run.session.close()
        held = RunDir(tmp_path / "ck" / f"h{len(spec)}").read_heldout()
        assert [p.stem for p in held] == stems
        used = {Path(p).stem for p in run.streams.datasets["photos"].paths}
        used_c = {Path(p).stem for p in run.streams.datasets["cartoons"].paths}
        assert used.isdisjoint(stems) and used_c.isdisjoint(stems) and len(used) == len(used_c) == 7
    with pytest.raises(ToonFaceError, match="no photo named nobody"):
        prepare_train(resolve("train", {**TINY, "photo_dir": str(photos), "cartoon_dir": str(cartoons),
                                        "vgg_weights": "random", "init": "none", "w5": 0.0,
                                        "checkpoints_dir": str(tmp_path / "ck"), "name": "bad",
                                        "heldout_people": "nobody"}))
    assert not (tmp_path / "ck" / "bad").exists()
