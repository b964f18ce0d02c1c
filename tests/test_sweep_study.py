"""Sweep files as studies: the pretrain stage (one pretraining per seed, its generator the
--init of that seed's runs, resumed and skipped), option precedence (file base < command line
< a configuration's own), and held-out people checked before anything runs."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.sweep import plan_sweep
from utils.errors import ToonFaceError

ROOT = Path(__file__).resolve().parents[1]


def sweep_cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "sweep.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def tiny_study(tmp_path, data, **extra):
    photos, cartoons = data
    base = {"photo_dir": str(photos), "cartoon_dir": str(cartoons), "image_size": 32,
            "batch_size": 2, "total_iter": 2, "workers": 0, "progress": False,
            "tensorboard": False, "vgg_weights": "random", "heldout_people": ["0003", "0007"]}
    study = {"base": base, "pretrain": {"total_iter": 1},
             "runs": [{"w5": 0, "seed": 1}, {"w5": 1, "seed": 1}, {"w5": 0, "seed": 2}]}
    study.update(extra)
    return write(tmp_path / "study.json", study)


def test_pretrain_stage_one_per_seed_and_init(tmp_path, demo_data):
    ck = tmp_path / "ck"
    sp = plan_sweep("st", [], str(tiny_study(tmp_path, demo_data)), ["--checkpoints_dir", str(ck)])
    assert [p["id"] for p in sp.pretrains] == ["pretrain-seed1", "pretrain-seed2"]
    assert [r["id"] for r in sp.runs] == ["w5=0_seed=1", "w5=1_seed=1", "w5=0_seed=2"]
    assert [r["pretrain"] for r in sp.runs] == ["pretrain-seed1", "pretrain-seed1", "pretrain-seed2"]
    for r in sp.runs:
        init = ck / "st" / r["pretrain"] / "generator" / "latest.pt"
        assert r["cfg"].model.init == str(init)
        assert r["args"][r["args"].index("--init") + 1] == str(init)
    p1 = sp.pretrains[0]["cfg"]
    # the pretraining takes the base options pretrain.py knows, its own section wins
    assert (p1.kind, p1.run.seed, p1.optim.total_iter, p1.data.image_size) == ("pretrain", 1, 1, 32)
    assert p1.data.heldout_people == "0003,0007" and p1.run.name == "st/pretrain-seed1"
    assert not ck.exists()  # planning writes nothing


def test_a_run_with_its_own_init_needs_no_pretraining(tmp_path, demo_data):
    study = tiny_study(tmp_path, demo_data, runs=[{"w5": 0, "seed": 1, "init": "none"},
                                                  {"w5": 1, "seed": 2}])
    sp = plan_sweep("st", [], str(study), ["--checkpoints_dir", str(tmp_path)])
    assert [p["id"] for p in sp.pretrains] == ["pretrain-seed2"]
    assert sp.runs[0]["pretrain"] is None and sp.runs[0]["cfg"].model.init == "none"


def test_command_line_beats_file_base_and_runs_beat_both(tmp_path, demo_data):
    study = tiny_study(tmp_path, demo_data, runs=[{"w5": 0}, {"w5": 1, "total_iter": 7}])
    sp = plan_sweep("st", [], str(study), ["--total_iter", "5", "--vgg-weights", "/x/vgg19.pth",
                                           "--checkpoints_dir", str(tmp_path)])
    assert [r["cfg"].optim.total_iter for r in sp.runs] == [5, 7]
    assert {r["cfg"].loss.vgg_weights for r in sp.runs} == {"/x/vgg19.pth"}
    # the command line's pretrain options reach the pretraining; its own section still wins
    assert sp.pretrains[0]["cfg"].optim.total_iter == 1
    sp = plan_sweep("st", [], str(study), ["--image_size", "48", "--checkpoints_dir", str(tmp_path)])
    assert sp.pretrains[0]["cfg"].data.image_size == 48 and sp.runs[0]["cfg"].data.image_size == 48


def test_pretrain_section_keys_are_pretrain_options(tmp_path, demo_data):
    study = tiny_study(tmp_path, demo_data, pretrain={"w5": 1})
    with pytest.raises(ToonFaceError, match="study.json pretrain: .*unknown pretrain option 'w5'|"
                                            "unknown pretrain option 'w5'"):
        plan_sweep("st", [], str(study), [])
    with pytest.raises(ToonFaceError, match="unknown section"):
        plan_sweep("st", [], str(write(tmp_path / "b.json", {"runs": [{}], "pretrian": {}})), [])


@pytest.mark.parametrize("case", ["missing", "twice", "scenery"])
def test_bad_heldout_people_stop_before_anything_runs(tmp_path, demo_data, case):
    import shutil

    photos, cartoons = demo_data
    ck = tmp_path / "ck"
    extra = {}
    if case == "missing":
        extra["heldout_people"] = ["0003", "9999"]
        want = "held-out person 9999 has no photo in"
    elif case == "twice":
        own = tmp_path / "photos"
        shutil.copytree(photos, own)
        (own / "more").mkdir()
        shutil.copy(own / "0007.png", own / "more" / "0007.jpg.png")  # stem 0007.jpg: not the same
        shutil.copy(own / "0007.png", own / "more" / "0007.png")
        extra["photo_dir"] = str(own)
        want = "held-out person 0007 appears 2 times in"
    else:
        scn = tmp_path / "scenery"
        scn.mkdir()
        shutil.copy(photos / "0003.png", scn / "0003.png")
        extra.update(scenery_photo_dir=str(scn), scenery_cartoon_dir=str(cartoons))
        want = "held-out person 0003 also appears in training (scenery photos"
    study = json.loads(tiny_study(tmp_path, demo_data).read_text())
    study["base"].update(extra)
    res = sweep_cli("--name", "st", "--configs", write(tmp_path / "s.json", study), "--",
                    "--checkpoints_dir", ck)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: run w5=0_seed=1: " + want), res.stderr
    assert not ck.exists()


def test_study_sweep_pretrains_once_per_seed_then_resumes(tmp_path, demo_data):
    ck = tmp_path / "ck"
    study = tiny_study(tmp_path, demo_data, runs=[{"w5": 0, "seed": 1}, {"w5": 1, "seed": 1}])
    args = ["--name", "st", "--configs", study, "--no-eval", "--", "--checkpoints_dir", ck]
    res = sweep_cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("pretrain.py") == 1 and res.stderr.count("train.py") == 3
    order = [line.split("]")[1].split(":")[0].strip() for line in res.stderr.splitlines()
             if line.startswith("[")]
    assert order == ["pretrain-seed1", "w5=0", "w5=1"]  # one seed: it does not label the runs
    pre = ck / "st" / "pretrain-seed1"
    for rid in ("w5=0", "w5=1"):
        cfg = json.loads((ck / "st" / rid / "config.json").read_text())
        assert cfg["init_resolved"] == str(pre / "generator" / "latest.pt") and cfg["seed"] == 1
        # held out on both sides: the people's photos are the held-out list
        held = (ck / "st" / rid / "heldout.txt").read_text().split()
        assert [Path(h).stem for h in held] == ["0003", "0007"]
    sweep_json = json.loads((ck / "st" / "sweep.json").read_text())
    assert [p["id"] for p in sweep_json["pretrains"]] == ["pretrain-seed1"]

    again = sweep_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("finished, skipped") == 3 and ".py" not in again.stderr


# ------------------------------------------------------------------ study statistics
def test_mean_std_over_seeds_by_hand():
    from evaluation.sweep import mean_std

    m, s, n = mean_std([0.02, 0.04, 0.03])
    assert n == 3 and m == pytest.approx(0.03) and s == pytest.approx(0.01)  # sample std, ddof 1
    assert mean_std([5.0, None, float("nan")]) == (5.0, None, 1)
    assert mean_std([None]) == (None, None, 0)


def test_by_configuration_groups_seeds():
    from evaluation.sweep import by_configuration

    entries = [{"options": {"w5": 0.0, "seed": s}, "summary": {"nme68_mean": v, "flatness": f}}
               for s, v, f in ((1, 0.10, 1.0), (2, 0.20, 3.0), (3, 0.30, 5.0))]
    entries += [{"options": {"w5": 10.0, "seed": s}, "summary": {"nme68_mean": v, "flatness": None}}
                for s, v in ((1, 0.05), (2, 0.07))]
    rows = by_configuration(entries, ["nme68_mean", "flatness"], "seed")
    assert [r["configuration"] for r in rows] == ["w5=0", "w5=10"]
    assert rows[0]["runs"] == 3 and rows[0]["seeds"] == "1 2 3"
    assert rows[0]["nme68_mean_mean"] == pytest.approx(0.2) and rows[0]["nme68_mean_std"] == pytest.approx(0.1)
    assert rows[0]["flatness_mean"] == pytest.approx(3.0) and rows[0]["flatness_std"] == pytest.approx(2.0)
    assert rows[1]["nme68_mean_mean"] == pytest.approx(0.06)
    assert rows[1]["nme68_mean_std"] == pytest.approx(0.0141421356)
    assert rows[1]["flatness_mean"] is None and rows[1]["flatness_std"] is None


def test_paired_counts_per_seed_by_hand():
    from evaluation.sweep import paired_counts, paired_table

    base = {"a": 0.10, "b": 0.20, "c": 0.30, "d": None, "e": 0.5}
    other = {"a": 0.05, "b": 0.25, "c": 0.30, "d": 0.1}
    assert paired_counts(base, other) == {"improved": 1, "worse": 1, "tied": 1, "compared": 3, "missing": 2}

    def entry(w5, seed, nme, ident):
        return {"options": {"w5": w5, "seed": seed},
                "per_image": {n: {"nme68": x, "identity_distance": y}
                              for n, x, y in zip("abc", nme, ident)}}

    entries = [entry(0.0, 1, (0.1, 0.2, 0.3), (0.4, 0.4, 0.4)),
               entry(10.0, 1, (0.05, 0.1, 0.4), (0.3, 0.5, 0.4)),
               entry(0.0, 2, (0.1, 0.1, 0.1), (0.4, 0.4, 0.4)),
               entry(10.0, 2, (0.2, 0.2, 0.2), (0.1, 0.1, 0.1)),
               entry(10.0, 3, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))]  # seed 3 has no baseline run
    rows = paired_table(entries, "seed", {"w5": 0.0}, ["nme68", "identity_distance"])
    got = {(r["seed"], r["metric"]): (r["improved"], r["worse"], r["tied"]) for r in rows}
    assert got == {(1, "nme68"): (2, 1, 0), (1, "identity_distance"): (1, 1, 1),
                   (2, "nme68"): (0, 3, 0), (2, "identity_distance"): (3, 0, 0)}
    assert {(r["configuration"], r["baseline"]) for r in rows} == {("w5=10", "w5=0")}


def test_paired_tables_take_each_baseline_in_turn_without_mirrors():
    from evaluation.sweep.report import paired_tables

    def entry(w5, reg, seed, nme):
        return {"options": {"w5": w5, "w_landmark_regressor": reg, "seed": seed},
                "per_image": {n: {"nme68": x} for n, x in zip("abc", nme)}}

    none, edge, regr = (0.0, 0.0), (10.0, 0.0), (0.0, 5.0)
    entries = [entry(*none, 1, (0.3, 0.3, 0.3)), entry(*edge, 1, (0.1, 0.2, 0.4)),
               entry(*regr, 1, (0.2, 0.1, 0.4))]
    rows = paired_tables(entries, "seed", [{"w5": 0.0, "w_landmark_regressor": 0.0},
                                          {"w5": 10.0, "w_landmark_regressor": 0.0}], ["nme68"])
    got = [(r["configuration"], r["baseline"], r["improved"], r["worse"], r["tied"]) for r in rows]
    # against none: edge and the regressor; against edge: the regressor only (none against
    # edge would be the mirror of edge against none). The regressor against edge by hand:
    # a 0.2 > 0.1 worse, b 0.1 < 0.2 better, c 0.4 = 0.4 tied
    assert got == [("w5=10 w_landmark_regressor=0", "w5=0 w_landmark_regressor=0", 2, 1, 0),
                   ("w5=0 w_landmark_regressor=5", "w5=0 w_landmark_regressor=0", 2, 1, 0),
                   ("w5=0 w_landmark_regressor=5", "w5=10 w_landmark_regressor=0", 1, 1, 1)]


def test_study_scores_reference_portrait_and_writes_tables(tmp_path, demo_data):
    """A 2-run study (w5 = 0 / 1 of one seed, 2 steps each) with the reference row, portrait
    mode on 2 scenes and the paired comparison: every table and the figure are written, and a
    rerun (re-score, --no-train) reuses every evaluation."""
    import csv

    photos, cartoons = demo_data
    ck = tmp_path / "ck"
    study = tiny_study(tmp_path, demo_data, runs=[{"w5": 0}, {"w5": 1}],
                       evaluate={"reference": {"dir": str(cartoons), "label": "drawn cartoons"},
                                 "pretrained": True,
                                 "portrait": {"photo_dir": str(photos), "photos": ["0001", "0002"]}},
                       compare={"replicate": "seed", "baseline": {"w5": 0}})
    args = ["--name", "st", "--configs", study, "--", "--checkpoints_dir", ck]
    res = sweep_cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    sweep_dir = ck / "st"
    with open(sweep_dir / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["w5=0", "w5=1", "pretrain-seed0", "drawn cartoons"]
    assert [r["status"] for r in rows] == ["evaluated", "evaluated", "pretrained", "reference"]
    assert rows[0]["portrait_pairs"] == "2" and rows[3]["portrait_pairs"] == ""
    # the reference is scored on the same held-out faces at the runs' size
    ref = json.loads((sweep_dir / "reference" / "metrics.json").read_text())
    assert [Path(p).stem for p in ref["source"]["photos"]] == ["0003", "0007"]
    assert ref["source"]["image_size"] == 32
    with open(sweep_dir / "study.csv") as f:
        study_rows = list(csv.DictReader(f))
    assert [r["configuration"] for r in study_rows] == [
        "w5=0", "w5=1", "pretrained generator (no cartoon training)", "drawn cartoons"]
    assert study_rows[0]["runs"] == "1" and study_rows[0]["nme68_mean_std"] == ""
    with open(sweep_dir / "paired.csv") as f:
        paired = list(csv.DictReader(f))
    assert [(p["configuration"], p["baseline"], p["metric"]) for p in paired] == \
        [("w5=1", "w5=0", "nme68"), ("w5=1", "w5=0", "identity_distance")]
    assert all(int(p["compared"]) + int(p["missing"]) == 2 for p in paired)
    assert (sweep_dir / "comparison.png").is_file()

    again = sweep_cli(*args[:4], "--no-train", *args[4:])
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already there") == 6 and "train.py" not in again.stderr


def test_window_metrics_average_each_photo_over_saves_by_hand():
    from evaluation.sweep.evaluate_runs import window_metrics

    def ev(step, nme_a, nme_b, same_a, colours):
        per = [{"name": "a", "nme68": nme_a, "same_person": same_a, "status": f"s{step}"},
               {"name": "b", "nme68": nme_b, "same_person": True, "status": f"s{step}"}]
        summ = {"nme68_mean": (nme_a + nme_b) / 2 if nme_b is not None else nme_a,
                "distinct_colours": colours, "fid_cartoon": None}
        return {"metrics": {"step": step, "checkpoint": f"g{step}", "summary": summ,
                            "nme68_mean": summ["nme68_mean"], "per_image": per,
                            "not_independent": {"x": step}}}

    w = window_metrics([ev(250, 0.02, 0.04, True, 1000), ev(500, 0.04, None, False, 1300),
                        ev(750, 0.06, 0.10, True, 1600)])
    assert w["steps"] == [250, 500, 750] and w["step"] == 750 and w["checkpoint"] == "g750"
    assert w["not_independent"] == {"x": 750}
    assert w["summary"]["nme68_mean"] == pytest.approx((0.03 + 0.04 + 0.08) / 3)
    assert w["nme68_mean"] == w["summary"]["nme68_mean"]
    assert w["summary"]["distinct_colours"] == pytest.approx(1300)
    assert w["summary"]["fid_cartoon"] is None
    a, b = sorted(w["per_image"], key=lambda r: r["name"])
    assert a["nme68"] == pytest.approx(0.04) and a["same_person"] == pytest.approx(2 / 3)
    assert a["saves"] == 3 and a["status"] == "s750"
    assert b["nme68"] == pytest.approx(0.07)  # the save where dlib lost it is left out
    one = ev(1000, 0.01, 0.03, True, 900)
    assert window_metrics([one])["summary"]["nme68_mean"] == pytest.approx(0.02)
    with pytest.raises(ValueError):
        window_metrics([])


@pytest.mark.parametrize("last, want", [(1, [1000]), (2, [750, 1000]), (4, [250, 500, 750, 1000]),
                                        (5, [250, 500, 750, 1000]), (9, [250, 500, 750, 1000])])
def test_evaluate_windows_picks_the_last_saves(monkeypatch, tmp_path, last, want):
    """The last ``last`` saves up to the final step, oldest first: none after the final step,
    all of them (and a notice) when the run saved fewer."""
    from evaluation.sweep import evaluate_runs
    from utils.run_dir import RunDir

    f = RunDir(tmp_path / "run")
    f.generator_dir.mkdir(parents=True)
    for step in (250, 500, 750, 1000, 1250):  # 1250: saved after the step scored as final
        f.generator(step).write_bytes(b"")
    monkeypatch.setattr(evaluate_runs, "run_dir", lambda cfg: f)
    monkeypatch.setattr(evaluate_runs, "evaluate_generator",
                        lambda run, gen, step, *a, **k: {"metrics": {"step": step}, "generator": gen})
    final = {"metrics": {"step": 1000}, "generator": f.latest_generator}
    said = []
    got = evaluate_runs.evaluate_windows([{"id": "r", "cfg": None}, {"id": "s", "cfg": None}],
                                         [final, None], last, [], None, "cpu", said.append)
    assert got[1] is None and got[0][-1] is final
    assert [e["metrics"]["step"] for e in got[0]] == want
    assert [e["generator"] for e in got[0][:-1]] == [f.generator(s) for s in want[:-1]]
    assert len(said) == (1 if last > 4 else 0)


def test_last_saves_scores_each_runs_last_generators(tmp_path, demo_data):
    """evaluate.last_saves 2: every run is also scored at its save before the last, into its
    own test/step_XXXXXX (portrait mode too), and summary/study/paired_last2.csv hold the
    means of the two saves' own metrics.json, photo by photo; a rerun reuses them all."""
    import csv

    photos, _ = demo_data
    ck = tmp_path / "ck"
    study = tiny_study(tmp_path, demo_data, runs=[{"w5": 0}, {"w5": 1}],
                       evaluate={"last_saves": 2,
                                 "portrait": {"photo_dir": str(photos), "photos": ["0001"]}},
                       compare={"replicate": "seed", "baseline": {"w5": 0}})
    data = json.loads(study.read_text())
    data["base"].update(total_iter=3, save_every=1)
    study.write_text(json.dumps(data))
    args = ["--name", "st", "--configs", study, "--", "--checkpoints_dir", ck]
    res = sweep_cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    sweep_dir = ck / "st"
    assert "summary_last2: " in res.stdout and "paired_last2: " in res.stdout
    with open(sweep_dir / "summary_last2.csv") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    with open(sweep_dir / "summary.csv") as f:
        final = {r["run"]: r for r in csv.DictReader(f)}
    for rid in ("w5=0", "w5=1"):
        test = sweep_dir / rid / "test"
        m2, m3 = (json.loads((test / f"step_{s:06d}" / "metrics.json").read_text()) for s in (2, 3))
        assert m2["step"] == 2 and m3["step"] == 3
        assert rows[rid]["step"] == "2 3" and final[rid]["step"] == "3"
        for k in ("distinct_colours", "edge_density", "nme68_mean"):
            vals = [m["summary"][k] for m in (m2, m3) if m["summary"][k] is not None]
            want = sum(vals) / len(vals) if vals else None
            got = rows[rid][k]
            assert (got == "" if want is None else float(got) == pytest.approx(want, rel=1e-5)), k
            assert final[rid][k] == ("" if m3["summary"][k] is None else final[rid][k])
        p2, p3 = (json.loads((test / f"step_{s:06d}" / "portrait" / "metrics.json").read_text())
                  for s in (2, 3))
        assert p2["portrait_scenes"] == p3["portrait_scenes"]
        assert (p2["portrait_step"], p3["portrait_step"]) == (2, 3)  # each save's own generator
        assert rows[rid]["portrait_pairs"] == "1"
    with open(sweep_dir / "paired_last2.csv") as f:
        paired = list(csv.DictReader(f))
    assert [(p["configuration"], p["metric"]) for p in paired] == [
        ("w5=1", "nme68"), ("w5=1", "identity_distance")]
    assert not (sweep_dir / "comparison_last2.png").exists()
    again = sweep_cli(*args[:4], "--no-train", *args[4:])
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already there") == 8 and "train.py" not in again.stderr


@pytest.mark.parametrize("section, value, want", [
    ("evaluate", {"reference": {"dir": "/no/such/dir"}}, "reference folder not found: /no/such/dir"),
    ("evaluate", {"portrait": {"photo_dir": "PHOTOS", "photos": ["0001", "zz"]}}, "no image(s) named zz.*"),
    ("evaluate", {"refrence": {}}, "unknown key(s) refrence"),
    ("evaluate", {"last_saves": 0}, "last_saves: expected a whole number of at least 1, got the number 0"),
    ("evaluate", {"last_saves": "4"}, "last_saves: expected a whole number of at least 1"),
    ("compare", {"baseline": {"w5": 3}}, "no run has the baseline options"),
    ("compare", {"baseline": [{"w5": 0}, {"w5": 3}]}, "no run has the baseline options {'w5': 3.0}"),
    ("compare", {"baseline": []}, "baseline: expected options, e.g. {w5: 0}, or a list of them"),
    ("compare", {"baseline": [{"w5": 0}, 5]}, "baseline: expected options, e.g. {w5: 0}, or a list of them"),
    ("compare", {"baseline": {"w5": 0}, "paired": ["flatness"]}, "flatness is not a per-image metric"),
    ("compare", {"replicate": "seeds"}, "unknown train option 'seeds'"),
])
def test_bad_evaluate_and_compare_sections_stop_before_training(tmp_path, demo_data, section, value, want):
    photos, _ = demo_data
    if "portrait" in value:
        value["portrait"]["photo_dir"] = str(photos)
    ck = tmp_path / "ck"
    res = sweep_cli("--name", "st", "--configs", tiny_study(tmp_path, demo_data, **{section: value}),
                    "--", "--checkpoints_dir", ck)
    assert res.returncode == 2 and want in res.stderr, res.stderr[-2000:]
    assert len(res.stderr.strip().splitlines()) == 1 and not ck.exists()


def test_the_sweep_never_writes_among_its_reference_or_portrait_inputs(tmp_path, demo_data):
    """evaluate.reference: the sweep writes the reference's crops into <sweep>/reference/
    {photos,outputs}/; evaluate.portrait: each run's outputs into <run>/test/. Neither may be
    (or lie inside) the folder the file names as input, where they would replace or join it."""
    import shutil

    from evaluation.sweep.evaluate_runs import check_evaluate_section

    photos, _ = demo_data
    ck = tmp_path / "ck"
    ref = ck / "st" / "reference" / "outputs"
    shutil.copytree(photos, ref)
    before = sorted(ref.iterdir())
    sp = plan_sweep("st", [], str(tiny_study(tmp_path, demo_data, evaluate={"reference": {"dir": str(ref)}})),
                    ["--checkpoints_dir", str(ck)])
    with pytest.raises(ToonFaceError, match=r"its outputs/ images are written into .* which is the "
                                            r"evaluate\.reference\.dir folder") as e:
        check_evaluate_section(sp)
    assert "\n" not in str(e.value) and sorted(ref.iterdir()) == before
    scenes = tmp_path / "scenes"   # the runs' folders (checkpoints_dir) inside the scenes folder
    scenes.mkdir()
    shutil.copy(photos / "0001.png", scenes / "0001.png")
    study = tiny_study(tmp_path, demo_data, evaluate={"portrait": {"photo_dir": str(scenes), "photos": ["0001"]}})
    sp = plan_sweep("st", [], str(study), ["--checkpoints_dir", str(scenes / "ck")])
    with pytest.raises(ToonFaceError, match=r"test folder .* is inside the evaluate\.portrait\.photo_dir folder"):
        check_evaluate_section(sp)
