"""``GET /api/styles``: the styles of ``--styles-dir``, the default and the upload limits."""
from __future__ import annotations

from fastapi import APIRouter

from serving.deps import ServiceDep, Settings
from serving.schemas import StylesAnswer

router = APIRouter(tags=["styles"])


@router.get("/api/styles", summary="The styles of --styles-dir", response_model=StylesAnswer)
async def list_styles(service: ServiceDep, config: Settings) -> dict:
    out = [{"name": s.name, "default": s.name == service.default_style, "step": s.step,
            "image_size": s.image_size, "metrics": s.metrics,
            "pretrained_hash": s.pretrained_hash}
           for s in sorted(service.styles.values(), key=lambda s: s.key)]
    return {"styles": out, "default": service.default_style,
            "limits": {"max_bytes": config.max_bytes, "max_side": config.max_side,
                       "max_video_bytes": config.max_video_bytes,
                       "max_video_frames": config.max_video_frames,
                       "max_animation_pixels": config.max_animation_pixels}}
