"""VGG19Features: both weight formats (written here as tiny random files), their preprocessing,
freezing, and the weight lookup order of resolve_vgg_weights / build_vgg."""
from __future__ import annotations

import copy
import http.client
import io
import logging

import numpy as np
import pytest
import torch

from models import vgg as vgg_mod
from models.vgg import VGG19Features, build_vgg, resolve_vgg_weights
from utils.errors import ToonFaceError

# Independent copies of the published constants (not imported from the code under test).
CONVS = [("conv1_1", 3, 64, 0), ("conv1_2", 64, 64, 2), ("conv2_1", 64, 128, 5),
         ("conv2_2", 128, 128, 7), ("conv3_1", 128, 256, 10), ("conv3_2", 256, 256, 12),
         ("conv3_3", 256, 256, 14), ("conv3_4", 256, 256, 16), ("conv4_1", 256, 512, 19),
         ("conv4_2", 512, 512, 21), ("conv4_3", 512, 512, 23), ("conv4_4", 512, 512, 25)]
IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406])
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225])
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


def _random_weights(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (OIHW weight, bias), He-scaled so activations stay O(1) through 12 convs."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, cin, cout, _ in CONVS:
        w = torch.randn(cout, cin, 3, 3, generator=gen) * (2.0 / (9 * cin)) ** 0.5
        b = torch.randn(cout, generator=gen) * 0.05
        out[name] = (w, b)
    return out


def _torchvision_state(weights) -> dict[str, torch.Tensor]:
    state = {}
    for name, _, _, idx in CONVS:
        state[f"features.{idx}.weight"], state[f"features.{idx}.bias"] = weights[name]
    return state


def _to_npy_dict(weights, fold_offset: bool = True) -> dict[str, list[np.ndarray]]:
    """torchvision-format weights -> white-box npy dict giving the same features.

    torchvision feeds t_c = ((x_c + 1)/2 - mean_c) / std_c (RGB c); the npy net feeds
    u_c' = (x_c + 1) * 127.5 - caffe_c' with c' = 2 - c (BGR). Eliminating x:
        t_c = u_c' / (255 std_c) + (caffe_c' / 255 - mean_c) / std_c  =  s_c u_c' + o_c.
    conv1_1(t) = sum W[o,c] (s_c u_c' + o_c) + bias: the scale s_c folds into the weight of
    BGR input channel c', the offset into the bias (+ sum_{c,kh,kw} W[o,c,kh,kw] o_c).
    The bias fold is exact only where the 3x3 window lies inside the image: zero padding is
    t = 0 for torchvision but u = 0 (i.e. t = o_c) for npy. See test_npy_equals_torchvision_*.
    """
    scale = 1.0 / (255.0 * IMAGENET_STD_RGB)
    offset = (CAFFE_MEAN_BGR[::-1] / 255.0 - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB
    out = {}
    for name in weights:
        w, b = (t.double() for t in weights[name])
        if name == "conv1_1":
            s = torch.from_numpy(scale.copy())
            o = torch.from_numpy(offset.copy())
            if fold_offset:
                b = b + (w * o.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
            w = (w * s.view(1, 3, 1, 1)).flip(1)  # RGB -> BGR input channels
        hwio = w.permute(2, 3, 1, 0).float().numpy()
        out[name] = [hwio, b.float().numpy()]
    return out


@pytest.fixture(scope="module")
def weights():
    return _random_weights(0)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory, weights):
    d = tmp_path_factory.mktemp("vgg")
    pth = d / "vgg19-test.pth"
    torch.save(_torchvision_state(weights), pth)
    npy = d / "vgg19_no_fc.npy"
    np.save(npy, _to_npy_dict(weights), allow_pickle=True)
    return pth, npy


@pytest.fixture(scope="module")
def random_net():
    return VGG19Features.random(0)


@pytest.fixture(scope="module")
def nets(weight_files):
    pth, npy = weight_files
    return VGG19Features.from_file(pth), VGG19Features.from_file(npy)


# ------------------------------------------------------------------------------ loading

def test_torchvision_weights_loaded_exactly(nets, weights):
    tv, _ = nets
    assert tv.fmt == "torchvision"
    for name, _, _, _ in CONVS:
        assert torch.equal(tv.convs[name].weight, weights[name][0])
        assert torch.equal(tv.convs[name].bias, weights[name][1])


def test_npy_weights_loaded_as_oihw(nets, weights):
    _, nn_npy = nets
    assert nn_npy.fmt == "npy"
    # every layer but conv1_1 is the same OIHW tensor after the HWIO round trip
    for name, _, _, _ in CONVS[1:]:
        assert torch.equal(nn_npy.convs[name].weight, weights[name][0]), name
        assert torch.equal(nn_npy.convs[name].bias, weights[name][1]), name


def test_smoke_shape(nets):
    tv, _ = nets
    with torch.no_grad():
        y = tv(torch.rand(2, 3, 24, 40) * 2 - 1)
    assert y.shape == (2, 512, 3, 5)


def test_conv4_4_is_pre_relu(nets):
    tv, _ = nets
    with torch.no_grad():
        y = tv(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert (y < 0).any()


def test_torchvision_preprocessing(nets):
    tv, _ = nets
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    expected = ((x + 1) / 2 - torch.tensor(IMAGENET_MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1)) \
        / torch.tensor(IMAGENET_STD_RGB, dtype=torch.float32).view(1, 3, 1, 1)
    torch.testing.assert_close(tv.preprocess(x), expected)


def test_npy_preprocessing(nets):
    _, nn_npy = nets
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)  # R=-1, G=0, B=1
    # BGR order, 0..255 minus Caffe means: (B=255, G=127.5, R=0) - (103.939, 116.779, 123.68)
    expected = torch.tensor([255 - 103.939, 127.5 - 116.779, 0 - 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(nn_npy.preprocess(x), expected.expand(1, 3, 2, 2))


def test_npy_equals_torchvision_interior(nets):
    """Same features from both formats with the real preprocessing constants.

    The conv1_1 bias fold is inexact at the zero-padded border ring, and the disagreement
    spreads by one cell per 3x3 conv and halves (rounding up) at each pool:
    1,2 | pool 1 | 3 | pool 2 | 6 | pool 3 | 7 -> a 7-cell ring at conv4_4. A 144x144 input gives
    18x18 features; the central 4x4 (rows/cols 7..10) is exact up to float32 rounding.
    """
    tv, nn_npy = nets
    torch.manual_seed(0)
    x = torch.rand(1, 3, 144, 144) * 2 - 1
    with torch.no_grad():
        a, b = tv(x), nn_npy(x)
    assert a.shape == b.shape == (1, 512, 18, 18)
    scale = a.abs().max()
    torch.testing.assert_close(b[..., 7:11, 7:11] / scale, a[..., 7:11, 7:11] / scale,
                               rtol=1e-4, atol=1e-4)
    # the border does differ (the fold is genuinely not exact there), so the crop is needed
    assert not torch.allclose(a / scale, b / scale, rtol=1e-4, atol=1e-4)


def test_npy_equals_torchvision_full_map_when_offset_vanishes(nets, weights):
    """Whole feature map: give the torchvision net the Caffe means (mean_c = caffe_c'/255) so
    the offset o_c is 0 and nothing is folded into the bias; the channel flip and the 255*std
    scaling are then exact at the borders too. Done on copies (instance buffers, not globals)."""
    tv, nn_npy = (copy.deepcopy(n) for n in nets)
    tv.mean.copy_(torch.tensor(CAFFE_MEAN_BGR[::-1].copy() / 255.0).view(1, 3, 1, 1))
    unfolded = _to_npy_dict({"conv1_1": weights["conv1_1"]}, fold_offset=False)["conv1_1"][1]
    nn_npy.convs["conv1_1"].bias.copy_(torch.from_numpy(unfolded))
    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 24) * 2 - 1
    with torch.no_grad():
        a, b = tv(x), nn_npy(x)
    scale = a.abs().max()
    torch.testing.assert_close(b / scale, a / scale, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- frozen / eval

def test_frozen_and_always_eval(nets, random_net):
    for net in (*nets, random_net):
        assert not any(p.requires_grad for p in net.parameters())
        assert net.training is False
        net.train()
        assert net.training is False
        assert all(not m.training for m in net.modules())
        wrapper = torch.nn.Sequential(net)
        wrapper.train()
        assert wrapper.training and not net.training


def test_gradient_reaches_input_not_params(random_net):
    net = random_net
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_()
    net(x).abs().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_random_is_seeded(random_net):
    a, c = VGG19Features.random(0), VGG19Features.random(4)
    assert torch.equal(a.convs["conv2_1"].weight, random_net.convs["conv2_1"].weight)
    assert not torch.equal(a.convs["conv2_1"].weight, c.convs["conv2_1"].weight)
    assert a.fmt == "random"


def test_forward_shape_errors(random_net):
    net = random_net
    for shape in [(1, 1, 16, 16), (3, 16, 16), (1, 4, 16, 16)]:
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            net(torch.zeros(shape))
    with pytest.raises(ValueError, match="format"):
        VGG19Features("caffe")


# ----------------------------------------------------------------------------- load errors

def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("name", ["nothere.pth", "vgg19_no_fc.npy"])
def test_missing_file(tmp_path, name):
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(tmp_path / name)
    assert name in _one_line(e)


def test_pth_missing_first_key(tmp_path):
    p = tmp_path / "empty.pth"
    torch.save({}, p)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    msg = _one_line(e)
    assert str(p) in msg and "features.0.weight" in msg and "(64, 3, 3, 3)" in msg


def test_pth_missing_last_key(tmp_path, weights):
    state = _torchvision_state(weights)
    del state["features.25.bias"]
    p = tmp_path / "partial.pth"
    torch.save(state, p)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    msg = _one_line(e)
    assert str(p) in msg and "features.25.bias" in msg and "(512,)" in msg


def test_pth_wrong_shape(tmp_path):
    p = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5)}, p)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    msg = _one_line(e)
    assert str(p) in msg and "(64, 3, 3, 3)" in msg and "(64, 3, 5, 5)" in msg


@pytest.mark.parametrize("payload", [b"not a torch file at all", b"", b"PK\x03\x04garbage" * 10])
def test_pth_garbage(tmp_path, payload):
    p = tmp_path / "garbage.pth"
    p.write_bytes(payload)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    assert str(p) in _one_line(e)


def test_pth_value_not_a_tensor(tmp_path):
    # Expected: a state dict whose entry is not a tensor is a one-line ToonFaceError naming the
    # file and the expected shape, not an AttributeError ('list' object has no attribute 'shape').
    p = tmp_path / "notensor.pth"
    torch.save({"features.0.weight": [1.0, 2.0]}, p)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    msg = _one_line(e)
    assert str(p) in msg and "(64, 3, 3, 3)" in msg


def test_pth_not_a_dict(tmp_path):
    p = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], p)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    assert str(p) in _one_line(e)


@pytest.mark.parametrize("payload", [b"garbage bytes, not numpy", b"", b"\x93NUMPY\x01\x00garbage"])
def test_npy_garbage_bytes(tmp_path, payload):
    p = tmp_path / "vgg19_no_fc.npy"
    p.write_bytes(payload)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    assert str(p) in _one_line(e)


def test_npy_not_a_dict(tmp_path):
    p = tmp_path / "array.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    assert str(p) in _one_line(e)


def test_npy_missing_layer(tmp_path, weights):
    d = _to_npy_dict(weights)
    del d["conv3_2"]
    p = tmp_path / "partial.npy"
    np.save(p, d, allow_pickle=True)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    msg = _one_line(e)
    assert str(p) in msg and "conv3_2" in msg


def test_npy_wrong_shape(tmp_path):
    p = tmp_path / "wrong.npy"
    np.save(p, {"conv1_1": [np.zeros((3, 3, 3, 32), np.float32), np.zeros(32, np.float32)]},
            allow_pickle=True)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    msg = _one_line(e)
    assert str(p) in msg and "(64, 3, 3, 3)" in msg


@pytest.mark.parametrize("entry", [
    [np.zeros((3, 3, 64), np.float32), np.zeros(64, np.float32)],   # weight not 4D
    [np.zeros((3, 3, 3, 64), np.float32), np.zeros((2, 64), np.float32)],  # bias 2D
    5,                                                              # not a [w, b] pair
])
def test_npy_malformed_entry_is_toonface_error(tmp_path, entry):
    # Expected: any malformed layer entry is reported as a one-line ToonFaceError naming the
    # file (the documented contract for unreadable weight files), not a raw RuntimeError /
    # TypeError from inside the loader.
    p = tmp_path / "malformed.npy"
    np.save(p, {"conv1_1": entry}, allow_pickle=True)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    assert str(p) in _one_line(e)


# ------------------------------------------------------------ weights files that run code
class _Marker:
    """Pickles as a call of ``open(path, "w")``: unpickling it creates the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_npy_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    p = tmp_path / "evil.npy"
    np.save(p, {"conv1_1": [_Marker(marker), np.zeros(64, np.float32)]}, allow_pickle=True)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    msg = _one_line(e)
    assert str(p) in msg and "refused" in msg and "io.open" in msg
    assert not marker.exists()


def test_npy_that_runs_code_is_refused_when_found_in_checkpoints(hub_dir, tmp_path):
    """The same file, found by itself as <checkpoints_dir>/vgg19_no_fc.npy."""
    marker = tmp_path / "ran"
    ck = tmp_path / "ck"
    ck.mkdir()
    np.save(ck / "vgg19_no_fc.npy", np.array(_Marker(marker), dtype=object), allow_pickle=True)
    with pytest.raises(ToonFaceError, match="refused"):
        build_vgg(None, ck)
    assert not marker.exists()


def test_pth_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    p = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Marker(marker)}, p)
    with pytest.raises(ToonFaceError) as e:
        VGG19Features.from_file(p)
    assert str(p) in _one_line(e)
    assert not marker.exists()


def test_python2_latin1_npy_is_read(tmp_path, weights):
    """white-box's file came from Python 2: its pickle (protocol 2) spells bytes as
    _codecs.encode(..., 'latin1'), which the restricted unpickler admits."""
    import pickle

    from numpy.lib import format as npy_format

    d = _to_npy_dict(weights)
    p = tmp_path / "py2.npy"
    with open(p, "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(pickle.dumps(np.array(d, dtype=object), protocol=2))
    assert b"_codecs" in p.read_bytes()
    net = VGG19Features.from_file(p)
    torch.testing.assert_close(net.convs["conv4_4"].bias, torch.from_numpy(d["conv4_4"][1]))


# ------------------------------------------------------------------ resolve_vgg_weights order

@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """Point torch hub (and TORCH_HOME) into tmp_path so the user's cache is never touched."""
    hub = tmp_path / "torch_home" / "hub"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr(vgg_mod, "_network_available", lambda *a, **k: False)
    return hub / "checkpoints"


def test_resolve_random(hub_dir, tmp_path):
    assert resolve_vgg_weights("random", tmp_path / "ckpt", allow_download=False) == "random"


def test_resolve_explicit_path_wins(hub_dir, tmp_path):
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    hub_dir.mkdir(parents=True)
    (hub_dir / "vgg19-dcbb9e9d.pth").write_bytes(b"x")
    assert resolve_vgg_weights(str(explicit), tmp_path, allow_download=False) == str(explicit)


def test_resolve_explicit_missing(hub_dir, tmp_path):
    with pytest.raises(ToonFaceError) as e:
        resolve_vgg_weights(str(tmp_path / "nope.pth"), tmp_path, allow_download=False)
    assert "nope.pth" in _one_line(e)


def test_resolve_hub_before_checkpoints(hub_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "vgg19-dcbb9e9d.pth").write_bytes(b"x")
    hub_dir.mkdir(parents=True)
    (hub_dir / "vgg19-dcbb9e9d.pth").write_bytes(b"x")
    assert resolve_vgg_weights(None, ckpt, allow_download=False) == str(hub_dir / "vgg19-dcbb9e9d.pth")


@pytest.mark.parametrize("fname", ["vgg19-dcbb9e9d.pth", "vgg19_no_fc.npy"])
def test_resolve_found_in_checkpoints(hub_dir, tmp_path, fname):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / fname).write_bytes(b"x")
    assert resolve_vgg_weights(None, ckpt, allow_download=False) == str(ckpt / fname)


@pytest.mark.parametrize("allow_download", [False, True])  # True: network monkeypatched away
def test_resolve_nothing_found(hub_dir, tmp_path, monkeypatch, allow_download):
    def no_download(*a, **k):
        raise AssertionError("must not download")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(ToonFaceError) as e:
        resolve_vgg_weights(None, ckpt, allow_download=allow_download)
    msg = _one_line(e)
    assert "vgg19-dcbb9e9d.pth" in msg and "vgg19_no_fc.npy" in msg
    assert str(hub_dir) in msg and str(ckpt) in msg
    assert not hub_dir.exists()  # nothing written into the (fake) hub cache


def test_build_vgg_random_warns(hub_dir, tmp_path, caplog, random_net):
    with caplog.at_level(logging.WARNING, logger="models.vgg"):
        net = build_vgg("random", tmp_path, seed=0, allow_download=False)
    assert net.fmt == "random"
    assert torch.equal(net.convs["conv1_1"].weight, random_net.convs["conv1_1"].weight)
    assert any("RANDOM" in r.getMessage() for r in caplog.records)


def test_build_vgg_from_checkpoints(hub_dir, tmp_path, weight_files, weights):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    pth, _ = weight_files
    (ckpt / "vgg19-dcbb9e9d.pth").write_bytes(pth.read_bytes())
    net = build_vgg(None, ckpt, allow_download=False)
    assert net.fmt == "torchvision"
    assert torch.equal(net.convs["conv4_4"].weight, weights["conv4_4"][0])


class _FakeResponse(io.BytesIO):
    """Stands in for urllib's response inside torch.hub.download_url_to_file (no network)."""

    def info(self):
        return http.client.HTTPMessage()


@pytest.fixture
def fake_download(hub_dir, monkeypatch, weight_files):
    pth, _ = weight_files
    payload = pth.read_bytes()
    urls = []

    def fake_urlopen(req, *a, **k):
        urls.append(req.full_url)
        return _FakeResponse(payload)

    monkeypatch.setattr(vgg_mod, "_network_available", lambda *a, **k: True)
    monkeypatch.setattr(torch.hub, "urlopen", fake_urlopen)
    return urls


def test_resolve_downloads_into_existing_hub_cache(hub_dir, tmp_path, fake_download):
    hub_dir.mkdir(parents=True)
    got = resolve_vgg_weights(None, tmp_path / "ckpt", allow_download=True)
    assert got == str(hub_dir / "vgg19-dcbb9e9d.pth")
    assert fake_download == ["https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"]
    assert VGG19Features.from_file(got).fmt == "torchvision"


def test_resolve_downloads_into_fresh_hub_cache(hub_dir, tmp_path, fake_download):
    # Expected: on a fresh machine ($TORCH_HOME/hub/checkpoints does not exist yet) the download
    # creates the folder, as torch.hub.load_state_dict_from_url does. download_url_to_file does
    # not create it, so without a mkdir the download fails and a ToonFaceError is raised.
    assert not hub_dir.exists()
    got = resolve_vgg_weights(None, tmp_path / "ckpt", allow_download=True)
    assert got == str(hub_dir / "vgg19-dcbb9e9d.pth")
    assert (hub_dir / "vgg19-dcbb9e9d.pth").is_file()


@pytest.mark.parametrize("shape", [(2, 64, 16, 16), (1, 8, 7, 9), (3, 5, 3, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool2x2_views_equal_aten(shape, dtype, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).relu().to(dtype)  # ReLU output: ties at 0, as in VGG
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x[0, 0, 0, 0] = float("nan")
    want = torch.nn.functional.max_pool2d(x, 2, 2)
    with torch.no_grad():
        got = vgg_mod.max_pool2x2(x)
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)
    if channels_last and shape[-1] > 1:
        # the next conv gets its layout without a conversion
        assert got.is_contiguous(memory_format=torch.channels_last)


def test_max_pool2x2_keeps_aten_gradient_routing():
    x = torch.tensor([[[[1.0, 1.0], [0.5, 1.0]]]], requires_grad=True)  # a tie
    vgg_mod.max_pool2x2(x).sum().backward()
    assert x.grad.sum().item() == 1.0 and x.grad.max().item() == 1.0  # one element, not split
