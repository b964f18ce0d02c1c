"""What pretrain.py and train.py share: turn click's parameters into a config, run it, and
turn user errors into one line and an exit code."""
from __future__ import annotations

from typing import Any, Callable

import click

from training.config import Config, describe, resolve
from utils.errors import ToonFaceError, call_or_exit


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
        return
    result = call_or_exit(fn, cfg, interrupted="interrupted before training started; nothing was saved")
    for key in ("run_dir", "generator", "grid", "loss_curves"):
        if key in result:
            click.echo(f"{key}: {result[key]}")
