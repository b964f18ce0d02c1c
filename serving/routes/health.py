"""Liveness and load: ``GET /healthz`` (JSON) and ``GET /metrics`` (Prometheus text format)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from serving.deps import Running, ServiceDep, Settings
from serving.schemas import HealthAnswer, error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and load", response_model=HealthAnswer,
            responses=error_responses(503))
async def healthz(service: Running, config: Settings) -> dict:
    return {"status": "ok", "styles": len(service.styles), "queue": service.pool.queued,
            "running": service.pool.running, "workers": config.workers,
            "jobs_active": service.jobs.active()}


@router.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response,
            responses={200: {"content": {"text/plain": {}},
                             "description": "the Prometheus text format"}})
async def metrics(service: ServiceDep) -> Response:
    body, ctype = service.metrics.render()
    return Response(body, media_type=ctype)
