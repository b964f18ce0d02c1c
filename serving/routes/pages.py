"""The web page: ``GET /`` and ``GET /favicon.ico`` (its script, style sheet and icon are the
``/static`` files that :func:`serving.app.create_app` mounts)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    # browsers ask for /favicon.ico whatever the page says; an SVG answers it
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
