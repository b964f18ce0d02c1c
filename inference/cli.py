"""What the commands that take a generator share (cartoonize.py, export.py, test.py, serve.py):
the ``--checkpoint PATH`` / ``--style NAME`` / ``--styles-dir`` options and turning them into
a generator."""
from __future__ import annotations

import os
from typing import Any, Callable

import click
import torch

from inference.styles import DEFAULT_STYLES_DIR, load_style
from models.checkpoint import load_generator
from models.generator import Generator
from utils.errors import ToonFaceError
from utils.run_dir import resolve_generator

CHECKPOINT_HELP = "Generator file, full training checkpoint, or run folder (checkpoints/<name>/)."
STYLE_HELP = ("A style by name (see --list-styles), or a blend of styles fine-tuned from one "
              "pretrained generator: hayao=0.7,shinkai=0.3.")


def generator_options(fn: Callable) -> Callable:
    """Adds --checkpoint, --style and --styles-dir to a click command."""
    fn = click.option("--styles-dir", "--styles_dir", "styles_dir", default=DEFAULT_STYLES_DIR,
                      show_default=True, type=click.Path(path_type=str),
                      help="Where --style looks: run folders and generator .pt files.")(fn)
    fn = click.option("--style", default=None, help=STYLE_HELP)(fn)
    fn = click.option("--checkpoint", default=None, type=click.Path(path_type=str),
                      help=CHECKPOINT_HELP + " Or use --style.")(fn)
    return fn


def choose_generator(checkpoint: str | os.PathLike | None, style: str | None,
                     styles_dir: str | os.PathLike = DEFAULT_STYLES_DIR,
                     device: str | torch.device = "cpu", warn: Callable[[str], Any] | None = None
                     ) -> tuple[Generator, dict[str, Any]]:
    """(generator, metadata) of ``--checkpoint`` or ``--style`` (exactly one of them)."""
    if checkpoint and style:
        raise ToonFaceError("give --checkpoint PATH or --style NAME, not both")
    if style:
        return load_style(style, styles_dir, device, warn)
    if not checkpoint:
        raise ToonFaceError("which generator? give --checkpoint PATH or --style NAME "
                            "(--list-styles shows the styles)")
    return load_generator(resolve_generator(checkpoint), device)
