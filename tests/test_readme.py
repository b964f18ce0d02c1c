"""The README's promises: the help blocks equal the real --help output, and .ci/run runs the
README's test commands (both environments)."""
from pathlib import Path

from tests.conftest import ROOT
from tools.readme_help import CLI_DOC, SCRIPTS, cli_doc, help_text, render


def test_help_blocks_are_current():
    readme = (ROOT / "README.md").read_text()
    for script in SCRIPTS:
        assert f"<!-- help:{script} -->" in readme
        assert help_text(script) in readme, f"{script} --help drifted: run .venv/bin/python tools/readme_help.py"
    assert render(readme) == readme


def test_docs_cli_is_current():
    """docs/cli.md holds every script's --help, as generated; its usage lines name the
    project's interpreter, as the commands the tools print do."""
    assert CLI_DOC.read_text() == cli_doc(), "docs/cli.md drifted: run .venv/bin/python tools/readme_help.py"
    for script in SCRIPTS:
        assert f"Usage: .venv/bin/python {script} [OPTIONS]" in CLI_DOC.read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test-numpy2" in readme
    ci = [line for line in Path(ROOT / ".ci" / "run").read_text().strip().splitlines()
          if line and not line.startswith("#")]
    assert ci[-2:] == ["make test", "make test-numpy2"]
