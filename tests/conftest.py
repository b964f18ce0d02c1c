"""Shared test fixtures: the repository root, ../shared/fixtures (skipped when absent), and
small generated data sets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"

# Tests run on 2 cores next to other work: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def fixtures_dir(*parts: str) -> Path:
    """Path under ../shared/fixtures, or skip the test with the reason."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} absent: the shared fixtures are not beside this checkout")
    return path


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> tuple[Path, Path]:
    """12 astronaut photos and 12 drawn cartoons at 64x64 (built once per session)."""
    from datasets.demo import build_demo_data

    return build_demo_data(tmp_path_factory.mktemp("demo"), 12, 12, size=64)
