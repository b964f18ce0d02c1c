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


def _link(path, out_dir: Path) -> str:
    """A relative link from ``out_dir`` (an absolute file URL where none exists)."""
    try:
        return rel(path, out_dir)
    except ValueError:  # another drive (Windows)
        return Path(path).resolve().as_uri()


def write_test_index(out_dir: Path, metrics: dict, grids: list[Path], rows: list[dict],
                     loss_curves: Path | None = None) -> Path:
    """``out_dir/index.html`` of one evaluation (a checkpoint's or a folder of outputs'):
    metrics, grids, one row per pair with its photo and output.

    metrics: the metrics.json dict; rows: per pair {"name", "photo", "output"} image files
    (linked relative to ``out_dir``; a folder of outputs is linked where it lies).
    """
    out_dir = Path(out_dir)
    if metrics.get("mode") == "outputs":
        head = (f"<p>outputs <code>{html.escape(str(metrics.get('outputs_dir')))}</code> scored "
                f"against photos <code>{html.escape(str(metrics.get('photo_dir')))}</code>: "
                f"{metrics.get('n')} pairs</p>")
    else:
        head = (f"<p>generator <code>{html.escape(str(metrics.get('checkpoint')))}</code>, step "
                f"{html.escape(fmt(metrics.get('step')))}, {metrics.get('n')} faces at "
                f"{metrics.get('image_size')} px from {html.escape(str(metrics.get('photo_source')))}"
                "</p>")
    parts = [head]
    summary = metrics.get("summary", {})
    parts.append("<h2>Metrics</h2>")
    marked = metrics.get("not_independent") or {}
    parts.append(table(["metric", "value"], [[f"{k} (not independent)" if k in marked else k, v]
                                             for k, v in summary.items()]))
    face = (metrics.get("face") or {}).get("settings")
    if face:
        parts.append(f"<p>dlib judge: {html.escape(str(face.get('detector')))} detector, upsample "
                     f"{face.get('upsample')}; training landmark detector: "
                     f"{html.escape(str((metrics.get('landmark') or {}).get('detector')))}</p>")
    for note in metrics.get("notes", []):
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    style = metrics.get("style") or {}
    if style:
        keys = ["distinct_colours", "edge_density", "flatness", "smooth_share", "n"]
        parts.append("<h3>Style statistics (outputs vs their photos vs the cartoon set)</h3>")
        parts.append(table(["images"] + keys, [[name] + [s.get(k) for k in keys]
                                               for name, s in style.items() if s]))
    parts.append('<p><a href="metrics.json">metrics.json</a> <a href="per_image.csv">per_image.csv</a></p>')
    if loss_curves is not None and Path(loss_curves).is_file():
        parts.append(f'<h2>Loss curves</h2>{img(rel(loss_curves, out_dir))}')
    if grids:
        parts.append("<h2>Side by side</h2>")
        parts.extend(f"<p>{img(rel(g, out_dir))}</p>" for g in grids)
    per = {r.get("name"): r for r in metrics.get("per_image", [])}
    cols = ["status", "nme68", "identity_distance", "same_person", "face_found_dlib",
            "nme_mediapipe", "smooth_share"]
    parts.append("<h2>Per pair</h2>")
    body = []
    for r in rows:
        m = per.get(r["name"], {})
        cells = [r["name"]]
        for key in ("photo", "output"):
            p = r.get(key)
            cells.append(Raw(img(_link(p, out_dir), "thumb")) if p else None)
        cells += [m.get(c) for c in cols]
        cells.append(m.get("error") or Raw(""))
        body.append(cells)
    parts.append(table(["pair", "photo", "output", *cols, "error"], body))
    path = out_dir / "index.html"
    title = (metrics.get("outputs_dir") if metrics.get("mode") == "outputs"
             else metrics.get("run") or metrics.get("checkpoint"))
    atomic_write_text(path, page(f"ToonFace test: {title}", "\n".join(parts)))
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
