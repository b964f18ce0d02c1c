"""Keep the README's CLI help blocks equal to the real ``--help`` output.

    python -m utils.readme_help          # rewrite the blocks in README.md
    python -m utils.readme_help --check  # exit 1 if any block is stale (tests/test_readme.py)

A block is the fenced text between ``<!-- help:SCRIPT -->`` and ``<!-- /help -->``.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import click
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["demo.py", "prepare.py", "pretrain.py", "train.py", "test.py", "sweep.py",
           "plot_curves.py", "cartoonize.py", "export.py", "serve.py"]
WIDTH = 100
BLOCK = re.compile(r"(<!-- help:(?P<name>[\w.]+) -->\n)(.*?)(<!-- /help -->)", re.S)


def help_text(script: str) -> str:
    sys.path.insert(0, str(ROOT))
    module = importlib.import_module(script[:-3])
    cmd: click.Command = module.main
    result = CliRunner().invoke(cmd, ["--help"], prog_name=f"python {script}",
                                terminal_width=WIDTH, max_content_width=WIDTH)
    if result.exit_code != 0:
        raise RuntimeError(f"{script} --help failed: {result.output}")
    return result.output.rstrip() + "\n"


def render(readme: str) -> str:
    def block(m: re.Match) -> str:
        return f"{m.group(1)}```text\n{help_text(m.group('name'))}```\n{m.group(4)}"
    return BLOCK.sub(block, readme)


def main() -> int:
    path = ROOT / "README.md"
    old = path.read_text()
    new = render(old)
    if "--check" in sys.argv[1:]:
        if new != old:
            print("README.md help blocks are stale: run python -m utils.readme_help")
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
