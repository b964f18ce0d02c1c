"""What the commands that take a generator share (cartoonize.py, export.py, test.py, serve.py):
the ``--checkpoint PATH`` / ``--style NAME`` / ``--styles-dir`` options (turned into a generator by
:func:`inference.styles.choose_generator`)."""
from __future__ import annotations

from typing import Callable

import click

from inference.styles import DEFAULT_STYLES_DIR

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
