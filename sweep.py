"""Ablation sweeps: train variants one after another, evaluate each on the same held-out
faces, and compare them (summary.csv, comparison.png, metrics.png, index.html).

Base train.py options go after ``--``; every configuration adds its own:

    .venv/bin/python sweep.py --name abl --grid w5=0,1,10 --grid w4=0,200 -- \\
        --photo_dir data/ffhq --cartoon_dir data/Hayao --total_iter 20000
    .venv/bin/python sweep.py --name abl2 --configs ablation.yaml --dry-run -- --total_iter 20000

Options after ``--`` override the sweep file's ``base`` (a configuration's own options override
both). Rerunning the same command resumes: finished runs are skipped, interrupted ones
continue; ``--no-train`` re-scores the runs that exist without training.
"""
import sys
from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--name", required=True, help="sweep name: runs go to <checkpoints_dir>/NAME/<run id>")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="a train option and its values; several --grid give their product")
@click.option("--configs", type=click.Path(), default=None,
              help="JSON/YAML list of option sets, or {base: {...}, runs: [...]} (times the grid)")
@click.option("--dry-run", "--dry_run", "dry_run", is_flag=True,
              help="print the train.py commands (and whether each is new/resume/done) and exit")
@click.option("--train/--no-train", "train_runs", default=True, show_default=True,
              help="start pretrain.py / train.py for unfinished runs (--no-train: re-score what exists)")
@click.option("--only", "only", multiple=True, metavar="GLOB",
              help="train only the runs whose id matches (e.g. '*seed=2'), with their pretraining; "
                   "several --only add up")
@click.option("--eval/--no-eval", "evaluate_runs", default=True, show_default=True,
              help="evaluate every run on the same held-out faces")
@click.option("--eval-photo-dir", "--eval_photo_dir", "eval_photo_dir", type=click.Path(), default=None,
              help="evaluation photos  [default: the held-out photos the runs share]")
@click.option("--num", type=click.IntRange(min=1), default=None, help="evaluate the first N faces")
@click.option("--inception", type=click.Path(), default=None,
              help="Inception TorchScript file for FID/KID (see test.py --help)")
@click.option("--device", default="auto", show_default=True, help="evaluation device")
@click.argument("base_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- TRAIN OPTIONS...]")
def main(**opts):
    """Run an ablation sweep of train.py configurations."""
    from evaluation.sweep import sweep
    from utils.errors import call_or_exit

    res = call_or_exit(sweep, **opts, echo=lambda m: click.echo(m, err=True),
                       interrupted="interrupted: rerun the same command to resume the sweep")
    if res.get("dry_run"):
        return
    for key in ("summary", "study", "paired", "comparison", "metrics", "index"):
        if res.get(key):
            click.echo(f"{key}: {res[key]}")
    for key, path in (res.get("window") or {}).items():  # evaluate.last_saves's tables
        if key in ("summary", "study", "paired"):
            click.echo(f"{Path(path).stem}: {path}")
    if res.get("failed"):
        click.echo(f"error: {len(res['failed'])} run(s) failed: {', '.join(res['failed'])}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
