"""Loss curves of any run as a PNG (the same figure training writes at each snapshot).

    .venv/bin/python plot_curves.py v49                       # checkpoints/v49/stats.jsonl -> loss_curves.png
    .venv/bin/python plot_curves.py checkpoints/abl/w5=0 --out w5_0.png
"""
import sys
from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("runs", nargs=-1, required=True)
@click.option("--checkpoints_dir", "--checkpoints-dir", default="checkpoints", show_default=True,
              help="folder holding run folders (for RUN given as a name)")
@click.option("--out", type=click.Path(), default=None,
              help="PNG to write (one RUN only)  [default: <run>/loss_curves.png]")
def main(runs, checkpoints_dir, out):
    """Plot RUNS' stats.jsonl. RUN: a run name, a run folder or a stats.jsonl file."""
    from training.curves import plot_loss_curves
    from utils.errors import ToonFaceError
    from utils.run_dir import RunDir

    if out and len(runs) > 1:
        raise click.UsageError("--out takes one RUN")
    try:
        for run in runs:
            p = Path(run)
            if p.suffix == ".jsonl":
                stats, target, title = p, out or p.with_name("loss_curves.png"), None
                if not p.is_file():
                    raise ToonFaceError(f"no such stats file: {p}")
            else:
                folders = [RunDir(p), RunDir.of(checkpoints_dir, run)]
                found = next((r for r in folders if r.stats_file.is_file()), None)
                if found is None:
                    raise ToonFaceError(f"no stats.jsonl for '{run}': looked for "
                                        + ", ".join(str(r.stats_file) for r in folders))
                stats, target, title = found.stats_file, out or found.loss_curves, found.name
            click.echo(plot_loss_curves(stats, target, title=title))
    except ToonFaceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
