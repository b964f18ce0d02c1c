"""Reporting a sweep: ``summary.csv`` (one row per run), the comparison figure (the same faces
under every configuration), a bar chart per metric and ``index.html``."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from utils.io import atomic_write_bytes, atomic_write_text

from evaluation.sweep.plan import SweepPlan, fmt_value, run_dir, run_state

METRIC_COLUMNS = ["nme", "found_rate", "fid_cartoon", "kid_cartoon", "fid_photo", "kid_photo",
                  "distinct_colours", "edge_density", "flatness"]
FIGURE_FACES = 8


def summarise(sp: SweepPlan, results: list[dict | None], failed: list[str],
              extra: dict | None = None) -> dict:
    """``summary.csv``, ``comparison.png``, ``metrics.png`` and ``index.html`` of a sweep."""
    from evaluation.report import write_sweep_index

    name, sweep_dir, runs = sp.name, sp.sweep_dir, sp.runs

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
