"""Static HTML pages: one per ``test.py`` evaluation and one per sweep.

Plain HTML with relative links, so a folder can be copied or served as it is.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Sequence

from utils.io import atomic_write_text

STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
img.full { max-width: 100%; image-rendering: pixelated; }
img.thumb { width: 96px; image-rendering: pixelated; }
.note { color: #a05000; }
"""


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def rel(path: str | os.PathLike, start: str | os.PathLike) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned, cells may be raw HTML
    when wrapped in ``Raw``."""
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i < left else ""
        text = v.html if isinstance(v, Raw) else html.escape(fmt(v))
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "\n".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


class Raw:
    """A table cell holding HTML (already escaped)."""

    def __init__(self, html_text: str):
        self.html = html_text


def page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def img(src: str, cls: str = "full", alt: str = "") -> str:
    return f'<img class="{cls}" src="{html.escape(src)}" alt="{html.escape(alt)}">'


def write_test_index(out_dir: Path, metrics: dict, grids: list[Path], rows: list[dict],
                     loss_curves: Path | None = None) -> Path:
    """``out_dir/index.html`` of one evaluation: metrics, grids, one row per face."""
    out_dir = Path(out_dir)
    parts = [f"<p>generator <code>{html.escape(str(metrics.get('checkpoint')))}</code>, step "
             f"{html.escape(fmt(metrics.get('step')))}, {metrics.get('n')} faces at "
             f"{metrics.get('image_size')} px from {html.escape(str(metrics.get('photo_source')))}</p>"]
    summary = metrics.get("summary", {})
    parts.append("<h2>Metrics</h2>")
    parts.append(table(["metric", "value"], [[k, v] for k, v in summary.items()]))
    for note in metrics.get("notes", []):
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    style = metrics.get("style") or {}
    if style:
        keys = ["distinct_colours", "edge_density", "flatness", "n"]
        parts.append("<h3>Style statistics (outputs vs their photos vs the cartoon set)</h3>")
        parts.append(table(["images"] + keys, [[name] + [s.get(k) for k in keys]
                                               for name, s in style.items() if s]))
    parts.append('<p><a href="metrics.json">metrics.json</a></p>')
    if loss_curves is not None and Path(loss_curves).is_file():
        parts.append(f'<h2>Loss curves</h2>{img(rel(loss_curves, out_dir))}')
    parts.append("<h2>Side by side</h2>")
    parts.extend(f"<p>{img(rel(g, out_dir))}</p>" for g in grids)
    parts.append("<h2>Per face</h2>")
    parts.append(table(["face", "photo", "output", "NME"],
                       [[r["name"], Raw(img(rel(r["photo"], out_dir), "thumb")),
                         Raw(img(rel(r["output"], out_dir), "thumb")), r.get("nme")] for r in rows]))
    path = out_dir / "index.html"
    atomic_write_text(path, page(f"ToonFace test: {metrics.get('run') or metrics.get('checkpoint')}",
                                 "\n".join(parts)))
    return path


def write_sweep_index(sweep_dir: Path, name: str, header: list[str], rows: list[list[Any]],
                      figures: dict[str, Path], runs: list[dict], notes: Sequence[str] = ()) -> Path:
    """``sweep_dir/index.html``: summary table, figures, links to each run's pages."""
    sweep_dir = Path(sweep_dir)
    parts = ['<p><a href="summary.csv">summary.csv</a></p>']
    parts.extend(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    parts.append(table(header, rows, left=2))
    for title, path in figures.items():
        if path is not None and Path(path).is_file():
            parts.append(f"<h2>{html.escape(title)}</h2><p>{img(rel(path, sweep_dir))}</p>")
    links = []
    for r in runs:
        cells = [r["run"]]
        for key in ("test_index", "loss_curves"):
            p = r.get(key)
            cells.append(Raw(f'<a href="{html.escape(rel(p, sweep_dir))}">{key.replace("_", " ")}</a>')
                         if p and Path(p).is_file() else None)
        links.append(cells)
    parts.append("<h2>Runs</h2>")
    parts.append(table(["run", "test page", "loss curves"], links))
    path = sweep_dir / "index.html"
    atomic_write_text(path, page(f"ToonFace sweep: {name}", "\n".join(parts)))
    return path
