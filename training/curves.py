"""Loss-curve plots from a run's ``stats.jsonl``.

One PNG with four panels: weighted generator terms (log scale where all positive), discriminator
losses, discriminator outputs (mean logits on real / fake), and per-phase time per step.
Written by training at each snapshot and by ``plot_curves.py`` for any run.
"""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

from utils.errors import ToonFaceError
from utils.io import atomic_write_bytes


def read_stats(path: str | os.PathLike) -> list[dict]:
    """Records of a ``stats.jsonl`` file; a truncated last line (run killed mid-write) is skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records


def _series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, rec in enumerate(records):
        v = rec.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            xs.append(float(rec.get("step", i)))
            ys.append(float(v))
    return xs, ys


def _panel_keys(keys: set[str]) -> list[tuple[str, list[str], bool]]:
    """(title, keys, try_log_scale) for each panel that has something to draw."""
    weighted = sorted(k for k in keys if k.startswith("G/") and k.endswith("_weighted"))
    g_terms = weighted + [k for k in ("G/total",) if k in keys]
    if not weighted:  # pretraining ("G/l1") or a stats file without weighted terms
        g_terms = sorted(k for k in keys if k.startswith("G/"))
    d_out = ("D/surface_real", "D/surface_fake", "D/texture_real", "D/texture_fake")
    d_loss = sorted(k for k in keys if k.startswith("D/") and k not in d_out)
    times = sorted(k for k in keys if k.startswith("time/"))
    others = sorted(k for k in keys if k.startswith("landmark/"))
    panels = [("generator terms (weighted)", g_terms, True),
              ("discriminator losses", d_loss, False),
              ("discriminator outputs (mean logit)", [k for k in d_out if k in keys], False),
              ("time per step [s]", times, True),
              ("landmarks", others, False)]
    return [p for p in panels if p[1]]


def plot_loss_curves(stats_jsonl_path: str | os.PathLike, out_png: str | os.PathLike,
                     title: str | None = None) -> Path:
    """Plot the curves of ``stats_jsonl_path`` into ``out_png`` (written atomically); returns it.

    Robust to missing keys, to a single record (drawn as markers) and to an empty file (a figure
    that says so). Uses a ``Figure`` object with the Agg canvas: no pyplot global state.
    """
    stats_jsonl_path, out_png = Path(stats_jsonl_path), Path(out_png)
    if not stats_jsonl_path.is_file():
        raise ToonFaceError(f"no stats file at {stats_jsonl_path}")
    fig = loss_figure(read_stats(stats_jsonl_path),
                      title or str(stats_jsonl_path.parent.name or stats_jsonl_path))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out_png, buf.getvalue())
    return out_png


def loss_figure(records: list[dict], title: str):
    """The loss-curve ``Figure`` of stats records: one panel per group of keys, each with its
    legend to the right of the plot, outside it (inside, "best" still covered the curves of
    the busy panels: nine timings, seven generator terms)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = {k for rec in records for k, v in rec.items() if isinstance(v, (int, float))}
    panels = _panel_keys(keys)
    ncols = 2 if len(panels) > 1 else 1
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = Figure(figsize=(7.4 * ncols, 3.6 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    for i, (name, pkeys, try_log) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        all_pos = True
        for key in pkeys:
            xs, ys = _series(records, key)
            if not xs:
                continue
            all_pos &= min(ys) > 0
            label = key.split("/", 1)[1].removesuffix("_weighted")
            style = dict(marker="o", markersize=3) if len(xs) < 3 else {}
            lw = 2.0 if key in ("G/total", "D/total", "time/step") else 1.2
            ax.plot(xs, ys, label=label, linewidth=lw, **style)
        if try_log and all_pos and ax.lines:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                      frameon=False)
    fig.tight_layout()  # makes room for the legends: they are part of each axes' tight box
    return fig
