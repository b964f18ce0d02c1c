"""The service's routes, one ``APIRouter`` per resource; :func:`serving.app.create_app`
includes them all.

- :mod:`serving.routes.pages`: ``GET /`` (the web page), ``GET /favicon.ico``.
- :mod:`serving.routes.styles`: ``GET /api/styles``.
- :mod:`serving.routes.images`: ``POST /api/cartoonize``.
- :mod:`serving.routes.videos`: ``POST /api/videos``, ``GET /api/jobs/{job_id}``,
  ``GET /api/jobs/{job_id}/result``, ``DELETE /api/jobs/{job_id}``.
- :mod:`serving.routes.health`: ``GET /healthz``, ``GET /metrics``.

Each route takes what it needs as dependencies (:mod:`serving.deps`: the settings, the
service, the engine) and declares its answer and error models (:mod:`serving.schemas`);
:func:`include` adds them to the app.
"""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter

# What a route carries over when it is added to an app (APIRouter.add_api_route's options).
_ROUTE_OPTIONS = ("response_model", "status_code", "tags", "dependencies", "summary",
                  "description", "response_description", "responses", "deprecated", "methods",
                  "operation_id", "response_model_include", "response_model_exclude",
                  "response_model_by_alias", "response_model_exclude_unset",
                  "response_model_exclude_defaults", "response_model_exclude_none",
                  "include_in_schema", "response_class", "name", "callbacks", "openapi_extra",
                  "generate_unique_id_function")


def include(app: FastAPI, router: APIRouter) -> None:
    """Add ``router``'s routes to ``app`` as the app's own routes.

    ``app.include_router`` (FastAPI >= 0.16x) keeps an included router as one opaque entry of
    ``app.routes``; the request metrics take their ``route`` label from the app's route
    templates (a fixed set, tests/serving/test_limits.py), and ``app.dependency_overrides``
    reaches a route only through its app. Each route is re-made on the app, as
    ``include_router`` used to do; the router's tags, responses and dependencies are already
    in each of its routes. Raises TypeError for a route that is not an ``APIRoute``.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only APIRoute routes are included")
        app.router.add_api_route(route.path, route.endpoint,
                                 **{k: getattr(route, k) for k in _ROUTE_OPTIONS})
