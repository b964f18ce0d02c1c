"""Fixtures of the web-service tests: a styles folder with two tiny styles, and app builders."""
from __future__ import annotations

import pytest

from tests.serving import write_styles


@pytest.fixture(scope="session")
def styles_dir(tmp_path_factory):
    return write_styles(tmp_path_factory.mktemp("styles"))


@pytest.fixture()
def make_app(styles_dir, tmp_path):
    """``make_app(engine=None, **config)`` -> (app, service); the service's temporary folder is
    made under ``tmp_path / "svc"`` so a test can check that nothing is left there."""
    from serving.app import create_app
    from serving.config import ServeConfig

    (tmp_path / "svc").mkdir()

    def build(engine=None, **cfg):
        cfg.setdefault("device", "cpu")
        config = ServeConfig(styles_dir=styles_dir, tmp_dir=tmp_path / "svc", **cfg)
        app = create_app(config, engine)
        return app, app.state.service

    return build


@pytest.fixture()
def client(make_app):
    from fastapi.testclient import TestClient

    app, _ = make_app()
    with TestClient(app) as c:
        yield c
