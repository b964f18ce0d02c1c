"""The README's study tables, rendered from a sweep's study.csv and paired.csv (sweep.py writes
both into ``<checkpoints_dir>/<name>/``; the committed copies are in bench/results/).

    .venv/bin/python tools/study_table.py --study S.csv --paired P.csv --baseline CONFIG \\
        --arm 'CONFIG[:LABEL]' ...                  # print one table
    .venv/bin/python tools/study_table.py           # rewrite every marked table of the pages
    .venv/bin/python tools/study_table.py --check   # exit 1 if a marked table is stale

A marked table is the text between ``<!-- study-table: OPTIONS -->`` and ``<!-- /study-table -->``
in README.md or a docs page, OPTIONS being this script's options for that table; so a table in a
page is what its CSVs say (tests/test_readme.py runs ``--check``).

Columns: the mean ± standard deviation over a configuration's runs (seeds) of nme68 (dlib, per
inter-ocular distance) and identity distance on the held-out faces, then, per seed, how many
held-out faces the configuration keeps better than ``--baseline`` (the paired counts:
nme68 / identity, of the faces compared), then the style statistics (distinct colours, edge
density, flatness, smooth share; evaluation/style.py) and portrait mode's nme68 / identity.
A row of one run, or a std the CSV leaves empty, shows no ±.
"""
from __future__ import annotations

import csv
import re
import shlex
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- study-table: (?P<args>.*?) -->\n)(.*?)(<!-- /study-table -->)", re.S)
# (column title, study.csv column stem, decimals)
NUMBERS = [("nme68", "nme68_mean", 4), ("identity", "identity_distance_mean", 3)]
STYLE = [("colours", "distinct_colours", 0), ("edge density", "edge_density", 3),
         ("flatness", "flatness", 3), ("smooth share", "smooth_share", 3)]
PORTRAIT = [("portrait_nme68_mean", 4), ("portrait_identity_distance_mean", 3)]


class TableError(click.ClickException):
    pass


def _read(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError as exc:
        raise TableError(f"{path}: {exc.strerror or exc}") from exc


def _cell(row: dict[str, str], stem: str, decimals: int) -> str:
    """'mean ± std' of a study.csv pair of columns ``{stem}_mean``/``{stem}_std``; '' if absent."""
    mean = row.get(f"{stem}_mean", "")
    if mean == "":
        return ""
    text = f"{float(mean):.{decimals}f}"
    std = row.get(f"{stem}_std", "")
    if std != "" and row.get("runs", "1") not in ("", "1"):
        text += f" ± {float(std):.{decimals}f}"
    return text


def render_table(study: Path, paired: Path | None, arms: list[tuple[str, str]],
                 baseline: str | None) -> str:
    """The markdown table (header, rule, one row per ``arms`` entry, in that order).

    ``arms``: (configuration as study.csv names it, label). Raises TableError when a
    configuration is not in the CSV."""
    rows = {r["configuration"]: r for r in _read(study)}
    pairs = _read(paired) if paired else []
    compared = {p["compared"] for p in pairs if p["baseline"] == baseline}
    of = f", of {compared.pop()}" if len(compared) == 1 else ""
    titles = ["arm", "runs", *[t for t, _, _ in NUMBERS]]
    if baseline:
        titles.append(f"better than {_label(arms, baseline)}, per seed (nme68 / identity{of})")
    titles += [t for t, _, _ in STYLE] + ["portrait nme68 / identity"]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for config, label in arms:
        if config not in rows:
            raise TableError(f"{study}: no configuration {config!r} (it has: "
                             + ", ".join(repr(c) for c in rows) + ")")
        row = rows[config]
        cells = [label, row["runs"], *[_cell(row, stem, d) for _, stem, d in NUMBERS]]
        if baseline:
            cells.append(_paired_cell(pairs, config, baseline))
        cells += [_cell(row, stem, d) for _, stem, d in STYLE]
        portrait = [_cell(row, stem, d) for stem, d in PORTRAIT]
        cells.append(" / ".join(portrait) if all(portrait) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _label(arms: list[tuple[str, str]], config: str) -> str:
    return next((label for c, label in arms if c == config), config)


def _paired_cell(pairs: list[dict[str, str]], config: str, baseline: str) -> str:
    """'a, b, c / d, e, f': faces improved per seed (seed order), nme68 then identity."""
    mine = [p for p in pairs if p["configuration"] == config and p["baseline"] == baseline]
    if not mine:
        return ""
    parts = []
    for metric in ("nme68", "identity_distance"):
        by_seed = sorted((int(p["seed"]), p["improved"]) for p in mine if p["metric"] == metric)
        parts.append(", ".join(n for _, n in by_seed))
    return " / ".join(parts)


def parse_block_args(args: str) -> tuple[Path, Path | None, list[tuple[str, str]], str | None]:
    """A marker's OPTIONS, parsed by this script's own command (paths relative to the root)."""
    ctx = main.make_context("study_table.py", shlex.split(args))
    p = ctx.params
    if not p["study"]:
        raise TableError(f"study-table marker without --study: {args}")
    paired = ROOT / p["paired"] if p["paired"] else None
    return ROOT / p["study"], paired, list(p["arms"]), p["baseline"]


def render_page(text: str) -> str:
    """The page with every marked table re-rendered from its CSVs."""
    def block(m: re.Match) -> str:
        study, paired, arms, baseline = parse_block_args(m.group("args"))
        return f"{m.group(1)}{render_table(study, paired, arms, baseline)}{m.group(4)}"
    return BLOCK.sub(block, text)


def _arm(ctx, param, values):
    out = []
    for v in values:
        config, sep, label = v.partition(":")
        if not config or (sep and not label):
            raise click.BadParameter(f"{v!r}: expected CONFIGURATION[:LABEL]", ctx, param)
        out.append((config, label or config))
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--study", type=click.Path(dir_okay=False), help="a sweep's study.csv")
@click.option("--paired", type=click.Path(dir_okay=False), help="its paired.csv")
@click.option("--arm", "arms", multiple=True, callback=_arm,
              help="CONFIGURATION[:LABEL], one per row, in order (CONFIGURATION as study.csv names "
                   "it; the label defaults to it)")
@click.option("--baseline", help="the configuration the paired counts compare against")
@click.option("--check", is_flag=True, help="exit 1 if a marked table of the pages is stale")
def main(study, paired, arms, baseline, check) -> None:
    """Print one study table, or rewrite (or --check) the marked tables of the pages."""
    if study:
        click.echo(render_table(Path(study), Path(paired) if paired else None, arms, baseline),
                   nl=False)
        return
    stale = []
    for page in PAGES:
        text = page.read_text()
        new = render_page(text)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not check:
                page.write_text(new)
    if check and stale:
        click.echo(f"stale study tables in {', '.join(map(str, stale))}: run "
                   f".venv/bin/python tools/study_table.py", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
