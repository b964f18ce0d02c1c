"""Checkpoint files: full training state for ``--resume`` and small generator-only files.

Every write is atomic (temporary file + rename), and every read uses
``torch.load(weights_only=True)``, so files hold only tensors and plain Python values.

Generator file (``<run>/generator/step_XXXXXX.pt`` and ``<run>/generator/latest.pt``)::

    {"format": "toonface-generator", "version": 1,
     "generator": state_dict, "generator_config": {channels, num_blocks, output_act, upsample},
     "image_size": int,           # training crop size
     "face_size": float | None,   # median inter-ocular distance (px) of training faces
     "step": int, "run": str, "kind": "pretrain" | "train",
     "gf_eps": float}             # guided-filter eps used in training
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from models.generator import Generator
from utils.errors import ToonFaceError
from utils.io import atomic_save

GENERATOR_FORMAT = "toonface-generator"


def generator_config(G: Generator) -> dict[str, Any]:
    return {"channels": G.conv0.out_channels, "num_blocks": len(G.blocks),
            "output_act": G.output_act, "upsample": G.upsample}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_generator(path: str | os.PathLike, G: torch.nn.Module, **meta: Any) -> None:
    """Write a small inference file (see the module docstring for the keys)."""
    G = unwrap(G)
    state = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    obj = {"format": GENERATOR_FORMAT, "version": 1, "generator": state,
           "generator_config": generator_config(G), **meta}
    atomic_save(path, lambda f: torch.save(obj, f))


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ToonFaceError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file is a user-facing one-liner
        raise ToonFaceError(f"{path}: not a readable ToonFace checkpoint ({type(exc).__name__})") from None


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"
                   ) -> tuple[Generator, dict[str, Any]]:
    """Load a generator file, or the generator inside a full training checkpoint.

    Returns ``(G in eval mode on device, metadata without the weights)``.
    """
    obj = load_checkpoint_file(path)
    if obj.get("format") == GENERATOR_FORMAT:
        state, gcfg = obj["generator"], obj["generator_config"]
        meta = {k: v for k, v in obj.items() if k != "generator"}
    elif "G" in obj and "config" in obj:  # full training state
        state, gcfg = obj["G"], obj["generator_config"]
        cfg = obj["config"]
        meta = {"generator_config": gcfg, "image_size": cfg.get("image_size"),
                "face_size": obj.get("face_size"), "step": obj.get("step"),
                "run": cfg.get("name"), "kind": obj.get("kind", "train"),
                "gf_eps": cfg.get("gf_eps")}
    else:
        raise ToonFaceError(f"{path}: not a ToonFace generator or training checkpoint")
    G = Generator(**gcfg)
    try:
        G.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ToonFaceError(f"{path}: generator weights do not match the architecture: {first}") from None
    return G.to(device).eval(), meta


def list_step_files(folder: str | os.PathLike, prefix: str = "step_") -> list[tuple[int, Path]]:
    """(step, path) of ``<prefix>NNNNNN.pt`` files in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.pt$")
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return sorted(found)


def rotate(folder: str | os.PathLike, keep: int, prefix: str = "step_") -> list[Path]:
    """Delete all but the newest ``keep`` step files; returns what was deleted."""
    files = list_step_files(folder, prefix)
    doomed = [p for _, p in files[:-keep]] if keep > 0 else []
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
