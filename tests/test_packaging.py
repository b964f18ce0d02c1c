"""Installing ToonFace must not put its seed-named folders (datasets, test ...) on a user's path."""
from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_pip_install_puts_no_top_level_package_on_the_path():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    st = cfg["tool"]["setuptools"]
    assert st["packages"] == [] and st["py-modules"] == []
    assert "package-dir" not in st and "packages" not in cfg.get("tool", {}).get("setuptools", {}).get("find", {})


def test_requirements_and_pyproject_pin_the_same_packages():
    import re

    def names(lines):
        return {re.split(r"[<>=!;\[ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
                for line in lines if line.strip() and not line.strip().startswith(("#", "-r"))}

    req = names((ROOT / "requirements.txt").read_text().splitlines()
                + (ROOT / "requirements-core.txt").read_text().splitlines())
    proj = names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert req == proj
