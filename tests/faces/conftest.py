"""Shared data of the landmark tests: the astronaut photo and its points from each backend."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from tests.conftest import FIXTURES


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()          # 512x512 RGB uint8, one face


@pytest.fixture(scope="session")
def facemesh():
    from faces import FaceMeshDetector

    with FaceMeshDetector() as det:
        yield det


@pytest.fixture(scope="session")
def dlib68():
    from faces import DlibLandmarkDetector

    with DlibLandmarkDetector() as det:
        yield det


@pytest.fixture(scope="session")
def facemesh_points(facemesh, astronaut) -> np.ndarray:
    pts = facemesh.detect(astronaut)
    assert pts is not None
    return pts


@pytest.fixture(scope="session")
def dlib_points(dlib68, astronaut) -> np.ndarray:
    pts = dlib68.detect(astronaut)
    assert pts is not None
    return pts


FFHQ_PHOTOS = FIXTURES / "ffhq-mini" / "photos"
