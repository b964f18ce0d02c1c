"""What pretrain.py and train.py share: turn click's parameters into a config, run it, and
turn user errors into one line and an exit code."""
from __future__ import annotations

from typing import Any, Callable

import click

from training.config import Config, describe, resolve
from utils.errors import ToonFaceError, call_or_exit
from models.content_network import resolve_content_network


def explicit_params(ctx: click.Context) -> set[str]:
    """Names of the options the user typed (presets never override those)."""
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)}


def run_command(kind: str, ctx: click.Context, params: dict[str, Any],
                fn: Callable[[Config], dict[str, Any]]) -> None:
    dry_run = params.pop("dry_run", False)
    try:
        cfg = resolve(kind, params, explicit_params(ctx))
    except ToonFaceError as exc:
        raise click.UsageError(str(exc)) from None
    if dry_run:
        click.echo(describe(cfg))
        for note in (content_network_note(cfg), *missing_paths_notes(cfg)):
            if note:
                click.echo(note)
        return
    result = call_or_exit(fn, cfg, interrupted="interrupted before training started; nothing was saved")
    for key in ("run_dir", "generator", "grid", "loss_curves"):
        if key in result:
            click.echo(f"{key}: {result[key]}")


def content_network_note(cfg: Config) -> str | None:
    """For --dry-run: the network ``--content-network auto`` picks on this machine (found
    without a download, so a dry run never fetches anything), one line; None when not auto or
    no term uses it."""
    active = cfg.loss.active() if cfg.kind == "train" else {}
    if cfg.loss.content_network != "auto" or not {"content", "structure"} & set(active):
        return None

    try:
        network, path = resolve_content_network("auto", cfg.loss.vgg_weights, cfg.run.checkpoints_dir,
                                                allow_download=False, quiet=True)
    except ToonFaceError as exc:
        return f"# content_network auto: nothing usable here ({exc})"
    where = f" ({path})" if path else " (no VGG19 weights found)"
    return f"# content_network auto: {network} here{where}"


def missing_paths_notes(cfg: Config) -> list[str]:
    """For --dry-run: one ``#`` line per folder or file the run would read that is not there
    (the run itself refuses them in one line; a dry run only says so)."""
    from pathlib import Path

    wanted = [("photo_dir", cfg.data.photo_dir)]
    if cfg.kind == "train":
        wanted.append(("cartoon_dir", cfg.data.cartoon_dir))
        if cfg.model.init not in (None, "none", "auto"):
            wanted.append(("init", cfg.model.init))
    return [f"# {name}: {value} does not exist here (the run would stop there)"
            for name, value in wanted if value and not Path(value).expanduser().exists()]

