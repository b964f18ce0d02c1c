"""Planning a sweep: option sets read and checked (the sweep file's schema:
``evaluation.sweep.schema``), train.py / pretrain.py commands built, held-out people
validated. Nothing runs and nothing is written here.

Precedence of options, lowest first: the sweep file's ``base``, the command line's base
options (after ``--``), a configuration's own options (its file entry and its ``--grid``
values). click keeps the last value of an option, so the argv is built in that order.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from evaluation.sweep.schema import (FILE_KEYS, RESERVED, StudyFileError, SweepFile,  # noqa: F401
                                     canonical, convert, option_names, read_sweep_file)
from training.config import OPTIONS, click_options, options_for, resolve
from utils.errors import ToonFaceError
from utils.run_dir import RunDir
from datasets.folders import resolve_cartoon_dir
from media.folders import list_images
from models.checkpoint import load_checkpoint_file
from training.cli import explicit_params
from training.data import heldout_people

PRETRAIN_PREFIX = "pretrain-"


# ------------------------------------------------------------------------ option sets
def parse_grid(specs: tuple[str, ...] | list[str]) -> list[tuple[str, list[Any]]]:
    """``["w5=0,1", "w4=0,200"]`` -> ``[("w5", [0.0, 1.0]), ("w4", [0.0, 200.0])]``."""
    out: list[tuple[str, list[Any]]] = []
    for spec in specs:
        if "=" not in spec:
            raise ToonFaceError(f"--grid {spec}: expected key=value1,value2,...")
        key, vals = spec.split("=", 1)
        opt = canonical(key)
        if any(k == opt.name for k, _ in out):
            raise ToonFaceError(f"--grid {spec}: --{opt.name} is gridded twice")
        items = [v.strip() for v in vals.split(",")]
        if not items or any(v == "" for v in items):
            raise ToonFaceError(f"--grid {spec}: empty value")
        out.append((opt.name, [convert(opt, v, f"--grid {spec}") for v in items]))
    return out


def read_configs(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(base options, option sets) of a sweep file."""
    f = read_sweep_file(path)
    return f.base, f.runs


def to_args(options: dict[str, Any]) -> list[str]:
    """Option dict -> train.py / pretrain.py argv tokens."""
    by_name = {o.name: o for o in OPTIONS}
    args: list[str] = []
    for k, v in options.items():
        opt = by_name[k]
        if opt.is_flag:
            args.append(f"--{k}" if v else f"--no-{k}")
        elif v is not None:
            args += [f"--{k}", fmt_value(v)]
    return args


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def run_id(options: dict[str, Any], keys: list[str]) -> str:
    if not keys:
        return "base"
    parts = []
    for k in keys:
        v = options.get(k)
        v = ("on" if v else "off") if isinstance(v, bool) else ("default" if v is None else fmt_value(v))
        parts.append(f"{k}={v}")
    return re.sub(r"[^A-Za-z0-9=._+-]", "-", "_".join(parts))


def _command(kind: str) -> click.Command:
    return click.command()(click_options(kind)(lambda **p: None))


def parse_args(kind: str, args: list[str], where: str):
    """(Config, {explicit option: value}) of ``args`` parsed by ``kind``.py's own option table."""
    try:
        ctx = _command(kind).make_context(f"{kind}.py", list(args))
        params = dict(ctx.params)
        params.pop("dry_run", None)
        explicit = explicit_params(ctx)
        cfg = resolve(kind, params, explicit)
    except click.ClickException as exc:
        raise ToonFaceError(f"{where}: {exc.format_message()}") from None
    except ToonFaceError as exc:
        raise ToonFaceError(f"{where}: {exc}") from None
    return cfg, {k: params[k] for k in explicit if k in params}


# ------------------------------------------------------------------------------ planning
@dataclass
class SweepPlan:
    """Every command of a sweep, checked: ``runs`` (train.py) and ``pretrains`` (pretrain.py,
    one per distinct seed when the file has a pretrain stage); each a dict with ``id``,
    ``kind``, ``options``, ``args``, ``cfg`` (train runs: ``pretrain``, the id of theirs)."""
    name: str
    runs: list[dict]
    pretrains: list[dict]
    file: SweepFile
    sweep_dir: Path


def plan_sweep(name: str, grid: list[str], configs: str | None, base_args: list[str],
               check_data: bool = True) -> SweepPlan:
    """Every configuration, checked by train.py's (and pretrain.py's) option table, and the
    held-out people checked against the folders (``check_data``). Nothing runs here."""
    if not name or "/" in name or name.startswith("."):
        raise ToonFaceError(f"--name {name!r}: a plain folder name is expected")
    for k in ("name", "model_version", "resume"):
        if any(a in (f"--{k}", f"--{k.replace('_', '-')}") for a in base_args):
            raise ToonFaceError(f"base options: --{k} is set by the sweep itself")
    sf = read_sweep_file(configs) if configs else SweepFile()
    if not sf.runs:
        raise ToonFaceError(f"{configs}: no option sets")
    axes = parse_grid(grid)
    combos = []
    for s in sf.runs:
        for values in itertools.product(*[v for _, v in axes]) if axes else [()]:
            combos.append({**s, **{k: v for (k, _), v in zip(axes, values)}})
    # The keys whose values differ between configurations label the runs.
    keys: list[str] = []
    for c in combos:
        for k in c:
            if k not in keys and len({json.dumps(d.get(k)) for d in combos}) > 1:
                keys.append(k)
    if len(combos) == 1:  # a single configuration is named by its own options, not "base"
        keys = list(combos[0])
    _, cli_base = parse_args("train", list(base_args), "base options")

    runs, ids = [], set()
    for c in combos:
        rid = run_id(c, keys)
        if rid in ids:
            raise ToonFaceError(f"two configurations give the same run '{rid}' (duplicate option sets?)")
        ids.add(rid)
        args = to_args(sf.base) + list(base_args) + to_args(c) + ["--name", f"{name}/{rid}"]
        cfg, _ = parse_args("train", args, f"run {rid}")
        runs.append({"id": rid, "kind": "train", "options": c, "args": args, "cfg": cfg, "pretrain": None})
    if len({r["cfg"].run.checkpoints_dir for r in runs}) > 1:
        raise ToonFaceError("all runs of a sweep must share --checkpoints_dir")
    sweep_dir = Path(runs[0]["cfg"].run.checkpoints_dir) / name
    pretrains = plan_pretrains(name, sf, cli_base, runs) if sf.pretrain is not None else []
    if check_data:
        checked: dict = {}
        for r in runs:
            check_heldout_people(r["cfg"], f"run {r['id']}", checked)
        for p in pretrains:
            check_heldout_people(p["cfg"], p["id"], checked)
    return SweepPlan(name, runs, pretrains, sf, sweep_dir)


def plan(name: str, grid: list[str], configs: str | None, base_args: list[str]) -> list[dict]:
    """The train runs of :func:`plan_sweep` (without reading the data folders)."""
    return plan_sweep(name, grid, configs, base_args, check_data=False).runs


def plan_pretrains(name: str, sf: SweepFile, cli_base: dict[str, Any], runs: list[dict]) -> list[dict]:
    """One pretrain.py run per distinct seed of the train runs: the base options pretrain.py
    knows (file, then command line), then the file's ``pretrain`` section, then the seed.
    Every train run without its own ``--init`` starts from its seed's pretrained generator."""
    known = {o.name for o in options_for("pretrain")}
    common = {**{k: v for k, v in sf.base.items() if k in known},
              **{k: v for k, v in cli_base.items() if k in known and k not in RESERVED}}
    by_seed: dict[int, dict] = {}
    out: list[dict] = []
    for r in runs:
        if r["cfg"].model.init is not None:  # the run names its own start
            continue
        seed = r["cfg"].run.seed
        if seed not in by_seed:
            pid = f"{PRETRAIN_PREFIX}seed{seed}"
            options = {**common, **sf.pretrain, "seed": seed}
            args = to_args(options) + ["--name", f"{name}/{pid}"]
            cfg, _ = parse_args("pretrain", args, f"{name} {pid}")
            if cfg.run.checkpoints_dir != r["cfg"].run.checkpoints_dir:
                raise ToonFaceError(f"{pid}: the pretrain section cannot move --checkpoints_dir")
            by_seed[seed] = {"id": pid, "kind": "pretrain", "options": options, "args": args,
                             "cfg": cfg, "seed": seed}
            out.append(by_seed[seed])
        p = by_seed[seed]
        init = RunDir.of(p["cfg"].run.checkpoints_dir, p["cfg"].run.name).latest_generator
        # before --name, so it reads like the other options; a run's own --init skips this
        r["args"] = r["args"][:-2] + ["--init", str(init)] + r["args"][-2:]
        r["cfg"].model.init = str(init)
        r["pretrain"] = p["id"]
    return out


# ------------------------------------------------------------------------- run states
def run_dir(cfg) -> RunDir:
    return RunDir.of(cfg.run.checkpoints_dir, cfg.run.name)


def run_state(cfg) -> str:
    """"done", "resume" or "new"."""
    run = run_dir(cfg)
    if run.latest_generator.is_file():
        try:
            if int(load_checkpoint_file(run.latest_generator).get("step", -1)) >= cfg.optim.total_iter:
                return "done"
        except ToonFaceError:
            pass
    return "resume" if run.latest_checkpoint.is_file() else "new"


def heldout_identity(cfg) -> tuple:
    """What decides a run's held-out photos: its people, or the seeded random split."""
    if cfg.data.heldout_people:
        return ("people", cfg.data.photo_dir, cfg.data.heldout_people)
    return ("random", cfg.data.photo_dir, cfg.run.seed, cfg.data.holdout)


# ---------------------------------------------------------------------- held-out people
def check_heldout_people(cfg, where: str, checked: dict | None = None) -> None:
    """A run with ``--heldout_people``: every stem names exactly one photo of its photo folder,
    and no held-out person is in its training data under any other name of the same stem (a
    scenery photo or cartoon). The cartoon folder's same-stem cartoons are left out by
    train.py itself. Raises ToonFaceError (one line) before anything runs."""
    stems = heldout_people(cfg.data.heldout_people)
    if not stems:
        return
    checked = {} if checked is None else checked

    def listing(folder: str) -> list[Path]:
        if folder not in checked:
            p = Path(folder)
            checked[folder] = list_images(p) if p.is_dir() else None
        return checked[folder]

    photos = listing(cfg.data.photo_dir)
    if photos is None:
        raise ToonFaceError(f"{where}: photo folder not found: {cfg.data.photo_dir}")
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ToonFaceError(f"{where}: held-out person {dup[0]} is listed twice in --heldout_people")
    for stem in stems:
        found = [p for p in photos if p.stem == stem]
        if not found:
            raise ToonFaceError(f"{where}: held-out person {stem} has no photo in {cfg.data.photo_dir}")
        if len(found) > 1:
            raise ToonFaceError(f"{where}: held-out person {stem} appears {len(found)} times in "
                                f"{cfg.data.photo_dir} ({', '.join(str(p) for p in found)}): "
                                "the other photos would train on that person")
    held = set(stems)
    for folder, what in ((getattr(cfg.data, "scenery_photo_dir", None), "scenery photos"),
                         (getattr(cfg.data, "scenery_cartoon_dir", None), "scenery cartoons")):
        if not folder:
            continue
        items = listing(str(resolve_cartoon_dir(folder)) if what == "scenery cartoons" else folder) or []
        leak = next((p for p in items if p.stem in held), None)
        if leak is not None:
            raise ToonFaceError(f"{where}: held-out person {leak.stem} also appears in training ({what}: {leak})")
