"""Ablation sweeps as data: option sets over base train options, run one after another,
evaluated on the same held-out faces, summarised side by side.

A sweep named NAME lives in ``<checkpoints_dir>/NAME/``: one run folder per configuration
(``<checkpoints_dir>/NAME/<run id>``, the run id spelling the options that differ between the
configurations, e.g. ``w5=0_w4=200``), plus ``summary.csv``, ``comparison.png`` (rows =
configurations, columns = the same held-out faces), ``metrics.png`` (a bar chart per metric),
``sweep.json`` (what ran) and ``index.html``.

Configurations: the product of every ``--grid key=v1,v2`` and, when given, of a JSON/YAML file
holding a list of option sets (``[{"w5": 0}, {"w5": 1, "w4": 0}]``) or
``{"base": {...}, "runs": [...]}``. Keys are train.py option names (``w5``, ``w-landmark``,
``total_iter``...). Every configuration is parsed by train.py's own option table before
anything runs, so unknown keys and ill-typed values stop the sweep at once.

Resumable: a run whose ``generator/latest.pt`` reached ``total_iter`` is skipped, one with a
``ckpt/latest.pt`` is continued with ``--resume``, and an evaluation whose ``metrics.json``
covers the same photos is reused.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import click

from training.config import OPTIONS, Opt, options_for, resolve
from utils.errors import ToonFaceError
from utils.io import atomic_write_bytes, atomic_write_text
from utils.run_dir import RunDir

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "train.py"
# The sweep owns these: each run's name, and whether it resumes.
RESERVED = {"name", "model_version", "resume", "dry_run"}
# Options that change which photos a run holds out.
HOLDOUT_KEYS = {"photo_dir", "seed", "holdout"}
METRIC_COLUMNS = ["nme68_mean", "identity_distance_mean", "identity_same_rate", "face_found_rate_dlib",
                  "nme_mediapipe_mean", "face_found_rate_mediapipe", "fid_cartoon", "kid_cartoon",
                  "fid_photo", "kid_photo", "distinct_colours", "edge_density", "flatness",
                  "smooth_share"]
FIGURE_FACES = 8


def _echo(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ option sets
def option_names() -> dict[str, Opt]:
    """Every spelling of a train option (underscore, dash, aliases) -> its Opt."""
    names: dict[str, Opt] = {}
    for o in options_for("train"):
        for n in (o.name, o.name.replace("_", "-"), *o.aliases):
            names[n] = o
    return names


def canonical(key: str) -> Opt:
    key = key.strip().lstrip("-")
    opt = option_names().get(key)
    if opt is None:
        import difflib

        close = difflib.get_close_matches(key, list(option_names()), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ToonFaceError(f"unknown train option '{key}'{hint}")
    if opt.name in RESERVED:
        raise ToonFaceError(f"option '{key}' is set by the sweep itself and cannot be swept")
    return opt


def convert(opt: Opt, value: Any, where: str) -> Any:
    """A value checked and converted with the option's click type."""
    try:
        if opt.is_flag:
            return click.BOOL.convert(value, None, None)
        if value is None:
            if opt.default is None:
                return None
            raise click.BadParameter("null is not a value of this option")
        ctype = click.types.convert_type(opt.type)
        return ctype.convert(str(value) if not isinstance(value, str) and ctype is click.STRING
                             else value, None, None)
    except click.BadParameter as exc:
        raise ToonFaceError(f"{where}: bad value {value!r} for --{opt.name}: {exc.message}") from None


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
    """(base options, option sets) from a JSON or YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ToonFaceError(f"sweep file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ToonFaceError(f"{path}: reading YAML needs PyYAML (pip install PyYAML), or use JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ToonFaceError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToonFaceError(f"{path}: not valid JSON ({exc})") from None
    base: dict[str, Any] = {}
    if isinstance(data, dict):
        base = data.get("base") or {}
        data = data.get("runs")
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data) or not isinstance(base, dict):
        raise ToonFaceError(f"{path}: expected a list of option sets, or {{\"base\": {{...}}, \"runs\": [...]}}")

    def norm(d: dict, where: str) -> dict:
        out = {}
        for k, v in d.items():
            opt = canonical(str(k))
            out[opt.name] = convert(opt, v, where)
        return out

    return norm(base, f"{path} base"), [norm(d, f"{path} run {i}") for i, d in enumerate(data)]


def to_args(options: dict[str, Any]) -> list[str]:
    """Option dict -> train.py argv tokens."""
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


# ------------------------------------------------------------------------------ planning
def plan(name: str, grid: list[str], configs: str | None, base_args: list[str]) -> list[dict]:
    """Every configuration, checked by train.py's option table: list of
    ``{"id", "options", "args", "cfg"}``. Nothing runs here."""
    from training.cli import explicit_params
    from training.config import click_options

    if not name or "/" in name or name.startswith("."):
        raise ToonFaceError(f"--name {name!r}: a plain folder name is expected")
    file_base, sets = read_configs(configs) if configs else ({}, [{}])
    if not sets:
        raise ToonFaceError(f"{configs}: no option sets")
    axes = parse_grid(grid)
    combos = []
    for s in sets:
        for values in itertools.product(*[v for _, v in axes]) if axes else [()]:
            combos.append({**s, **{k: v for (k, _), v in zip(axes, values)}})
    # The keys whose values differ between configurations label the runs.
    keys: list[str] = []
    for c in combos:
        for k in c:
            if k not in keys and len({json.dumps(d.get(k)) for d in combos}) > 1:
                keys.append(k)

    cmd = click.command()(click_options("train")(lambda **p: None))
    runs, ids = [], set()
    for c in combos:
        rid = run_id(c, keys)
        if rid in ids:
            raise ToonFaceError(f"two configurations give the same run '{rid}' (duplicate option sets?)")
        ids.add(rid)
        args = list(base_args) + to_args(file_base) + to_args(c) + ["--name", f"{name}/{rid}"]
        try:
            ctx = cmd.make_context("train.py", list(args))
            params = dict(ctx.params)
            params.pop("dry_run", None)
            cfg = resolve("train", params, explicit_params(ctx))
        except click.ClickException as exc:
            raise ToonFaceError(f"run {rid}: {exc.format_message()}") from None
        except ToonFaceError as exc:
            raise ToonFaceError(f"run {rid}: {exc}") from None
        runs.append({"id": rid, "options": c, "args": args, "cfg": cfg})
    for k in ("name", "model_version", "resume"):
        if any(a in (f"--{k}", f"--{k.replace('_', '-')}") for a in base_args):
            raise ToonFaceError(f"base options: --{k} is set by the sweep itself")
    return runs


def run_dir(cfg) -> RunDir:
    return RunDir.of(cfg.run.checkpoints_dir, cfg.run.name)


def run_state(cfg) -> str:
    """"done", "resume" or "new"."""
    run = run_dir(cfg)
    if run.latest_generator.is_file():
        from models.checkpoint import load_checkpoint_file

        try:
            if int(load_checkpoint_file(run.latest_generator).get("step", -1)) >= cfg.optim.total_iter:
                return "done"
        except ToonFaceError:
            pass
    return "resume" if run.latest_checkpoint.is_file() else "new"


def command(run: dict, state: str) -> list[str]:
    return [sys.executable, str(TRAIN_SCRIPT), *run["args"], *(["--resume"] if state == "resume" else [])]


# -------------------------------------------------------------------------------- the sweep
def sweep(name: str, grid: list[str] | tuple[str, ...] = (), configs: str | None = None,
          base_args: list[str] | tuple[str, ...] = (), dry_run: bool = False,
          evaluate_runs: bool = True, eval_photo_dir: str | None = None, num: int | None = None,
          inception: str | None = None, device: str = "auto",
          echo: Callable[[str], None] = _echo) -> dict:
    """Plan, run, evaluate and summarise a sweep; returns paths of what it wrote."""
    runs = plan(name, list(grid), configs, list(base_args))
    swept = sorted({k for r in runs for k in r["options"]})
    if evaluate_runs and not eval_photo_dir and HOLDOUT_KEYS & set(swept):
        raise ToonFaceError(f"the sweep changes {', '.join(sorted(HOLDOUT_KEYS & set(swept)))}, so runs hold "
                            "out different photos: pass --eval-photo-dir with the evaluation faces")
    sweep_dir = Path(runs[0]["cfg"].run.checkpoints_dir) / name
    if len({r["cfg"].run.checkpoints_dir for r in runs}) > 1:
        raise ToonFaceError("all runs of a sweep must share --checkpoints_dir")
    states = {r["id"]: run_state(r["cfg"]) for r in runs}
    if dry_run:
        for r in runs:
            echo(f"# {r['id']} ({states[r['id']]})")
            click.echo(shlex.join(command(r, states[r["id"]])))
        return {"sweep_dir": sweep_dir, "runs": [r["id"] for r in runs], "dry_run": True}

    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sweep_dir / "sweep.json", json.dumps(
        {"name": name, "grid": list(grid), "configs": configs, "base_args": list(base_args),
         "runs": [{"id": r["id"], "options": r["options"], "args": r["args"]} for r in runs]},
        indent=2, default=str) + "\n")
    failed: list[str] = []
    for i, r in enumerate(runs):
        state = run_state(r["cfg"])
        if state == "done":
            echo(f"[{i + 1}/{len(runs)}] {r['id']}: finished, skipped")
            continue
        cmd = command(r, state)
        echo(f"[{i + 1}/{len(runs)}] {r['id']}: {'resuming' if state == 'resume' else 'training'}\n  "
             + shlex.join(cmd))
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            echo(f"[{i + 1}/{len(runs)}] {r['id']}: train.py exited with {rc}")
            failed.append(r["id"])
            if rc == 130:  # interrupted by the user: stop the sweep, it resumes next time
                raise KeyboardInterrupt

    results = []
    if evaluate_runs:
        results = evaluate_all(runs, failed, eval_photo_dir, num, inception, device, echo)
    out = summarise(name, sweep_dir, runs, results, failed)
    out["failed"] = failed
    return out


def evaluate_all(runs: list[dict], failed: list[str], eval_photo_dir: str | None, num: int | None,
                 inception: str | None, device: str, echo) -> list[dict | None]:
    """Each finished run evaluated on the same photos; None for runs that did not finish."""
    from datasets.folders import collect_images
    from evaluation.evaluate import evaluate, heldout_photos

    folders = [run_dir(r["cfg"]) for r in runs]
    if eval_photo_dir:
        photos = collect_images(eval_photo_dir, "evaluation photo")
    else:
        lists = {r["id"]: f.read_heldout() for r, f in zip(runs, folders) if f.heldout_file.is_file()}
        if len({tuple(v) for v in lists.values()}) > 1:
            raise ToonFaceError("runs of this sweep hold out different photos (heldout.txt differs): "
                                "pass --eval-photo-dir")
        first = next((f for f in folders if f.heldout_file.is_file()), None)
        if first is None:
            raise ToonFaceError(f"no run of the sweep wrote a heldout.txt under {folders[0].checkpoints_dir}")
        photos = heldout_photos(first)
    photos = photos[:num] if num else photos
    cache: dict = {}
    results: list[dict | None] = []
    seen: set[str] = set()

    def echo_once(msg: str) -> None:  # the same notice (no Inception file...) once per sweep
        if msg.startswith("notice:"):
            if msg in seen:
                return
            seen.add(msg)
        echo(msg)

    for r, f in zip(runs, folders):
        if r["id"] in failed or not f.latest_generator.is_file():
            results.append(None)
            continue
        from models.checkpoint import load_checkpoint_file

        step = int(load_checkpoint_file(f.latest_generator).get("step", 0))
        out = f.test_dir(step)
        mfile = out / "metrics.json"
        if mfile.is_file():
            try:
                m = json.loads(mfile.read_text())
                if m.get("photos") == [str(p) for p in photos] and m.get("step") == step:
                    echo(f"{r['id']}: evaluation of step {step} already there")
                    results.append({"metrics": m, "out_dir": out, "index": out / "index.html"})
                    continue
            except (OSError, json.JSONDecodeError):
                pass
        results.append(evaluate(checkpoint=str(f.latest_generator), photos=photos, out=str(out),
                                inception=inception, device=device, feature_cache=cache,
                                checkpoints_dir=r["cfg"].run.checkpoints_dir, echo=echo_once))
    return results


# ------------------------------------------------------------------------------- summaries
def summarise(name: str, sweep_dir: Path, runs: list[dict], results: list[dict | None],
              failed: list[str]) -> dict:
    from evaluation.report import write_sweep_index

    swept: list[str] = []
    for r in runs:
        for k in r["options"]:
            if k not in swept:
                swept.append(k)
    header = ["run", *swept, "status", "step", *METRIC_COLUMNS]
    rows, links, labels = [], [], []
    for i, r in enumerate(runs):
        res = results[i] if i < len(results) else None
        m = (res or {}).get("metrics", {})
        s = m.get("summary", {})
        status = "failed" if r["id"] in failed else ("evaluated" if res else run_state(r["cfg"]))
        rows.append([r["id"], *[r["options"].get(k) for k in swept], status, m.get("step"),
                     *[s.get(k) for k in METRIC_COLUMNS]])
        links.append({"run": r["id"], "test_index": (res or {}).get("index"),
                      "loss_curves": run_dir(r["cfg"]).loss_curves})
        labels.append(row_label(r, runs))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else v for v in row])
    atomic_write_text(sweep_dir / "summary.csv", buf.getvalue())
    comparison = comparison_figure(sweep_dir / "comparison.png", labels, results)
    bars = metric_bars(sweep_dir / "metrics.png", [r["id"] for r in runs],
                       {k: [row[header.index(k)] for row in rows] for k in METRIC_COLUMNS})
    notes = [f"{len(failed)} run(s) failed: {', '.join(failed)}"] if failed else []
    index = write_sweep_index(sweep_dir, name, header, rows,
                              {"Same faces, every configuration": comparison, "Metrics": bars},
                              links, notes)
    return {"sweep_dir": sweep_dir, "summary": sweep_dir / "summary.csv", "comparison": comparison,
            "metrics": bars, "index": index}


def row_label(run: dict, runs: list[dict]) -> str:
    keys = [k for k in run["options"]
            if len({json.dumps(r["options"].get(k)) for r in runs}) > 1]
    return "\n".join(f"{k}={fmt_value(run['options'].get(k))}" for k in keys) or run["id"]


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def comparison_figure(path: Path, labels: list[str], results: list[dict | None],
                      faces: int = FIGURE_FACES) -> Path | None:
    """Rows: the photos, then each configuration; columns: the same held-out faces."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from datasets.images import read_image_rgb

    done = [(lab, res) for lab, res in zip(labels, results) if res]
    if not done:
        return None
    per_image = done[0][1]["metrics"].get("per_image", [])[:faces]
    if not per_image:
        return None
    names = [p["name"] for p in per_image]
    rows: list[tuple[str, list]] = []
    photo_dir = Path(done[0][1]["out_dir"]) / "photos"
    rows.append(("photo", [photo_dir / f"{n}.png" for n in names]))
    for lab, res in done:
        rows.append((lab, [Path(res["out_dir"]) / "outputs" / f"{n}.png" for n in names]))
    ncols = len(names)
    fig = Figure(figsize=(1.3 * ncols + 1.2, 1.35 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    for i, (lab, files) in enumerate(rows):
        for j, f in enumerate(files):
            ax = fig.add_subplot(len(rows), ncols, i * ncols + j + 1)
            if f.is_file():
                ax.imshow(read_image_rgb(f), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(lab, fontsize=7, rotation=0, ha="right", va="center")
            if i == 0:
                ax.set_title(names[j][5:][:12], fontsize=6)
    fig.subplots_adjust(left=min(0.45, 1.2 / (1.3 * ncols + 1.2)), right=0.99, top=0.93,
                        bottom=0.01, wspace=0.05, hspace=0.08)
    return _save(fig, path)


def metric_bars(path: Path, run_ids: list[str], values: dict[str, list]) -> Path | None:
    """One bar chart per metric that any run has."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = [k for k, v in values.items() if any(isinstance(x, (int, float)) for x in v)]
    if not metrics:
        return None
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 0.35 * len(run_ids) + 1.6 + 2.2 * (nrows - 1)), dpi=100)
    FigureCanvasAgg(fig)
    for i, k in enumerate(metrics):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ys = list(range(len(run_ids)))
        vals = [v if isinstance(v, (int, float)) else 0.0 for v in values[k]]
        ax.barh(ys, vals, color=["C0" if isinstance(v, (int, float)) else "0.8" for v in values[k]])
        ax.set_yticks(ys)
        ax.set_yticklabels(run_ids, fontsize=7)
        ax.invert_yaxis()
        for y, v in zip(ys, values[k]):
            ax.text(0, y, " n/a" if v is None else f" {v:.3g}", va="center", fontsize=7)
        ax.set_title(k, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return _save(fig, path)
