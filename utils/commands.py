"""Commands the tools print for the user to run next, spelled so they run as printed.

A printed ``python cartoonize.py ...`` only works where ``python`` is the project's environment,
and ``make`` installs into ``.venv/`` without activating it (a Makefile cannot activate anything
in the user's shell). So a printed command names the interpreter that is running the tool now,
which has everything installed: ``.venv/bin/python`` after ``make demo`` (relative to the current
folder when it lies inside it, as the README's commands are), else its absolute path.

    >>> command("cartoonize.py", "--list-styles")   # run by .venv/bin/python from the root
    '.venv/bin/python cartoonize.py --list-styles'
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shown_path(path: str | os.PathLike) -> str:
    """``path`` relative to the current folder when it lies inside it, else absolute.

    Not resolved: a venv's ``bin/python`` is a link to the base interpreter, and only the link
    knows the venv."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, os.getcwd())
    return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def python() -> str:
    """The interpreter running this process, as a command should name it."""
    return shown_path(sys.executable) if sys.executable else "python"


def command(script: str, *args: object) -> str:
    """A shell command line that runs the project's ``script`` with ``args`` by this process's
    interpreter, each word quoted where the shell needs it."""
    return shlex.join([python(), shown_path(ROOT / script), *(str(a) for a in args)])
