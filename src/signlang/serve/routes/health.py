"""``GET /health`` (liveness and which model answers), ``GET /ready`` (readiness), ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from signlang import __version__
from signlang.serve.deps import Service
from signlang.serve.schemas import HealthResponse, ReadyResponse
from signlang.serve.state import ServiceState

router = APIRouter()


def health_doc(state: ServiceState) -> dict[str, Any]:
    """The ``/health`` document (also the answer of ``/admin/reload``)."""
    ident = state.slot.identity
    return {"status": "ok", "version": __version__, "model_id": ident.model_id, "model_version": ident.model_version,
            "backend": state.predictor.backend, "n_signs": len(state.predictor.classes), "reloads": state.slot.reloads,
            "worker_pid": os.getpid()}


@router.get("/health", response_model=HealthResponse)
async def health(service: Service) -> dict[str, Any]:
    """Liveness, and which model answers (id = manifest sha256, version = its creation time)."""
    return health_doc(service)


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(service: Service) -> JSONResponse:
    """Readiness: 200 while this worker takes traffic, 503 when shutting down or its queue is full."""
    if service.shutting_down:
        return JSONResponse({"ready": False, "reason": "shutting down"}, status_code=503)
    if service.batcher.queued_clips >= service.settings.max_queue:
        return JSONResponse({"ready": False, "reason": "queue full"}, status_code=503)
    return JSONResponse({"ready": True, "reason": "ok"})


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(service: Service) -> Response:
    """Prometheus text exposition of this app's own registry."""
    body, ctype = service.metrics.render()
    return Response(body, media_type=ctype)
