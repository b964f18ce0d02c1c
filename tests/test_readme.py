"""The README's and the docs pages' promises: the help blocks equal the real --help output,
every command they show runs as written (the project's interpreter, scripts and options that
exist, values of the right kind), their links lead somewhere, and .ci/run runs the README's
test commands (both environments).

"Runs as written" is checked without running the commands (most of them train for hours or
need data a test does not have): a command's words are parsed by the script's own click
command (``make_context``, which checks names, counts and values but runs nothing) or, for the
argparse benchmarks, every option must be one the script defines. tests/test_demo.py runs the
commands the demo prints, the README's first path, for real."""
import importlib
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import click
import pytest

from tests.conftest import ROOT
from tools.readme_help import CLI_DOC, SCRIPTS, cli_doc, render

PYTHON = ".venv/bin/python"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)
# Programs a page may show besides the project's Python and make: ordinary tools whose own
# options are not ours to check.
OTHER_PROGRAMS = {"curl", "jq", "base64", "apt-get", "mkdir", "unzip", "ln", "ls", "ffmpeg", "git"}
OPERATORS = {"&&", "||", ";", "|", "&"}
REDIRECTS = {">", ">>", "<", "2>", "2>>"}


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def shell_commands(text: str) -> list[str]:
    """The command lines of a page's ```bash blocks: continuation lines joined, comments and
    blank lines dropped, ``$NAME`` replaced by the block's own ``NAME=value`` lines."""
    commands = []
    for block in SHELL_BLOCK.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        names: dict[str, str] = {}
        for line in joined.splitlines():
            line = re.sub(r"\$\{?(\w+)\}?", lambda m: names.get(m.group(1), m.group(0)), line)
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if len(words) == 1 and re.fullmatch(r"\w+=.*", words[0]):  # a variable for later lines
                name, value = words[0].split("=", 1)
                names[name] = value
                continue
            commands.append(line)
    return commands


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at &&, |, ;), redirections, leading
    ``NAME=value`` words and a ``nice -n N`` prefix removed."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    out, words, skip = [], [], False
    for word in lexer:
        if word in OPERATORS:
            out.append(words)
            words = []
        elif word in REDIRECTS:
            skip = True
        elif skip:
            skip = False
        else:
            words.append(word)
    out.append(words)
    cleaned = []
    for words in out:
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            words = words[1:]
        if words[:1] == ["nice"]:
            words = words[3:] if words[1:2] == ["-n"] else words[1:]
        if words:
            cleaned.append(words)
    return cleaned


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", text, re.M))


def check_python(words: list[str]) -> str | None:
    """Why ``.venv/bin/python ARGS`` would not run as written, or None."""
    args = words[1:]
    if args[:1] == ["-m"]:
        module = args[1]
        return None if importlib.util.find_spec(module) else f"no module {module}"
    script = args[0]
    path = ROOT / script
    if not path.is_file():
        return f"no script {script}"
    if script in SCRIPTS:
        sys.path.insert(0, str(ROOT))
        command: click.Command = importlib.import_module(script[:-3]).main
        try:
            command.make_context(f"{PYTHON} {script}", list(args[1:]))
        except click.BadParameter as exc:
            # a path the reader has (photo.jpg, their data set) and this checkout has not
            if not (exc.param is not None and isinstance(exc.param.type, click.Path)):
                return exc.format_message()
        except click.ClickException as exc:
            return exc.format_message()
        return None
    source = path.read_text()
    for word in args[1:]:
        option = word.split("=", 1)[0]
        if option.startswith("--") and f'"{option}"' not in source and f"'{option}'" not in source:
            return f"{script} has no option {option}"
    return None


def check_command(words: list[str]) -> str | None:
    program = words[0]
    if program == PYTHON:
        return check_python(words)
    if program in ("python", "python3") or program.endswith("/python") or program == "pytest":
        return f"{program}: the pages run the project's Python as {PYTHON}"
    if program == "make":
        targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
        missing = [t for t in targets if t not in _make_targets()]
        return f"no make target {missing}" if missing else None
    if program in OTHER_PROGRAMS:
        return None
    return f"unknown program {program!r}: check it here or add it to OTHER_PROGRAMS"


def test_the_pages_show_commands():
    readme = shell_commands((ROOT / "README.md").read_text())
    assert any(line.startswith("make demo") for line in readme)
    assert sum(line.startswith(PYTHON) for line in readme) >= 5, readme


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_command_runs_as_written(page):
    problems = []
    for line in shell_commands(page.read_text()):
        for words in simple_commands(line):
            why = check_command(words)
            if why:
                problems.append(f"{line}\n    -> {why}")
    assert not problems, f"{_page_id(page)}:\n" + "\n".join(problems)


def test_the_command_check_catches_what_would_fail():
    """The checker itself: a bare python, an unknown option, a bad value, a missing script."""
    assert check_command(["python", "train.py"])
    assert check_command([PYTHON, "cartoonize.py", "photo.jpg", "--bogus"])
    assert check_command([PYTHON, "train.py", "--w5", "ten"])
    assert check_command([PYTHON, "train.py", "stray"])
    assert check_command([PYTHON, "bench/no_such_bench.py"])
    assert check_command([PYTHON, "bench/bench_step.py", "--no-such-option"])
    assert check_command(["make", "no-such-target"])
    assert check_command([PYTHON, "cartoonize.py", "my photo.jpg", "--style", "pastel", "--out", "toon/"]) is None
    assert simple_commands("OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv/bin/python a.py --x 1 > /tmp/o | jq .") == [
        [PYTHON, "a.py", "--x", "1"], ["jq", "."]]


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_links_lead_somewhere(page):
    """Every relative link of a page names a file of the checkout, and every #anchor a heading
    of the page it names."""
    text = page.read_text()
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md":
            slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                     for h in re.findall(r"^#+ (.*)$", dest.read_text(), re.M)}
            if anchor not in slugs:
                bad.append(f"{target}: no heading #{anchor}")
    assert not bad, f"{_page_id(page)}: " + "; ".join(bad)


def test_the_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"]({page.relative_to(ROOT)}" in readme, f"README.md does not link {page.name}"


def test_help_blocks_are_current():
    """A help block (``<!-- help:SCRIPT -->``) on any page equals the script's --help."""
    for page in PAGES:
        text = page.read_text()
        assert render(text) == text, f"{_page_id(page)}: help blocks drifted: run {PYTHON} tools/readme_help.py"


def test_study_tables_are_current():
    """A study table (``<!-- study-table: OPTIONS -->``) on any page is what its CSVs say."""
    from tools.study_table import render_page

    marked = 0
    for page in PAGES:
        text = page.read_text()
        marked += text.count("<!-- study-table:")
        assert render_page(text) == text, f"{_page_id(page)}: a study table drifted from its CSVs: run {PYTHON} tools/study_table.py"
    assert marked >= 1      # the landmark study's table is marked


def test_docs_cli_is_current():
    """docs/cli.md holds every script's --help, as generated; its usage lines name the
    project's interpreter, as the commands the tools print do."""
    assert CLI_DOC.read_text() == cli_doc(), f"docs/cli.md drifted: run {PYTHON} tools/readme_help.py"
    for script in SCRIPTS:
        assert f"Usage: {PYTHON} {script} [OPTIONS]" in CLI_DOC.read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test-numpy2" in readme
    ci = [line for line in Path(ROOT / ".ci" / "run").read_text().strip().splitlines()
          if line and not line.startswith("#")]
    assert ci[-2:] == ["make test", "make test-numpy2"]


REFERENCE_COLUMNS = [("nme68_mean", 4), ("identity_distance_mean", 3), ("distinct_colours", 0),
                     ("edge_density", 3), ("flatness", 3), ("smooth_share", 3)]


def test_reference_model_table_is_its_csvs():
    """The landmark study's reference-model table in the README (the rows between
    ``<!-- reference-model-table -->`` and ``<!-- /reference-model-table -->``) is what
    bench/results/landmark_reference_last4_summary.csv and ..._all49.csv say, rounded as shown."""
    import csv

    def rows(name, key):
        with open(ROOT / "bench" / "results" / name, newline="") as f:
            return {r[key]: r for r in csv.DictReader(f)}

    held = rows("landmark_reference_last4_summary.csv", "run")
    all49 = rows("landmark_reference_all49.csv", "row")
    numbers = lambda r: [f"{float(r[k]):.{d}f}" for k, d in REFERENCE_COLUMNS]
    expected = {
        "reference model, held-out 9": numbers(held["w5=10_w_landmark_regressor=0_seed=1"]),
        "authors' cartoons, held-out 9": numbers(held["authors' cartoons"]),
        "reference model, all 49": numbers(all49["mean of last 4"]),
        "authors' cartoons, all 49": numbers(all49["authors' cartoons"]),
        "reference model against the authors', all 49": [
            f"{100 * float(all49['mean of last 4'][k + '_vs_reference']):+.0f}%"
            for k, _ in REFERENCE_COLUMNS],
    }
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- reference-model-table -->\n(.*?)<!-- /reference-model-table -->", text, re.S)
    assert block, "README.md: the reference-model table's markers are missing"
    shown = {}
    for line in block.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in expected:
            shown[cells[0]] = cells[1:]
    assert shown == expected
