"""When have a run's style statistics settled? The pilot behind a study's step count.

For each run folder, every saved generator (``generator/step_XXXXXX.pt``) is scored by test.py
on the run's held-out photos (its ``heldout.txt``), and the style statistics of its outputs
(evaluation/style.py: distinct colours, edge density, flatness, smooth share) are printed step
by step beside the relative change from the previous saved step, and the trend of the trailing
``--window`` saved generators (default 4): its *drift* (the least-squares slope times the
window's span, relative to the window's mean: how far the level moved) and its *swing* (the
residuals' standard deviation relative to the mean: how far single generators scatter around
it). A GAN's generators oscillate, so a statistic can swing by 20% from one saved generator to
the next while its level has stopped moving: it has settled at the first step from which the
drift of every trailing window stays under ``--tolerance`` (default 5%). The step-to-step
changes alone would call such a run unsettled forever.

    .venv/bin/python -m studies.style_settling RUN [RUN ...] [--csv out.csv]

Each test.py result lands in the run's own ``test/step_XXXXXX`` folder (test.py's default), so
a second call re-scores nothing it has scored (``--rescore`` forces it).
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import click

STYLE_KEYS = ("distinct_colours", "edge_density", "flatness", "smooth_share")
ROOT = Path(__file__).resolve().parents[1]


def saved_steps(run: Path) -> list[int]:
    """Steps of the run's saved generator files, ascending."""
    return sorted(int(p.stem.split("_")[1]) for p in (run / "generator").glob("step_*.pt"))


def scored(run: Path, step: int, rescore: bool) -> dict:
    """metrics.json of test.py for the run's generator at ``step`` (computed when absent)."""
    out = run / "test" / f"step_{step:06d}"
    metrics = out / "metrics.json"
    if rescore or not metrics.is_file():
        cmd = [sys.executable, str(ROOT / "test.py"), "--checkpoint", str(run), "--step", str(step),
               "--out", str(out)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise click.ClickException(f"test.py failed for {run} step {step}: {last}")
    return json.loads(metrics.read_text())


def style_of(metrics: dict) -> dict[str, float]:
    """The style statistics of a metrics.json (outputs' means), wherever test.py keeps them."""
    for where in (metrics, metrics.get("outputs", {}), metrics.get("style", {})):
        if all(k in where for k in STYLE_KEYS):
            return {k: float(where[k]) for k in STYLE_KEYS}
    raise click.ClickException(f"no style statistics in metrics.json (keys: {sorted(metrics)})")


def drift_and_swing(steps: list[int], values: list[float]) -> tuple[float, float]:
    """Least-squares line through (step, value): (slope * (last step - first step) / mean,
    residual standard deviation / mean). Needs two or more points and a nonzero mean."""
    n = len(steps)
    if n < 2 or len(values) != n:
        raise ValueError(f"drift needs two or more (step, value) points, got {n}")
    mean_x, mean_y = sum(steps) / n, sum(values) / n
    if mean_y == 0:
        raise ValueError("drift is relative to the mean, which is 0")
    sxx = sum((x - mean_x) ** 2 for x in steps)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(steps, values)) / sxx
    residuals = [y - (mean_y + slope * (x - mean_x)) for x, y in zip(steps, values)]
    swing = (sum(r * r for r in residuals) / n) ** 0.5
    return slope * (steps[-1] - steps[0]) / abs(mean_y), swing / abs(mean_y)


def level_settled_at(rows: list[dict], key: str, tolerance: float, window: int) -> int | None:
    """First step whose trailing ``window`` rows, and every later trailing window, drift by
    less than ``tolerance`` (``drift_and_swing``), or None."""
    ends = range(window - 1, len(rows))
    drifts = [(rows[i]["step"], drift_and_swing([r["step"] for r in rows[i - window + 1:i + 1]],
                                                [r[key] for r in rows[i - window + 1:i + 1]])[0])
              for i in ends]
    for i in range(len(drifts)):
        if all(abs(d) < tolerance for _, d in drifts[i:]):
            return drifts[i][0]
    return None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=0.05,
              show_default=True, help="relative drift of a window's level counted as settled")
@click.option("--window", type=click.IntRange(min=2), default=4, show_default=True,
              help="saved generators per trailing window of the drift")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="write every run's rows here")
@click.option("--rescore", is_flag=True, help="score steps already scored again")
def main(runs: tuple[str, ...], tolerance: float, window: int, csv_path: str | None,
         rescore: bool) -> None:
    """Style statistics of every saved generator of each RUN, and where they settle."""
    table = []
    for run in map(Path, runs):
        steps = saved_steps(run)
        if not steps:
            raise click.ClickException(f"{run}: no generator/step_*.pt")
        rows, prev = [], None
        for step in steps:
            row = {"run": run.name, "step": step, **style_of(scored(run, step, rescore))}
            for k in STYLE_KEYS:
                row[f"{k}_change"] = (None if prev is None or prev[k] == 0
                                      else (row[k] - prev[k]) / abs(prev[k]))
            rows.append(row)
            prev = row
        click.echo(f"{run.name}")
        click.echo(f"  {'step':>6} " + " ".join(f"{k:>17}" for k in STYLE_KEYS))
        for r in rows:
            cells = []
            for k in STYLE_KEYS:
                c = r[f"{k}_change"]
                cells.append(f"{r[k]:>9.4g} ({'' if c is None else f'{100 * c:+.0f}%':>5})")
            click.echo(f"  {r['step']:>6} " + " ".join(f"{c:>17}" for c in cells))
        if len(rows) >= window:
            last = rows[-window:]
            trend = {k: drift_and_swing([r["step"] for r in last], [r[k] for r in last])
                     for k in STYLE_KEYS}
            click.echo(f"  last {window} saved ({last[0]['step']}-{last[-1]['step']}): " + ", ".join(
                f"{k} drift {100 * d:+.0f}% swing {100 * w:.0f}%" for k, (d, w) in trend.items()))
            where = {k: level_settled_at(rows, k, tolerance, window) for k in STYLE_KEYS}
            click.echo(f"  level settled (drift < {tolerance:.0%} over {window} saved, from then on):"
                       + "".join(f" {k} {'not yet' if s is None else s},"
                                 for k, s in where.items()).rstrip(","))
        else:
            click.echo(f"  fewer than --window {window} saved generators: no trend yet")
        table += rows
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
        click.echo(f"csv: {csv_path}")


if __name__ == "__main__":
    main()
