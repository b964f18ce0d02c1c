"""The routes' dependencies (FastAPI ``Depends``): the service's settings, its engine and the
shared :class:`serving.service.Service`, all read from ``app.state.service`` (set by
:func:`serving.app.create_app`), so a test can swap any of them with
``app.dependency_overrides``.

``Running`` refuses (503 ``unavailable``) outside the app's lifespan; ``RunningUpload`` does the
same for a route that has not read its body yet, with ``Connection: close``
(:func:`serving.forms.unread_body`). They are coroutines: FastAPI runs a plain function
dependency in a worker thread, a hop these look-ups do not need.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.config import ServeConfig
from serving.engine import Engine
from serving.errors import ApiError
from serving.forms import unread_body
from serving.service import Service


async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_settings(service: Annotated[Service, Depends(get_service)]) -> ServeConfig:
    """The validated ``ServeConfig`` the app was made with."""
    return service.config


async def get_engine(service: Annotated[Service, Depends(get_service)]) -> Engine:
    """The engine the styles run on (``serve.py --engine``); routes load styles through the
    service's LRU cache over it (:meth:`Service.stylizer`)."""
    return service.engine


async def running_service(service: Annotated[Service, Depends(get_service)]) -> Service:
    if not service.running:
        raise ApiError("unavailable", "the service is not running (starting or shutting down)")
    return service


async def running_upload(service: Annotated[Service, Depends(get_service)]) -> Service:
    try:
        return await running_service(service)
    except ApiError as exc:
        raise unread_body(exc) from None


ServiceDep = Annotated[Service, Depends(get_service)]
Settings = Annotated[ServeConfig, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
Running = Annotated[Service, Depends(running_service)]
RunningUpload = Annotated[Service, Depends(running_upload)]
