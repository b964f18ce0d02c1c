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
from pathlib import Path
from typing import Any

import torch

from models.generator import Generator
from utils.errors import ToonFaceError
from utils.io import atomic_save

GENERATOR_FORMAT = "toonface-generator"
GENERATOR_CONFIG_KEYS = ("channels", "num_blocks", "output_act", "upsample")


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


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"
                   ) -> tuple[Generator, dict[str, Any]]:
    """Load a generator file, or the generator inside a full training checkpoint.

    Returns ``(G in eval mode on device, metadata without the weights)``. Raises
    ToonFaceError with one line for anything that is not such a file.
    """
    path = Path(path)
    state, gcfg, meta = _generator_parts(path, load_checkpoint_file(path))
    try:
        G = Generator(**gcfg)
    except (TypeError, ValueError) as exc:
        raise ToonFaceError(f"{path}: unusable generator_config {gcfg} ({exc})") from None
    try:
        G.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ToonFaceError(f"{path}: generator weights do not match the architecture: {first}") from None
    return G.to(device).eval(), meta
