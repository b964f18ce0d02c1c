"""A run's last saved generators beside a folder of reference outputs (the white-box authors'
cartoons), on every photo of a folder: the landmark study's reference face model against the
authors' cartoons on all 49 fixture pairs (issue 23: style within 10% of theirs, nme68 and
identity distance no worse).

    .venv/bin/python -m studies.all_pairs RUN --photo-dir ../shared/fixtures/ffhq-mini/photos \\
        --reference-dir ../shared/fixtures/ffhq-mini/cartoons --last-saves 4 \\
        --csv bench/results/landmark_reference_all49.csv

Unlike the study's own scoring (its held-out people only), every photo of ``--photo-dir`` is
scored, the run's training people included: this compares the model with the reference on the
pairs the reference is known by, it does not measure generalisation. Both sides are centre
crops at the run's training size (the reference: ``score_reference``, as the sweep crops it),
scored by test.py's evaluation (the dlib judge, evaluation/style.py's statistics).

Writes ``RUN/test_all_pairs/step_XXXXXX/`` per generator (reused when its metrics.json covers
the same photos and step) and ``RUN/test_all_pairs/reference/``; the scored generator files
are left as they are (no metrics recorded in them: those stay the held-out ones).

CSV rows: one per saved generator (oldest first); ``mean of last N`` (each number the mean
over those saves, as the study's ``last_saves`` means are: ``window_metrics``); the reference.
Columns: ``row``, ``steps``, CSV_KEYS, and for every row ``<key>_vs_reference``: value /
reference value - 1 (e.g. 0.21 = 21% above the reference) for RELATIVE_KEYS.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import click

CSV_KEYS = ("pairs", "pairs_scored", "nme68_mean", "identity_distance_mean", "identity_same_rate",
            "face_found_rate_dlib", "distinct_colours", "edge_density", "flatness",
            "smooth_share")
RELATIVE_KEYS = ("nme68_mean", "identity_distance_mean", "distinct_colours", "edge_density",
                 "flatness", "smooth_share")
OUT_DIR = "test_all_pairs"


def relative(value, reference) -> float | None:
    """value / reference - 1, None when either is missing or the reference is 0."""
    if value is None or reference in (None, 0):
        return None
    return float(value) / float(reference) - 1.0


def table_rows(saves: list[tuple[int, dict]], reference: dict, label: str) -> list[dict]:
    """CSV rows from ``saves`` [(step, metrics summary)], oldest first, and the reference's
    summary (see the module docstring). Raises ValueError for no saves."""
    # lazy: the sweep package imports torch
    from evaluation.sweep.evaluate_runs import window_metrics

    if not saves:
        raise ValueError("table_rows needs at least one saved generator")
    mean = window_metrics([{"metrics": {"summary": s, "step": step}} for step, s in saves])
    rows = [(f"step {step}", str(step), s) for step, s in saves]
    rows.append((f"mean of last {len(saves)}", " ".join(str(st) for st, _ in saves), mean["summary"]))
    rows.append((label, "", reference))
    out = []
    for name, steps, s in rows:
        row = {"row": name, "steps": steps, **{k: s.get(k) for k in CSV_KEYS}}
        row.update({f"{k}_vs_reference": relative(s.get(k), reference.get(k)) for k in RELATIVE_KEYS})
        out.append(row)
    return out


def check_writable(path: Path) -> None:
    """Raises ToonFaceError (one line) when ``path`` is a folder or its folder's nearest
    existing ancestor cannot be written: checked before any scoring."""
    from utils.errors import ToonFaceError

    if path.is_dir():
        raise ToonFaceError(f"--csv {path}: is a folder")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
        raise ToonFaceError(f"--csv {path}: {parent} cannot be written")


def write_csv(rows: list[dict], path: Path) -> None:
    """``rows`` (:func:`table_rows`) as CSV, floats to 6 significant digits, None as empty.
    Raises ToonFaceError (one line) when the file cannot be written."""
    from utils.errors import ToonFaceError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v)
                            for k, v in r.items()})
    except OSError as exc:
        raise ToonFaceError(f"--csv {path}: {exc.strerror or exc}") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--photo-dir", "--photo_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="photos to score (all of them, the run's training people included)")
@click.option("--reference-dir", "--reference_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="reference outputs, paired with the photos by file stem")
@click.option("--label", default="authors' cartoons", show_default=True, help="the reference's row name")
@click.option("--last-saves", "--last_saves", type=click.IntRange(min=1), default=4, show_default=True,
              help="score the run's last N saved generators (generator/step_XXXXXX.pt)")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="write the table here (default: RUN/test_all_pairs/all_pairs.csv)")
@click.option("--device", default="cpu", show_default=True)
def main(run: Path, photo_dir: Path, reference_dir: Path, label: str, last_saves: int,
         csv_path: Path | None, device: str) -> None:
    """Score a run's last saved generators and a reference folder on every photo of a folder."""
    from utils.errors import call_or_exit

    csv_path = csv_path or run / OUT_DIR / "all_pairs.csv"
    call_or_exit(check_writable, csv_path)  # before a minute of scoring, not after
    rows = call_or_exit(score, run, photo_dir, reference_dir, label, last_saves, device)
    call_or_exit(write_csv, rows, csv_path)
    for r in rows:
        click.echo(f"{r['row']}: " + "  ".join(f"{k} {_fmt(r[k])}" for k in CSV_KEYS[1:]))
    click.echo(f"table: {csv_path}")


def score(run: Path, photo_dir: Path, reference_dir: Path, label: str, last_saves: int,
          device: str) -> list[dict]:
    """The CSV rows (:func:`table_rows`); raises ToonFaceError (one line) for a folder that is
    not a run with saved generators, a photo folder without images, or a reference folder
    matching none of them."""
    # lazy: torch, dlib only when this runs
    from evaluation.evaluate import dlib_analyser
    from evaluation.sweep.evaluate_runs import evaluate_step, score_reference
    from media.folders import list_images
    from utils.errors import ToonFaceError
    from utils.run_dir import RunDir

    rd = RunDir(run)
    cfg = rd.read_config()
    saves = rd.steps("generator")[-last_saves:]
    if not cfg or not saves:
        raise ToonFaceError(f"{run}: not a run folder with saved generators (config.json, "
                            "generator/step_XXXXXX.pt)")
    photos = list_images(photo_dir)
    if not photos:
        raise ToonFaceError(f"--photo-dir {photo_dir}: no images")
    size = int(cfg.get("image_size") or 128)
    analyser = dlib_analyser()
    scored = []
    for step, gen in saves:
        res = evaluate_step(gen, step, photos, run / OUT_DIR / f"step_{step:06d}", device, _echo,
                            analyser, record=False)
        scored.append((step, res["metrics"]["summary"]))
    ref = score_reference(reference_dir, photos, size, run / OUT_DIR / "reference", device, _echo,
                          analyser, name=label)
    return table_rows(scored, ref["metrics"]["summary"], label)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


if __name__ == "__main__":
    sys.exit(main())
