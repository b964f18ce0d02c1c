"""Named styles: the registry, --style everywhere a checkpoint is accepted, and blends."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.cartoonizer import Cartoonizer
from inference.styles import StyleRegistry, format_styles, load_style, parse_style_spec, scan_styles
from models.checkpoint import load_checkpoint_file, save_generator, weights_hash
from tests.conftest import ROOT
from tests.inference import make_generator, make_picture
from utils.errors import ToonFaceError


def child(parent: torch.nn.Module, out_scale: float) -> torch.nn.Module:
    """A "fine-tuned" child of ``parent``: its last conv scaled (more or less contrast)."""
    import copy

    G = copy.deepcopy(parent)
    with torch.no_grad():
        G.out.weight.mul_(out_scale)
    return G


def write_style(path: Path, G, name: str, parent_hash: str | None, image_size: int = 128,
                saved_at: str | None = None, **extra) -> Path:
    meta = {"image_size": image_size, "face_size": 45.0, "step": 100, "run": name, "kind": "train",
            "gf_eps": 1e-2, "style": name, "cartoon_dir": f"/data/{name}", "pretrained_hash": parent_hash,
            "saved_at": saved_at or "2026-11-29T10:00:00+00:00", **extra}
    save_generator(path, G, **meta)
    return path


@pytest.fixture()
def styles_dir(tmp_path):
    parent = make_generator(3)
    h = weights_hash(parent.state_dict())
    d = tmp_path / "styles"
    d.mkdir()
    write_style(d / "soft.pt", child(parent, 0.6), "Soft", h)
    write_style(d / "hard.pt", child(parent, 1.4), "Hard", h)
    # a run folder holding a style, found through its generator/latest.pt
    run = d / "runA"
    (run / "generator").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"kind": "train", "name": "runA"}))
    write_style(run / "generator" / "latest.pt", child(parent, 1.0), "Middle", h)
    # another parent, another size
    write_style(d / "other.pt", make_generator(9), "Other", weights_hash(make_generator(9).state_dict()))
    write_style(d / "small.pt", child(parent, 1.0), "Small", h, image_size=64)
    return d, parent


def test_registry_lists_runs_and_files(styles_dir):
    d, _ = styles_dir
    styles = scan_styles(d)
    assert sorted(s.name for s in styles.values()) == ["Hard", "Middle", "Other", "Small", "Soft"]
    assert styles["middle"].path == d / "runA" / "generator" / "latest.pt"
    table = format_styles(styles, d)
    assert table.splitlines()[0].split()[:5] == ["style", "steps", "size", "metrics", "path"]
    assert "Soft" in table and "not scored" in table


def test_same_name_newest_wins_and_listing_says_so(styles_dir):
    d, parent = styles_dir
    write_style(d / "soft_v2.pt", child(parent, 0.7), "soft", weights_hash(parent.state_dict()),
                saved_at="2026-11-30T10:00:00+00:00")
    styles = scan_styles(d)
    assert styles["soft"].path == d / "soft_v2.pt" and styles["soft"].shadows == [d / "soft.pt"]
    assert f"shadows an older 'soft': {d / 'soft.pt'}" in format_styles(styles, d)


def test_generators_without_a_style_name_are_named_by_run_or_file(styles_dir, capsys):
    """Files written before named styles existed record no ``style``: still styles, named by
    their run folder or file stem, listed and usable by that name; pretraining generators
    (kind "pretrain") are not styles."""
    d, parent = styles_dir
    save_generator(d / "old_toon.pt", child(parent, 0.8), image_size=128, step=7, run="x", kind="train")
    run = d / "v1"
    (run / "generator").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"kind": "train", "name": "v1"}))
    save_generator(run / "generator" / "latest.pt", child(parent, 0.9), image_size=128, step=9,
                   run="v1", kind="train", style=None)
    pre = d / "pre"
    (pre / "generator").mkdir(parents=True)
    (pre / "config.json").write_text(json.dumps({"kind": "pretrain", "name": "pre"}))
    save_generator(pre / "generator" / "latest.pt", parent, image_size=128, step=5, run="pre",
                   kind="pretrain", style=None)
    styles = scan_styles(d)
    assert styles["old_toon"].path == d / "old_toon.pt" and styles["old_toon"].step == 7
    assert styles["v1"].path == run / "generator" / "latest.pt"
    assert "pre" not in styles
    assert "old_toon" in format_styles(styles, d) and "v1" in format_styles(styles, d)
    G, meta = load_style("OLD_TOON", d, "cpu")
    assert meta["step"] == 7


def test_broken_and_foreign_files_are_skipped_with_one_warning(styles_dir):
    d, _ = styles_dir
    (d / "broken.pt").write_bytes(b"not a checkpoint")
    torch.save({"something": torch.zeros(2)}, d / "foreign.pt")
    warnings = []
    styles = scan_styles(d, warn=warnings.append)
    assert len(styles) == 5 and len(warnings) == 2
    assert all(w.count("\n") == 0 for w in warnings)
    assert any("broken.pt" in w for w in warnings) and any("foreign.pt" in w for w in warnings)


def test_style_by_name_is_the_file_bit_for_bit(styles_dir):
    d, _ = styles_dir
    G, meta = load_style("soft", d)  # case does not matter
    saved = load_checkpoint_file(d / "soft.pt")["generator"]
    assert meta["style"] == "Soft"
    for k, v in G.state_dict().items():
        assert torch.equal(v, saved[k])


def test_blends(styles_dir):
    from evaluation.style import edge_density

    d, parent = styles_dir
    soft = load_style("Soft", d)[0].state_dict()
    one = load_style("soft=1,hard=0", d)[0].state_dict()
    same = load_style("soft=0.3,soft=0.7", d)[0].state_dict()
    for k in soft:
        assert torch.equal(one[k], soft[k]), k     # weight 1 on one style: exactly that style
        assert torch.equal(same[k], soft[k]), k    # a style blended with itself: itself
    img = make_picture(96, 96, seed=5)
    out = {spec: Cartoonizer(load_style(spec, d)[0], tile=0)(img)
           for spec in ("soft", "hard", "soft=0.5,hard=0.5")}
    assert not np.array_equal(out["soft=0.5,hard=0.5"], out["soft"])
    assert not np.array_equal(out["soft=0.5,hard=0.5"], out["hard"])
    e = {k: edge_density(v) for k, v in out.items()}
    assert min(e["soft"], e["hard"]) < e["soft=0.5,hard=0.5"] < max(e["soft"], e["hard"])
    assert e["soft"] != e["hard"]


@pytest.mark.parametrize("spec, message", [
    ("soft=x", "weight 'x' of soft is not a number"),
    ("soft=-1", "weight -1 of soft must be a finite number >= 0"),
    ("soft=1e400", "weight 1e400 of soft must be a finite number >= 0"),
    ("soft=nan", "weight nan of soft must be a finite number >= 0"),
    ("soft=0,hard=0", "the weights sum to 0"),
    ("soft=0.5,=0.5", "is not NAME=WEIGHT"),
    ("nobody", "unknown style 'nobody'"),
    ("soft=0.5,other=0.5", "not fine-tuned from the same pretrained generator"),
    ("soft=0.5,small=0.5", "different training image sizes"),
])
def test_bad_style_specs_give_one_line(styles_dir, spec, message):
    d, _ = styles_dir
    with pytest.raises(ToonFaceError, match=message) as info:
        load_style(spec, d)
    assert "\n" not in str(info.value)


def test_unknown_style_lists_the_names(styles_dir):
    d, _ = styles_dir
    with pytest.raises(ToonFaceError, match="available: Hard, Middle, Other, Small, Soft"):
        load_style("nobody", d)


def test_different_architectures_are_refused(styles_dir):
    from models import Generator

    d, parent = styles_dir
    torch.manual_seed(0)
    write_style(d / "wide.pt", Generator(channels=48), "Wide", weights_hash(parent.state_dict()))
    with pytest.raises(ToonFaceError, match="different architectures"):
        load_style("soft=0.5,wide=0.5", d)


def test_insane_styles_are_one_line_alone_and_in_a_blend(styles_dir):
    """NaN weights (black pictures), weights whose keys are not the architecture's, each named
    by its file, alone and in a blend; a blend whose mean overflows is refused by its output."""
    d, parent = styles_dir
    h = weights_hash(parent.state_dict())
    nan = child(parent, 1.0)
    with torch.no_grad():
        nan.conv0.weight[0, 0, 0, 0] = float("nan")
    write_style(d / "nan.pt", nan, "Nan", h)
    odd = write_style(d / "odd.pt", child(parent, 1.0), "Odd", h)
    obj = load_checkpoint_file(odd)
    obj["generator"]["conv0.renamed"] = obj["generator"].pop("conv0.weight")
    torch.save(obj, odd)
    for spec, file, what in (("nan", "nan.pt", "NaN or infinite"), ("soft=0.5,nan=0.5", "nan.pt", "NaN"),
                             ("odd", "odd.pt", "missing conv0.weight; unexpected conv0.renamed"),
                             ("soft=0.5,odd=0.5", "odd.pt", "missing conv0.weight")):
        with pytest.raises(ToonFaceError, match=what) as e:
            load_style(spec, d)
        assert "\n" not in str(e.value) and str(d / file) in str(e.value), spec


def test_huge_blend_weights_normalise_without_overflow(styles_dir):
    d, _ = styles_dir
    assert parse_style_spec("a=1e308,b=1e308") == [("a", 0.5), ("b", 0.5)]
    assert parse_style_spec("a=1e308,b=1e308,a=1e308") == [("a", 2 / 3), ("b", 1 / 3)]
    assert parse_style_spec("a=5e-324,b=0") == [("a", 1.0), ("b", 0.0)]
    huge = load_style("soft=1e308,hard=1e308", d)[0].state_dict()
    half = load_style("soft=1,hard=1", d)[0].state_dict()
    assert all(torch.equal(huge[k], half[k]) for k in half)


def test_names_that_print_alike_are_one_style(styles_dir):
    import unicodedata

    d, parent = styles_dir
    h = weights_hash(parent.state_dict())
    nfc, nfd = unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")
    write_style(d / "nfc.pt", child(parent, 0.8), nfc, h, saved_at="2026-11-30T10:00:00+00:00")
    write_style(d / "nfd.pt", child(parent, 0.9), nfd, h, saved_at="2026-11-30T11:00:00+00:00")
    styles = scan_styles(d)
    cafes = [s for s in styles.values() if s.name in (nfc, nfd)]
    assert len(cafes) == 1 and cafes[0].path == d / "nfd.pt" and cafes[0].shadows == [d / "nfc.pt"]
    for spelling in (nfc, nfd, "CAFÉ"):
        assert load_style(spelling, d)[1]["file"] == str(d / "nfd.pt")


def test_names_style_cannot_select_are_skipped_and_nothing_prints_raw(styles_dir):
    d, parent = styles_dir
    h = weights_hash(parent.state_dict())
    for i, name in enumerate(("a=b", "x,y", " spaced ", "bell\x07")):
        write_style(d / f"bad{i}.pt", child(parent, 1.0), name, h)
    (d / "dir.pt").mkdir()
    (d / "loop.pt").symlink_to(d / "loop.pt")
    (d / "looprun").symlink_to(d / "looprun")
    (d / "gone.pt").symlink_to(d / "nowhere.pt")
    (d / "esc\x1b[2J.pt").write_bytes(b"junk")
    warnings = []
    styles = scan_styles(d, warn=warnings.append)
    assert sorted(s.name for s in styles.values()) == ["Hard", "Middle", "Other", "Small", "Soft"]
    text = "\n".join(warnings)
    assert text.count("so --style could never select it") == 4, text
    assert "dir.pt: a folder, not a generator file" in text
    assert "loop.pt: a symbolic link loop" in text and "looprun: a symbolic link loop" in text
    assert f"gone.pt: a broken symbolic link to {d / 'nowhere.pt'}" in text
    assert len(warnings) == 9 and all(w.isprintable() for w in warnings), warnings
    assert "esc\\x1b[2J.pt" in text
    write_style(d / "ctl.pt", child(parent, 1.0), "Ctl", h)
    (d / "ctl.pt").rename(d / "c\x1btl.pt")
    table = format_styles(scan_styles(d, warn=lambda m: None), d)
    assert "c\\x1btl.pt" in table and "\x1b" not in table


def test_styles_dir_that_is_a_loop_or_a_file_says_so(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for folder, message in ((loop, "a symbolic link loop"), (tmp_path / "none", "styles folder not found"),
                            (tmp_path / "f", "is a file, not a folder")):
        (tmp_path / "f").write_text("x")
        with pytest.raises(ToonFaceError, match=message) as e:
            scan_styles(folder)
        assert "\n" not in str(e.value)
    res = _cli("cartoonize.py", "--list-styles", "--styles-dir", loop)
    assert res.returncode == 2 and res.stderr.strip() == f"error: styles folder {loop}: a symbolic link loop (--styles-dir)"


def test_nan_options_are_refused_by_every_command(styles_dir, tmp_path):
    from PIL import Image

    from inference.export import ExportableCartoonizer

    d, _ = styles_dir
    Image.fromarray(make_picture(16, 16)).save(tmp_path / "p.png")
    for script, args in (("cartoonize.py", ["--eps", "nan"]), ("cartoonize.py", ["--temporal", "nan"]),
                         ("cartoonize.py", ["--strength", "nan"]), ("cartoonize.py", ["--eps", "inf"]),
                         ("export.py", ["--eps", "nan"]), ("test.py", ["--gf_eps", "nan"])):
        out = ["--out", tmp_path / "o"] if script != "export.py" else ["--onnx", tmp_path / "o.onnx"]
        inputs = [tmp_path / "p.png"] if script == "cartoonize.py" else []
        res = _cli(script, *inputs, "--style", "soft", "--styles-dir", d, *out, *args)
        assert res.returncode == 2 and "is not a finite number" in res.stderr, (script, args, res.stderr)
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.onnx").exists()
    G = load_style("soft", d)[0]
    for make in (lambda: Cartoonizer(G, eps=float("nan")), lambda: ExportableCartoonizer(G, eps=float("nan")),
                 lambda: Cartoonizer(G, strength=float("nan"))):
        with pytest.raises(ToonFaceError, match="must be a finite number"):
            make()


def test_training_refuses_a_style_name_it_could_not_select_again():
    from training.loop import checked_style_name

    with pytest.raises(ToonFaceError, match="holds '=' or ','"):
        checked_style_name("hayao=1", "/data/x")
    assert checked_style_name(None, "/data/Hayao") == "Hayao"
    assert checked_style_name(None, "/data/a=b, c ") == "a-b- c"
    assert checked_style_name("", "/data/Shinkai") == "Shinkai"   # not given
    with pytest.raises(ToonFaceError, match="is empty"):
        checked_style_name("  ", "/data/Shinkai")


def test_parse_normalises():
    assert parse_style_spec("Hayao") == [("Hayao", 1.0)]
    assert parse_style_spec("a=3, b=1") == [("a", 0.75), ("b", 0.25)]


def _cli(script, *args):
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_style_everywhere(styles_dir, tmp_path):
    from PIL import Image

    d, _ = styles_dir
    listing = _cli("cartoonize.py", "--list-styles", "--styles-dir", d)
    assert listing.returncode == 0 and "Middle" in listing.stdout
    Image.fromarray(make_picture(40, 48)).save(tmp_path / "p.png")
    a = _cli("cartoonize.py", tmp_path / "p.png", "--style", "soft=0.5,hard=0.5", "--styles-dir", d,
             "--out", tmp_path / "o", "--no-progress")
    assert a.returncode == 0, a.stderr[-2000:]
    assert np.asarray(Image.open(tmp_path / "o" / "p.png")).shape == (40, 48, 3)
    bad = _cli("cartoonize.py", tmp_path / "p.png", "--style", "nobody", "--styles-dir", d, "--out", tmp_path / "o2")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: unknown style 'nobody'")
    both = _cli("cartoonize.py", tmp_path / "p.png", "--style", "soft", "--checkpoint", d / "soft.pt",
                "--styles-dir", d, "--out", tmp_path / "o3")
    assert both.returncode == 2 and "not both" in both.stderr
    ex = _cli("export.py", "--style", "hard", "--styles-dir", d, "--torchscript", tmp_path / "h.pt")
    assert ex.returncode == 0 and (tmp_path / "h.pt").is_file(), ex.stderr[-2000:]
    malformed = _cli("export.py", "--style", "soft=-1", "--styles-dir", d, "--torchscript", tmp_path / "x.pt")
    assert malformed.returncode == 2 and "Traceback" not in malformed.stderr


def test_training_records_the_style(tmp_path):
    from datasets.demo import build_demo_data
    from training.config import resolve
    from training.loop import pretrain, train

    photos, cartoons = build_demo_data(tmp_path / "data", 8, 8, size=40)
    anime = tmp_path / "AnimeGAN" / "Hayao" / "style"   # the AnimeGAN layout names the style
    anime.parent.mkdir(parents=True)
    os.symlink(cartoons, anime)
    tiny = {"image_size": 32, "batch_size": 2, "workers": 0, "progress": False, "holdout": 0,
            "tensorboard": False, "checkpoints_dir": str(tmp_path / "ck"), "photo_dir": str(photos)}
    p = pretrain(resolve("pretrain", {**tiny, "name": "pre", "total_iter": 1}))
    t = train(resolve("train", {**tiny, "name": "hay", "cartoon_dir": str(anime.parent), "w5": 0.0,
                                "vgg_weights": "random", "total_iter": 2, "init": p["generator"]}))
    meta = load_checkpoint_file(t["generator"])
    parent = load_checkpoint_file(p["generator"])["generator"]
    assert meta["style"] == "Hayao" and meta["step"] == 2 and meta["image_size"] == 32
    assert meta["cartoon_dir"] == str(anime.parent.resolve())
    assert meta["pretrained_hash"] == weights_hash(parent)
    cfg = json.loads((Path(t["run_dir"]) / "config.json").read_text())
    assert cfg["style"] == "Hayao" and cfg["pretrained_hash"] == meta["pretrained_hash"]
    # a style fine-tuned from a style keeps the pretrained root: the two can be blended
    t2 = train(resolve("train", {**tiny, "name": "shin", "cartoon_dir": str(cartoons), "style": "Shinkai",
                                 "w5": 0.0, "vgg_weights": "random", "total_iter": 1, "init": t["generator"]}))
    assert load_checkpoint_file(t2["generator"])["pretrained_hash"] == meta["pretrained_hash"]
    time.sleep(0.01)
    G, blend_meta = load_style("hayao=0.5,shinkai=0.5", tmp_path / "ck")
    assert blend_meta["style"] == "Hayao=0.5,Shinkai=0.5"


def test_test_py_scores_a_style_and_records_its_metrics(styles_dir, tmp_path):
    from datasets.demo import build_demo_data

    d, _ = styles_dir
    photos, _ = build_demo_data(tmp_path / "data", 3, 1, size=64)
    before = load_checkpoint_file(d / "soft.pt")
    res = _cli("test.py", "--style", "SOFT", "--styles-dir", d, "--photo_dir", photos, "--out",
               tmp_path / "score", "--workers", "0", "--image_size", "64")
    assert res.returncode == 0, res.stderr[-2000:]
    after = load_checkpoint_file(d / "soft.pt")
    assert after["metrics"]["pairs"] == 3 and after["metrics"]["photos"] == str(photos)
    assert "nme68_mean" in json.loads((tmp_path / "score" / "metrics.json").read_text())
    for k, v in before["generator"].items():       # the weights are kept bit for bit
        assert torch.equal(v, after["generator"][k])
    assert f"metrics recorded in {d / 'soft.pt'}" in res.stderr
    listing = _cli("cartoonize.py", "--list-styles", "--styles-dir", d)
    soft_row = next(line for line in listing.stdout.splitlines() if line.startswith("Soft"))
    assert "not scored" not in soft_row
    blend = _cli("test.py", "--style", "soft=0.5,hard=0.5", "--styles-dir", d, "--photo_dir", photos,
                 "--out", tmp_path / "blend", "--workers", "0", "--no-metrics")
    assert blend.returncode == 0, blend.stderr[-2000:]
    both = _cli("test.py", "--style", "soft", "--checkpoint", d / "hard.pt", "--styles-dir", d,
                "--photo_dir", photos)
    assert both.returncode == 2 and "not both" in both.stderr


def test_scoring_the_last_step_file_records_into_latest_too(tmp_path):
    """The registry reads generator/latest.pt: scoring generator/step_N.pt with the same
    weights records there too; another step's file leaves latest.pt as it was."""
    from evaluation.evaluate import _record_metrics

    gen = tmp_path / "run" / "generator"
    gen.mkdir(parents=True)
    last, older = make_generator(seed=1), make_generator(seed=2)
    for name, G, step in (("step_000002.pt", last, 2), ("latest.pt", last, 2), ("step_000001.pt", older, 1)):
        save_generator(gen / name, G, step=step)
    said = []
    _record_metrics(gen / "step_000001.pt", {"summary": {"nme68_mean": 0.5}}, "photos", said.append)
    assert "metrics" not in load_checkpoint_file(gen / "latest.pt")
    _record_metrics(gen / "step_000002.pt", {"summary": {"nme68_mean": 0.1}}, "photos", said.append)
    assert load_checkpoint_file(gen / "latest.pt")["metrics"]["nme68_mean"] == 0.1
    assert load_checkpoint_file(gen / "step_000002.pt")["metrics"]["nme68_mean"] == 0.1
    assert said == [f"metrics recorded in {gen / 'step_000001.pt'}", f"metrics recorded in {gen / 'step_000002.pt'}",
                    f"metrics recorded in {gen / 'latest.pt'}"]


def _count_loads(monkeypatch) -> list[str]:
    """The files torch.load reads from now on (every generator read goes through it)."""
    calls: list[str] = []
    real = torch.load

    def counting(f, *args, **kwargs):
        calls.append(str(f))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return calls


def test_the_registry_scans_once_and_a_load_reads_only_the_chosen_files(styles_dir, monkeypatch):
    """With N styles, loading one after the scan is one file read, not N + 1 (the service's
    cache miss used to rescan the whole folder)."""
    d, _ = styles_dir
    calls = _count_loads(monkeypatch)
    registry = StyleRegistry(d)
    n = len(calls)
    assert n == 5 and len(registry.styles) == 5  # the scan: each candidate file once
    calls.clear()
    G, meta = registry.load("soft")
    assert calls == [str(d / "soft.pt")] and meta["style"] == "Soft"
    calls.clear()
    registry.load("hard", "cpu")
    assert calls == [str(d / "hard.pt")]
    calls.clear()
    registry.load("soft=0.5,hard=0.5")
    assert set(calls) == {str(d / "soft.pt"), str(d / "hard.pt")}
    with pytest.raises(ToonFaceError, match="unknown style"):
        registry.load("nobody")


def test_a_service_engine_loads_a_style_from_one_file(styles_dir, monkeypatch):
    from serving.engine import StyleCache, TorchEngine

    d, _ = styles_dir
    calls = _count_loads(monkeypatch)
    engine = TorchEngine(d, "cpu")
    assert len(calls) == 5  # the engine's one scan
    calls.clear()
    StyleCache(engine, max_loaded=1).get("Soft")
    assert calls == [str(d / "soft.pt")]
