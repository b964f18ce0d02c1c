"""Reporting a sweep: ``summary.csv`` (one row per run, and the reference row), the comparison
figure (the same faces under every configuration), a bar chart per metric and ``index.html``;
for a study (a sweep file with a ``compare`` section) also ``study.csv`` (mean and standard
deviation over the replicates of each configuration) and ``paired.csv`` (per replicate, how
many photos a configuration improves over the baseline configuration).

Statistics: the mean over the replicates (e.g. seeds) of each run's summary value, and the
sample standard deviation (ddof = 1; empty for a single replicate). Only runs evaluated at
their ``total_iter`` enter them. Paired counts compare per-image values of two runs of the
same replicate photo by photo; every metric counted is one where lower is better.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from utils.errors import ToonFaceError
from utils.io import atomic_write_bytes, atomic_write_text

from evaluation.sweep.plan import SweepPlan, fmt_value, run_dir, run_state
from evaluation.sweep.schema import DEFAULT_PAIRED, LOWER_IS_BETTER  # noqa: F401 (part of this API)
from evaluation.report import write_sweep_index
from media.decode import read_image_rgb

METRIC_COLUMNS = ["nme68_mean", "identity_distance_mean", "identity_same_rate", "face_found_rate_dlib",
                  "nme_mediapipe_mean", "face_found_rate_mediapipe", "fid_cartoon", "kid_cartoon",
                  "fid_photo", "kid_photo", "distinct_colours", "edge_density", "flatness",
                  "smooth_share"]
# What portrait mode on the scenes adds to each run (prefixed "portrait_" in the tables).
PORTRAIT_COLUMNS = ["pairs", "nme68_mean", "identity_distance_mean", "identity_same_rate",
                    "face_found_rate_dlib", "nme_mediapipe_mean", "face_found_rate_mediapipe"]
PORTRAIT_PREFIX = "portrait_"
# Per-image metrics a paired comparison may count (lower is better for every one).
FIGURE_FACES = 12


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])
    atomic_write_text(path, buf.getvalue())
    return path


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None if v is None else float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def mean_std(values: Iterable[Any]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation (ddof 1), n) of the numbers among ``values`` (None and
    non-finite values left out); std is None for fewer than two, mean for none."""
    xs = [x for x in map(_number, values) if x is not None]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None, len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)), len(xs)


def paired_counts(baseline: dict[str, Any], other: dict[str, Any]) -> dict[str, int]:
    """Photo by photo (keys: photo names), lower is better: how many photos ``other`` improves
    (strictly lower), worsens (strictly higher) or ties; ``compared`` counts photos with a
    number on both sides, ``missing`` the others."""
    out = {"improved": 0, "worse": 0, "tied": 0, "compared": 0, "missing": 0}
    for name in sorted(set(baseline) | set(other)):
        a, b = _number(baseline.get(name)), _number(other.get(name))
        if a is None or b is None:
            out["missing"] += 1
            continue
        out["compared"] += 1
        out["improved" if b < a else "worse" if b > a else "tied"] += 1
    return out


def configuration(options: dict[str, Any], replicate: str) -> dict[str, Any]:
    """A run's options without its replicate key: what defines its configuration."""
    return {k: v for k, v in options.items() if k != replicate}


def config_label(config: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt_value(v)}" for k, v in config.items()) or "base"


def by_configuration(entries: list[dict], metrics: list[str], replicate: str) -> list[dict]:
    """Rows of mean / std over replicates: ``entries`` are ``{"options", "summary"}`` of complete
    runs (an entry's ``configuration`` key, when there, names its group instead of its
    options); configurations in first-seen order. Row keys: ``configuration``, ``runs``,
    ``<replicate>s`` (the values seen), ``<metric>_mean`` and ``<metric>_std``."""
    groups: dict[str, list[dict]] = {}
    for e in entries:
        label = e.get("configuration") or config_label(configuration(e["options"], replicate))
        groups.setdefault(label, []).append(e)
    rows = []
    for label, members in groups.items():
        row: dict[str, Any] = {"configuration": label, "runs": len(members),
                               f"{replicate}s": " ".join(fmt_value(m["options"].get(replicate))
                                                         for m in members)}
        for k in metrics:
            row[f"{k}_mean"], row[f"{k}_std"], _ = mean_std(m["summary"].get(k) for m in members)
        rows.append(row)
    return rows


def has_options(entry: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether ``entry["options"]`` has every option of ``wanted`` at its value."""
    return all(entry["options"].get(k) == v for k, v in wanted.items())


def paired_table(entries: list[dict], replicate: str, baseline: dict[str, Any],
                 metrics: list[str]) -> list[dict]:
    """Per replicate value and per configuration other than ``baseline`` (options that pick the
    baseline configuration): paired counts against the baseline run of the same replicate.
    ``entries``: ``{"options", "per_image": {photo name: {metric: value}}}`` of complete runs."""
    base_by_rep = {}
    for e in entries:
        if has_options(e, baseline):
            base_by_rep.setdefault(json.dumps(e["options"].get(replicate)), e)
    rows = []
    for e in entries:
        rep = json.dumps(e["options"].get(replicate))
        base = base_by_rep.get(rep)
        if base is None or base is e:
            continue
        for k in metrics:
            counts = paired_counts({n: v.get(k) for n, v in base["per_image"].items()},
                                   {n: v.get(k) for n, v in e["per_image"].items()})
            rows.append({replicate: e["options"].get(replicate),
                         "configuration": config_label(configuration(e["options"], replicate)),
                         "baseline": config_label(configuration(base["options"], replicate)),
                         "metric": k, **counts})
    return rows


def paired_tables(entries: list[dict], replicate: str, baselines: list[dict[str, Any]],
                  metrics: list[str]) -> list[dict]:
    """:func:`paired_table` against each of ``baselines`` in turn; against a later baseline,
    the configurations of the earlier ones are left out (their comparison with it is the
    mirror of one already made)."""
    rows = []
    for i, base in enumerate(baselines):
        earlier = baselines[:i]
        rest = [e for e in entries
                if not any(has_options(e, b) for b in earlier)]
        rows += paired_table(rest, replicate, base, metrics)
    return rows


def compare_spec(sp: SweepPlan) -> dict | None:
    """The sweep file's ``compare`` section checked: ``replicate`` (an option, default seed),
    ``baselines`` (a list of option sets: the file's ``baseline``, one or several),
    ``paired`` (per-image metrics, lower is better). None without one."""
    c = sp.file.compare
    if not c:
        return None
    where = f"{sp.file.path}: compare"
    # types, names and metrics were checked with the file (evaluation.sweep.schema)
    rep = c.get("replicate", "seed")
    base = c.get("baseline") or {}
    bases = base if isinstance(base, list) else [base]
    for b in bases:
        if b and not any(has_options(r, b) for r in sp.runs):
            raise ToonFaceError(f"{where}: no run has the baseline options {b}")
    paired = list(c.get("paired", DEFAULT_PAIRED))
    return {"replicate": rep, "baselines": bases, "paired": paired}


def per_image_values(metrics: dict) -> dict[str, dict]:
    """{photo name: per-image record} of an evaluation's metrics.json."""
    return {str(p.get("name")): p for p in metrics.get("per_image", []) if isinstance(p, dict)}


def summarise(sp: SweepPlan, results: list[dict | None], failed: list[str],
              extra: dict | None = None, suffix: str = "") -> dict:
    """``summary.csv``, ``comparison.png``, ``metrics.png``, ``index.html`` of a sweep, and
    for a study ``study.csv`` and ``paired.csv``. ``extra``: ``evaluate_runs.evaluate_sweep``'s
    reference and portrait results. ``suffix``: write only the tables, named
    ``summary<suffix>.csv`` (and ``study``, ``paired``), e.g. for the means over the last
    saved generators (``evaluate_sweep``'s ``window``; their ``step`` column lists the steps)."""
    name, sweep_dir, runs = sp.name, sp.sweep_dir, sp.runs
    extra = extra or {}
    portrait = list(extra.get("portrait") or [None] * len(runs))
    reference = extra.get("reference")
    has_portrait = any(portrait)
    pcols = [PORTRAIT_PREFIX + k for k in PORTRAIT_COLUMNS] if has_portrait else []
    metric_keys = METRIC_COLUMNS + pcols

    swept: list[str] = []
    for r in runs:
        for k in r["options"]:
            if k not in swept:
                swept.append(k)
    header = ["run", *swept, "status", "step", *metric_keys]
    rows, links, entries = [], [], []
    for i, r in enumerate(runs):
        res = results[i] if i < len(results) else None
        m = (res or {}).get("metrics", {})
        s = dict(m.get("summary", {}))
        pm = ((portrait[i] or {}).get("metrics") or {}).get("summary", {})
        s.update({PORTRAIT_PREFIX + k: pm.get(k) for k in PORTRAIT_COLUMNS})
        total = r["cfg"].optim.total_iter
        if r["id"] in failed:
            status = "failed"
        elif res is None:
            status = run_state(r["cfg"])
        else:
            status = "evaluated" if m.get("step") == total else f"partial ({m.get('step')} of {total})"
        step = " ".join(map(str, m["steps"])) if m.get("steps") else m.get("step")
        rows.append([r["id"], *[r["options"].get(k) for k in swept], status, step,
                     *[s.get(k) for k in metric_keys]])
        links.append({"run": r["id"], "test_index": (res or {}).get("index"),
                      "loss_curves": run_dir(r["cfg"]).loss_curves})
        if status == "evaluated":
            entries.append({"id": r["id"], "options": r["options"], "summary": s,
                            "per_image": per_image_values(m)})
    pre_entries = []
    for p, res in zip(sp.pretrains, extra.get("pretrained") or []):
        m = (res or {}).get("metrics", {})
        if not m:
            continue
        total = p["cfg"].optim.total_iter
        status = "pretrained" if m.get("step") == total else f"partial ({m.get('step')} of {total})"
        rows.append([p["id"], *[None] * len(swept), status, m.get("step"),
                     *[m.get("summary", {}).get(k) for k in metric_keys]])
        if status == "pretrained":
            pre_entries.append({"options": {"seed": p["seed"]}, "summary": m.get("summary", {}),
                                "configuration": "pretrained generator (no cartoon training)"})
    ref_summary = {}
    if reference:
        ref_summary = dict(reference["metrics"].get("summary", {}))
        rows.append([reference["label"], *[None] * len(swept), "reference", None,
                     *[ref_summary.get(k) for k in metric_keys]])
    out = {"sweep_dir": sweep_dir,
           "summary": write_csv(sweep_dir / f"summary{suffix}.csv", header, rows)}

    spec = compare_spec(sp)
    if spec:
        rep = spec["replicate"]
        table = by_configuration(entries, metric_keys, rep)
        if pre_entries:
            table += by_configuration(pre_entries, metric_keys, "seed")
        if reference:
            table.append({"configuration": reference["label"], "runs": 1, f"{rep}s": "",
                          **{f"{k}_mean": ref_summary.get(k) for k in metric_keys}})
        cols = ["configuration", "runs", f"{rep}s"] + [f"{k}_{s}" for k in metric_keys for s in ("mean", "std")]
        out["study"] = write_csv(sweep_dir / f"study{suffix}.csv", cols, ([t.get(c) for c in cols] for t in table))
        paired = paired_tables(entries, rep, spec["baselines"], spec["paired"])
        pcols_ = [rep, "configuration", "baseline", "metric", "improved", "worse", "tied", "compared", "missing"]
        out["paired"] = write_csv(sweep_dir / f"paired{suffix}.csv", pcols_, ([p[c] for c in pcols_] for p in paired))

    if suffix:
        return out
    columns = [(row_label(r, runs), results[i] if i < len(results) else None) for i, r in enumerate(runs)]
    if reference:
        columns.append((reference["label"], reference))
    comparison = comparison_figure(sweep_dir / "comparison.png", columns)
    bars = metric_bars(sweep_dir / "metrics.png", [row[0] for row in rows],
                       {k: [row[header.index(k)] for row in rows] for k in metric_keys})
    notes = [f"{len(failed)} run(s) failed: {', '.join(failed)}"] if failed else []
    marked: dict[str, list[str]] = {}
    for r, res in zip(runs, results):
        for k in ((res or {}).get("metrics") or {}).get("not_independent") or {}:
            marked.setdefault(k, []).append(r["id"])
    notes += [f"{k} is not an independent judge of {', '.join(ids)} (trained against its network; "
              "see each run's metrics.json)" for k, ids in marked.items()]
    index = write_sweep_index(sweep_dir, name, header, rows,
                              {"Same faces, every configuration": comparison, "Metrics": bars},
                              links, notes)
    out.update(comparison=comparison, metrics=bars, index=index)
    return out


def row_label(run: dict, runs: list[dict]) -> str:
    keys = [k for k in run["options"]
            if len({json.dumps(r["options"].get(k)) for r in runs}) > 1]
    return "\n".join(f"{k}={fmt_value(run['options'].get(k))}" for k in keys) or run["id"]


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def comparison_figure(path: Path, columns: list[tuple[str, dict | None]],
                      faces: int = FIGURE_FACES) -> Path | None:
    """Columns: the photo, then each (label, evaluation) of ``columns``; rows: the same
    evaluation faces (the first ``faces``). An evaluation folder holds ``photos/<name>.png``
    and ``outputs/<name>.png`` (test.py's layout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure


    done = [(lab, res) for lab, res in columns if res]
    if not done:
        return None
    names = [str(p["name"]) for p in done[0][1]["metrics"].get("per_image", [])[:faces]]
    if not names:
        return None
    cols: list[tuple[str, list[Path]]] = [("photo", [Path(done[0][1]["out_dir"]) / "photos" / f"{n}.png"
                                                     for n in names])]
    for lab, res in done:
        cols.append((lab, [Path(res["out_dir"]) / "outputs" / f"{n}.png" for n in names]))
    nrows, ncols = len(names), len(cols)
    fig = Figure(figsize=(1.1 * ncols + 0.9, 1.1 * nrows + 0.5), dpi=100)
    FigureCanvasAgg(fig)
    for j, (lab, files) in enumerate(cols):
        for i, f in enumerate(files):
            ax = fig.add_subplot(nrows, ncols, i * ncols + j + 1)
            if f.is_file():
                ax.imshow(read_image_rgb(f), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(lab, fontsize=6)
            if j == 0:
                ax.set_ylabel(names[i][5:][:12], fontsize=6)
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.45 / (1.1 * nrows + 0.5), bottom=0.01,
                        wspace=0.04, hspace=0.04)
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
