"""The full training state of a run: what ``--resume`` needs to continue bit for bit.

A checkpoint (``<run>/ckpt/latest.pt`` and rotated ``ckpt/step_XXXXXX.pt``) holds every
network's and optimiser's state dict under its key (``G``, ``opt_G``; for training runs also
the discriminators of the adversarial terms, ``Ds`` and ``Dt``, and ``opt_D``), the ``step``,
the flat ``config``, the run ``kind``, the ``generator_config``, the training ``face_size``
and the random-number states (``rng``: torch's global generator, the texture-weight generator
and, on CUDA, every device's). The data position needs no state: the sampler's stream is a
function of (seed, step). Small generator files for inference are written beside it
(models/checkpoint.py).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from losses.registry import TERMS
from models.checkpoint import generator_config, save_generator, unwrap
from training.config import Config
from utils.io import atomic_save
from utils.run_dir import RunDir

COMMON_KEYS = ("G", "opt_G", "step", "config", "rng")


def required_keys(kind: str) -> tuple[str, ...]:
    """Keys a checkpoint of a ``kind`` run must hold."""
    if kind == "pretrain":
        return COMMON_KEYS
    discs = tuple(t.adversarial.checkpoint_key for t in TERMS if t.adversarial is not None)
    return COMMON_KEYS + discs + ("opt_D",)


def rng_state(texture_gen: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "texture": texture_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], texture_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    texture_gen.set_state(state["texture"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run: RunDir, cfg: Config, step: int, modules: dict[str, nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], texture_gen: torch.Generator,
                    face_size: float | None) -> None:
    """Write ckpt/step_XXXXXX.pt, ckpt/latest.pt (rotating old ones) and the generator files,
    each atomically."""
    G = unwrap(modules["G"])
    state = {**{k: unwrap(m).state_dict() for k, m in modules.items()},
             **{k: o.state_dict() for k, o in optimizers.items()},
             "step": step, "config": cfg.flat(), "kind": cfg.kind,
             "generator_config": generator_config(G), "face_size": face_size,
             "rng": rng_state(texture_gen)}
    atomic_save(run.checkpoint(step), lambda f: torch.save(state, f))
    atomic_save(run.latest_checkpoint, lambda f: torch.save(state, f))
    run.rotate_checkpoints(cfg.run.keep_ckpt)
    meta = generator_meta(cfg, step, face_size)
    for path in (run.generator(step), run.latest_generator):
        save_generator(path, G, **meta)


def generator_meta(cfg: Config, step: int, face_size: float | None) -> dict[str, Any]:
    """What a generator file records besides its weights (models/checkpoint.py lists the keys)."""
    train = cfg.kind == "train"
    return {"image_size": cfg.data.image_size, "face_size": face_size, "step": step,
            "run": cfg.run.name, "kind": cfg.kind, "gf_eps": cfg.model.gf_eps,
            "style": cfg.run.style if train else None,
            "cartoon_dir": str(Path(cfg.data.cartoon_dir).resolve()) if train else None,
            "pretrained_hash": cfg.model.pretrained_hash if train else None,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def load_checkpoint(state: dict[str, Any], modules: dict[str, nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], texture_gen: torch.Generator) -> None:
    """Restore networks, optimisers and random states from a checkpoint dict."""
    for k, m in modules.items():
        unwrap(m).load_state_dict(state[k])
    for k, o in optimizers.items():
        o.load_state_dict(state[k])
    set_rng_state(state["rng"], texture_gen)
