"""Every training option in one place: name, type, default, help, and the presets.

The CLIs (pretrain.py, train.py), sweep.py's key validation and the tests all read this table,
so a default lives here and nowhere else. Each option is accepted with underscores (the seed's
``--total_iter``) and dashes (``--total-iter``); the loss weights also answer to their names
(``--w-tv`` ... ``--w-landmark``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import click

from models.generator import OUTPUT_ACTS, UPSAMPLE_MODES

# Loss weights in flag order: (flag, name). The seed's w0..w4 keep the reference meaning.
WEIGHTS = [("w0", "tv"), ("w1", "surface"), ("w2", "texture"), ("w3", "content"),
           ("w4", "structure"), ("w5", "landmark")]
WEIGHT_NAMES = dict(WEIGHTS)
# white-box's code (train.py) and the paper's lambdas (lambda1..5 = surface, texture,
# structure, content, tv = 1, 10, 2000, 2000, 1e4) in w0..w4 order.
PRESETS = {
    "code": {"w0": 1e4, "w1": 1e-1, "w2": 1.0, "w3": 2e2, "w4": 2e2},
    "paper": {"w0": 1e4, "w1": 1.0, "w2": 10.0, "w3": 2e3, "w4": 2e3},
}
DEFAULT_W5 = 10.0  # chosen by the w5 ablation in README.md (NME 0.027 -> 0.021 -> 0.017 for w5 = 0, 1, 10)
SUPERPIXEL_METHODS = ("fast", "slic", "sscolor")
PRECISIONS = ("fp32", "bf16")


@dataclass
class Opt:
    name: str
    type: Any
    default: Any
    help: str
    kinds: tuple[str, ...] = ("pretrain", "train")
    aliases: tuple[str, ...] = ()
    is_flag: bool = False
    extra: dict = field(default_factory=dict)


def _pos_int(lo: int = 1) -> click.IntRange:
    return click.IntRange(min=lo)


NONNEG = click.FloatRange(min=0)
OPTIONS: list[Opt] = [
    # data
    Opt("photo_dir", str, "dataset/photo_face", "face photos (any folder, recursive)"),
    Opt("cartoon_dir", str, "dataset/cartoon_face",
        "cartoons (any folder; AnimeGAN <root>/<Style> uses its style/ images)", kinds=("train",)),
    Opt("scenery_photo_dir", str, None, "optional scenery photos, mixed in as white-box does",
        kinds=("train",)),
    Opt("scenery_cartoon_dir", str, None, "optional scenery cartoons (with --scenery_photo_dir)",
        kinds=("train",)),
    Opt("face_ratio", click.FloatRange(0, 1), 0.2,
        "share of face batches when scenery folders are given (white-box: 1 in 5)", kinds=("train",)),
    Opt("image_size", click.IntRange(min=8), 128, "training crop size (multiple of 8)"),
    Opt("load_size", click.IntRange(min=0), 0, "shorter side before the random crop (0: image_size)"),
    Opt("holdout", click.IntRange(min=0), 32, "photos held out for evaluation (at most 10%)"),
    Opt("landmark_cache", str, None, "landmark cache file (default: beside the photo folder)"),
    Opt("workers", click.IntRange(min=0), 2, "data loader worker processes (0: in-process)"),
    # schedule
    Opt("total_iter", _pos_int(), None, "iterations (default 50000 pretrain, 100000 train)"),
    Opt("batch_size", _pos_int(), 16, "batch size per process"),
    Opt("lr", click.FloatRange(min=0, min_open=True), 2e-4, "Adam learning rate (G and Ds)"),
    Opt("beta1", click.FloatRange(0, 1), 0.5, "Adam beta1"),
    Opt("beta2", click.FloatRange(0, 1), 0.99, "Adam beta2"),
    # losses (train)
    Opt("preset", click.Choice(sorted(PRESETS)), "code",
        "loss-weight preset: white-box code or paper weights (explicit --wN wins)", kinds=("train",)),
    Opt("w0", NONNEG, None, "total variation weight [code 1e4]", ("train",), ("w-tv", "w_tv")),
    Opt("w1", NONNEG, None, "surface (Ds) weight [code 1e-1]", ("train",), ("w-surface", "w_surface")),
    Opt("w2", NONNEG, None, "texture (Dt) weight [code 1]", ("train",), ("w-texture", "w_texture")),
    Opt("w3", NONNEG, None, "content (VGG) weight [code 2e2]", ("train",), ("w-content", "w_content")),
    Opt("w4", NONNEG, None, "structure (superpixel VGG) weight [code 2e2]", ("train",),
        ("w-structure", "w_structure")),
    Opt("w5", NONNEG, DEFAULT_W5, "landmark weight (0 turns the landmark loss off)", ("train",),
        ("w-landmark", "w_landmark")),
    Opt("superpixel", click.Choice(SUPERPIXEL_METHODS), "fast",
        "structure backend (slic: faithful skimage; sscolor: selective-search colouring)", ("train",)),
    Opt("seg_num", _pos_int(2), 200, "superpixels per image", ("train",)),
    Opt("sscolor_power", NONNEG, 1.2, "power curve of the sscolor backend", ("train",)),
    Opt("gf_eps", NONNEG, 1e-2, "eps of the guided filter after G in training (white-box 1e-2)"),
    Opt("d_fresh_forward", bool, True,
        "D step on a fresh G forward after the G update (white-box); off reuses the G-step output",
        ("train",), is_flag=True),
    Opt("vgg_weights", str, None,
        "VGG19 weights (.pth or .npy); default: torch hub cache, then checkpoints/; 'random' for demos",
        ("train",), ("vgg-weights",)),
    # model
    Opt("output_act", click.Choice(OUTPUT_ACTS), "none", "generator output activation (white-box: none)"),
    Opt("upsample", click.Choice(UPSAMPLE_MODES), "tf", "generator upsampling (tf: TF1 resize_bilinear)"),
    Opt("init", str, None, "generator to start from (default: the latest pretrained one)", ("train",)),
    # run
    Opt("name", str, None, "run name (default: pretrain / train)"),
    Opt("model_version", click.IntRange(min=0), None, "the seed's run number: name v<N>", ("train",)),
    Opt("checkpoints_dir", str, "checkpoints", "folder holding run folders"),
    Opt("device", str, "auto", "auto, cpu, cuda or cuda:N"),
    Opt("precision", click.Choice(PRECISIONS), "fp32", "bf16 autocast (CUDA, or CPUs with bf16 units)"),
    Opt("amp", bool, False, "same as --precision bf16", is_flag=True),
    Opt("channels_last", bool, True, "channels_last memory format", is_flag=True),
    Opt("reuse_host_memory", bool, True,
        "CPU: malloc keeps freed memory for reuse instead of mmap/munmap per big tensor (glibc)",
        is_flag=True),
    Opt("seed", click.IntRange(min=0), 0, "random seed"),
    Opt("resume", bool, False, "continue the run from its latest checkpoint", is_flag=True),
    Opt("log_every", _pos_int(), 50, "steps per stats.jsonl line"),
    Opt("sample_every", _pos_int(), 1000, "steps per side-by-side grid"),
    Opt("save_every", _pos_int(), 1000, "steps per checkpoint"),
    Opt("keep_ckpt", _pos_int(), 3, "full-state checkpoints kept besides latest.pt"),
    Opt("grid_size", _pos_int(), 8, "faces in the side-by-side grid"),
    Opt("tensorboard", bool, True, "TensorBoard events (when tensorboard is installed)", is_flag=True),
    Opt("progress", bool, True, "tqdm progress bar", is_flag=True),
    Opt("dry_run", bool, False, "print the resolved configuration and exit", is_flag=True),
]
OPTION_BY_NAME = {o.name: o for o in OPTIONS}
DEFAULT_TOTAL_ITER = {"pretrain": 50_000, "train": 100_000}


def options_for(kind: str) -> list[Opt]:
    return [o for o in OPTIONS if kind in o.kinds]


def click_options(kind: str) -> Callable:
    """Decorator adding every option of ``kind`` to a click command."""
    def deco(fn: Callable) -> Callable:
        for o in reversed(options_for(kind)):
            dash = o.name.replace("_", "-")
            if o.is_flag:
                names = [f"--{o.name}/--no-{o.name}"]
                if dash != o.name:
                    names.append(f"--{dash}/--no-{dash}")
                fn = click.option(*names, o.name, default=o.default, show_default=True,
                                  help=o.help)(fn)
                continue
            names = [f"--{o.name}"] + ([f"--{dash}"] if dash != o.name else [])
            names += [f"--{a}" for a in o.aliases if f"--{a}" not in names]
            fn = click.option(*names, o.name, type=o.type, default=o.default,
                              show_default=o.default is not None, help=o.help, **o.extra)(fn)
        return fn
    return deco


def resolve(kind: str, params: dict[str, Any], explicit: set[str] | None = None) -> dict[str, Any]:
    """Fill defaults and presets; returns the run configuration (JSON-serialisable).

    ``explicit`` names the options the user gave (a preset never overrides those).
    """
    explicit = set(params) if explicit is None else set(explicit)
    cfg = {o.name: o.default for o in options_for(kind)}
    unknown = set(params) - set(cfg)
    if unknown:
        raise ValueError(f"unknown {kind} option(s): {', '.join(sorted(unknown))}")
    cfg.update({k: v for k, v in params.items() if v is not None or k in explicit})
    cfg["kind"] = kind
    if cfg.get("total_iter") is None:
        cfg["total_iter"] = DEFAULT_TOTAL_ITER[kind]
    if cfg.pop("amp", False):
        cfg["precision"] = "bf16"
    if kind == "train":
        preset = PRESETS[cfg["preset"]]
        for flag, _ in WEIGHTS[:5]:
            if cfg.get(flag) is None:
                cfg[flag] = preset[flag]
        if cfg.get("model_version") is not None and not cfg.get("name"):
            cfg["name"] = f"v{cfg['model_version']}"
    cfg["name"] = cfg.get("name") or kind
    if cfg["image_size"] % 8:
        raise ValueError(f"--image_size must be a multiple of 8, got {cfg['image_size']}")
    cfg.pop("dry_run", None)
    return cfg


def weights(cfg: dict[str, Any]) -> dict[str, float]:
    """{term name: weight} from a train config."""
    return {name: float(cfg[flag]) for flag, name in WEIGHTS}


def describe(cfg: dict[str, Any]) -> str:
    """The resolved configuration, one option a line, non-defaults marked with '*'."""
    lines = []
    for key in sorted(cfg):
        opt = OPTION_BY_NAME.get(key)
        default = opt.default if opt else None
        if key in dict(WEIGHTS) and key != "w5":
            default = PRESETS["code"][key]
        mark = "*" if opt is not None and cfg[key] != default else " "
        lines.append(f"{mark} {key:<20} {json.dumps(cfg[key])}")
    return "\n".join(lines)
