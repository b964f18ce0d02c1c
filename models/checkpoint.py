"""Checkpoint files: reading any of them safely, and the small generator-only files.

Every write is atomic (temporary file + rename), and every read uses
``torch.load(weights_only=True)``, so files hold only tensors and plain Python values and a
file cannot run code when it is loaded.

Generator file (``<run>/generator/step_XXXXXX.pt``, ``<run>/generator/latest.pt``, or any
exported copy)::

    {"format": "toonface-generator", "version": 1,
     "generator": state_dict, "generator_config": {channels, num_blocks, output_act, upsample},
     "image_size": int,           # training crop size
     "face_size": float | None,   # median inter-ocular distance (px) of training faces
     "step": int, "run": str, "kind": "pretrain" | "train",
     "gf_eps": float,             # guided-filter eps used in training
     "style": str | None,         # the style's name (training runs; None for pretraining)
     "cartoon_dir": str | None,   # the cartoons it was trained on
     "pretrained_hash": str | None,  # weights_hash of the pretrained generator it started from
     "saved_at": str,             # UTC time of writing (ISO 8601)
     "metrics": dict | None}      # test.py's summary, once it has scored this file

A full training checkpoint (``<run>/ckpt/*.pt``) holds ``G``, ``opt_G``, ``step``, ``config``,
``kind``, ``generator_config``, ``rng`` and, for training runs, the discriminators and
``opt_D``; :func:`load_generator` reads the generator of either.
"""
from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path
from typing import Any

import torch

from models.generator import OUTPUT_ACTS, UPSAMPLE_MODES, Generator
from utils.errors import ToonFaceError
from utils.io import atomic_save

GENERATOR_FORMAT = "toonface-generator"
GENERATOR_CONFIG_KEYS = ("channels", "num_blocks", "output_act", "upsample")
# Plausible bounds of a generator_config (the recipe's generator: 32 channels, 4 blocks):
# far larger variants pass, a file asking for gigabytes does not.
MAX_CHANNELS, MAX_BLOCKS = 512, 64
# The sanity check's test photo (side, px) and the largest output value it may give: a
# generator's output is an image in about [-1, 1] (no tanh, so a little beyond).
SANITY_SIZE, MAX_OUTPUT = 16, 1e3


def style_name_problem(name: Any) -> str | None:
    """Why ``name`` could not be a style's name, or None. ``--style`` reads ``a=0.7,b=0.3``
    as a blend and strips the spaces around a name, so a name with ``=`` or ``,`` or with
    spaces around it could never be selected; nor could an empty one or one with control
    characters (which also would print as something else)."""
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if "=" in name or "," in name:
        return "holds '=' or ','"
    if name != name.strip():
        return "begins or ends with a space"
    if any(unicodedata.category(c)[0] == "C" for c in name):
        return "holds a control character"
    return None


def generator_config(G: Generator) -> dict[str, Any]:
    return {"channels": G.conv0.out_channels, "num_blocks": len(G.blocks),
            "output_act": G.output_act, "upsample": G.upsample}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """Content hash of a generator's weights: sha256 over every tensor's name, dtype, shape and
    bytes, in name order (hex, 16 characters). The identity of a pretrained parent: styles
    fine-tuned from weights with the same hash can be blended (inference/styles.py)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()[:16]


def save_generator(path: str | os.PathLike, G: torch.nn.Module, **meta: Any) -> None:
    """Write a small inference file atomically (see the module docstring for the keys)."""
    G = unwrap(G)
    state = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    obj = {"format": GENERATOR_FORMAT, "version": 1, "generator": state,
           "generator_config": generator_config(G), **meta}
    atomic_save(path, lambda f: torch.save(obj, f))


def update_generator_meta(path: str | os.PathLike, **meta: Any) -> None:
    """Rewrite a generator file (atomically) with ``meta`` added to its metadata; the weights
    are kept bit for bit. Raises ToonFaceError when ``path`` is not a generator file."""
    path = Path(path)
    obj = load_checkpoint_file(path)
    if obj.get("format") != GENERATOR_FORMAT:
        raise ToonFaceError(f"{path}: not a generator file; its metadata is not updated")
    obj.update(meta)
    atomic_save(path, lambda f: torch.save(obj, f))


def same_generator(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when two generator files hold the same weights bit for bit (e.g. a run's
    ``generator/step_N.pt`` and the ``latest.pt`` written at the same step)."""
    try:
        x, y = load_checkpoint_file(a), load_checkpoint_file(b)
    except ToonFaceError:
        return False
    gx, gy = x.get("generator"), y.get("generator")
    if x.get("format") != GENERATOR_FORMAT or y.get("format") != GENERATOR_FORMAT \
            or not isinstance(gx, dict) or not isinstance(gy, dict) or gx.keys() != gy.keys():
        return False
    return all(torch.equal(gx[k], gy[k]) for k in gx)


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """The dict in a ``.pt`` file, read with ``weights_only=True``.

    Raises ToonFaceError (one line) when the file is missing, unreadable, refused by the safe
    loader (e.g. a pickle that would run code) or holds something other than a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ToonFaceError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise ToonFaceError(f"{path}: cannot read ({exc.strerror})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged or hostile file is a user-facing one-liner
        raise ToonFaceError(f"{path}: not a readable ToonFace checkpoint ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise ToonFaceError(f"{path}: holds a {type(obj).__name__}, not a ToonFace checkpoint "
                            "(expected a generator file or a training checkpoint, both dicts)")
    return obj


def _generator_parts(path: Path, obj: dict[str, Any]) -> tuple[dict, dict, dict[str, Any]]:
    """(state_dict, generator_config, metadata) of a generator file or a training checkpoint."""
    if obj.get("format") == GENERATOR_FORMAT:
        state, gcfg = obj.get("generator"), obj.get("generator_config")
        meta = {k: v for k, v in obj.items() if k != "generator"}
    elif "G" in obj:  # full training state
        state, gcfg = obj.get("G"), obj.get("generator_config")
        cfg = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        meta = {"generator_config": gcfg, "image_size": cfg.get("image_size"),
                "face_size": obj.get("face_size"), "step": obj.get("step"),
                "run": cfg.get("name"), "kind": obj.get("kind", "train"),
                "gf_eps": cfg.get("gf_eps")}
    else:
        keys = ", ".join(sorted(map(str, obj))[:6]) or "none"
        raise ToonFaceError(f"{path}: not a ToonFace generator or training checkpoint (its keys: "
                            f"{keys}; expected 'format': '{GENERATOR_FORMAT}' or a 'G' state)")
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ToonFaceError(f"{path}: its generator weights are not a state dict of tensors")
    if not isinstance(gcfg, dict) or set(gcfg) != set(GENERATOR_CONFIG_KEYS):
        raise ToonFaceError(f"{path}: its generator_config is missing or malformed (expected the "
                            f"keys {', '.join(GENERATOR_CONFIG_KEYS)})")
    return state, gcfg, meta


def check_generator_config(where: str | os.PathLike, gcfg: dict[str, Any]) -> None:
    """Refuse (ToonFaceError, one line) a generator_config outside plausible bounds before
    anything is built from it: ``num_blocks: 100000`` would allocate gigabytes."""
    for key, top in (("channels", MAX_CHANNELS), ("num_blocks", MAX_BLOCKS)):
        v = gcfg.get(key)
        low = 1 if key == "channels" else 0
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= top:
            raise ToonFaceError(f"{where}: generator_config {key} {v!r} is not plausible (expected "
                                f"an integer from {low} to {top})")
    for key, allowed in (("output_act", OUTPUT_ACTS), ("upsample", UPSAMPLE_MODES)):
        if gcfg.get(key) not in allowed:
            raise ToonFaceError(f"{where}: generator_config {key} {gcfg.get(key)!r} is not one of "
                                f"{', '.join(allowed)}")


def check_generator_weights(where: str | os.PathLike, state: dict[str, torch.Tensor],
                            gcfg: dict[str, Any]) -> None:
    """Refuse (ToonFaceError, one line) weights that do not fit ``gcfg`` (naming the missing,
    unexpected and misshapen tensors) or that hold NaN or infinite values (a diverged or
    damaged file: its pictures would be black). ``gcfg`` is checked first; nothing is
    allocated (the expected shapes come from a generator on the meta device)."""
    check_generator_config(where, gcfg)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Generator(**gcfg).state_dict().items()}
    problems = []
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    for what, keys in (("missing", missing), ("unexpected", extra)):
        if keys:
            problems.append(f"{what} {', '.join(keys[:3])}" + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""))
    if shapes:
        k = shapes[0]
        problems.append(f"{k} has shape {tuple(state[k].shape)}, expected {expected[k]}"
                        + (f" (+{len(shapes) - 1} more)" if len(shapes) > 1 else ""))
    if problems:
        arch = ", ".join(f"{k} {gcfg[k]}" for k in GENERATOR_CONFIG_KEYS)
        raise ToonFaceError(f"{where}: its generator weights do not fit its generator_config "
                            f"({arch}): {'; '.join(problems)}")
    for k, v in state.items():
        if v.is_floating_point() or v.is_complex():
            bad = int((~torch.isfinite(v)).sum())
            if bad:
                raise ToonFaceError(f"{where}: its generator weights hold {bad} NaN or infinite "
                                    f"value(s) (in {k}): a diverged or damaged file, whose pictures "
                                    "would be black")


def check_generator_output(where: str | os.PathLike, G: Generator) -> None:
    """Refuse (ToonFaceError, one line) a generator whose output on a small test photo is not
    finite or far outside an image's range (weights that overflow, e.g. a blend of huge ones)."""
    p = next(G.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    ramp = torch.linspace(-1.0, 1.0, SANITY_SIZE, device=device)
    x = torch.stack([ramp.view(1, -1).expand(SANITY_SIZE, -1), ramp.view(-1, 1).expand(-1, SANITY_SIZE),
                     ramp.view(1, -1) * ramp.view(-1, 1)]).unsqueeze(0)
    was_training = G.training
    G.eval()
    with torch.no_grad():
        y = G(x).float()
    G.train(was_training)
    if not bool(torch.isfinite(y).all()):
        raise ToonFaceError(f"{where}: the generator's output on a test photo is NaN or infinite "
                            "(its weights overflow): not a usable generator")
    top = float(y.abs().max())
    if top > MAX_OUTPUT:
        raise ToonFaceError(f"{where}: the generator's output on a test photo reaches {top:.3g}, "
                            f"not an image in about [-1, 1] (at most {MAX_OUTPUT:g}): not a usable "
                            "generator")


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"
                   ) -> tuple[Generator, dict[str, Any]]:
    """Load a generator file, or the generator inside a full training checkpoint.

    Returns ``(G in eval mode on device, metadata without the weights)``. Raises
    ToonFaceError with one line for anything that is not such a file, and for one that is not
    sane: a generator_config outside plausible bounds, weights that do not fit it or are not
    finite, an output on a test photo that is not an image (:func:`check_generator_weights`,
    :func:`check_generator_output`).
    """
    path = Path(path)
    state, gcfg, meta = _generator_parts(path, load_checkpoint_file(path))
    check_generator_weights(path, state, gcfg)
    G = Generator(**gcfg)
    G.load_state_dict(state)
    check_generator_output(path, G)
    return G.to(device).eval(), meta
