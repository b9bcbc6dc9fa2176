"""The HTTP service: a FastAPI app around one swappable :class:`~signlang.inference.predictor.Predictor`.

Routes (one router each, :mod:`signlang.serve.routes`): ``POST /predict`` (multipart video in field
``video``), ``POST /predict/landmarks`` (JSON ``{"landmarks": T x 75 x 3 or T x 258}``, or an
``application/x-npy`` body holding one clip ``(T, 75, 3) | (T, 225) | (T, 258) | (T, 1662)`` or a
batch ``(N, T, ...)``), ``GET /signs``, ``POST /explain``, ``POST /admin/reload``, ``GET /health``
(liveness + model id/version), ``GET /ready`` (readiness), ``GET /metrics`` (Prometheus), the live
page ``GET /`` and WebSocket ``/ws/live``; OpenAPI docs at ``/docs``.

:func:`create_app` only builds the shared :class:`~signlang.serve.state.ServiceState` (settings,
API keys, model slot, batcher, gates, metrics), the middleware (metrics, CORS, rate limit, API
keys), the error handlers and the lifespan (SIGHUP reload, drain on shutdown), and includes the
routers. Handlers parse and validate, then hand clips to the :class:`~signlang.serve.batching.Batcher`
(a bounded queue with dynamic batching; 503 + ``Retry-After`` only when it is full or a clip
waited past the deadline). Videos and explanations share a smaller gate, since MediaPipe and
gradients are the cost there. Every error is JSON ``{"error": code, "detail": message}``
(:mod:`signlang.serve.schemas`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from signlang import __version__
from signlang.inference.predictor import Predictor
from signlang.serve.batching import Batcher, Gate
from signlang.serve.live import LiveMetrics
from signlang.serve.metrics import MetricsMiddleware, ServiceMetrics
from signlang.serve.model_slot import ModelSlot, probe_clips
from signlang.serve.routes import ROUTERS
from signlang.serve.routes.admin import reload_model
from signlang.serve.schemas import ServiceError, validation_message
from signlang.serve.security import ApiKeyMiddleware, ApiKeys, RateLimitMiddleware
from signlang.serve.settings import ENV_SETTINGS, ServiceSettings
from signlang.serve.state import ServiceState

__all__ = ["ServiceSettings", "app_from_env", "create_app"]


def build_state(predictor: Predictor, settings: ServiceSettings, loader: Callable[[str], Predictor] | None = None) -> ServiceState:
    """The shared state of one app: keys, metrics, the model slot (``loader(path)`` builds a reloaded
    model; default: the same backend as ``predictor``), the batcher and the heavy-work gate; ``predictor`` answers
    one probe clip first (a warm-up: reloaded models are warmed by their verification)."""
    metrics = ServiceMetrics()
    if loader is None:
        backend = predictor.backend

        def loader(path: str) -> Predictor:
            return Predictor(path, backend=backend, threads=1)

    if settings.min_confidence is not None:  # the service's bar, also for every model loaded later
        predictor.min_confidence = settings.min_confidence
        load_model = loader

        def loader(path: str) -> Predictor:
            loaded = load_model(path)
            loaded.min_confidence = settings.min_confidence
            return loaded

    predictor.proba(probe_clips(1))  # warm-up before the port opens: the first request pays no lazy imports or caches
    slot = ModelSlot(predictor, loader)
    metrics.set_model(slot.identity.model_id, slot.identity.model_version, predictor.backend)
    batcher = Batcher(slot, concurrency=settings.concurrency, max_queue=settings.max_queue, max_batch=settings.max_batch,
                      window_ms=settings.batch_window_ms, deadline_s=settings.queue_deadline_s,
                      retry_after_s=settings.retry_after_s, metrics=metrics)
    heavy = Gate(settings.video_concurrency, settings.max_video_queue, deadline_s=settings.video_deadline_s,
                 retry_after_s=settings.retry_after_s, metrics=metrics, name="video")
    return ServiceState(settings=settings, keys=ApiKeys(settings.api_keys()), metrics=metrics, slot=slot, batcher=batcher,
                        heavy=heavy, live_metrics=LiveMetrics(metrics.registry))


def _lifespan(state: ServiceState) -> Callable[[FastAPI], AsyncIterator[None]]:
    """SIGHUP reloads the model in place (main thread only: the CLI); shutdown drains the batcher and
    releases the MediaPipe graphs of video requests."""

    async def reload_quietly() -> None:
        try:
            await reload_model(state, None)
        except ServiceError as exc:
            print(f"signlang serve: SIGHUP reload refused: {exc.detail}", flush=True)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        sighup = False
        if hasattr(signal, "SIGHUP"):
            try:  # only possible in the main thread (the CLI); a server in a test thread has none
                loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_quietly()))
                sighup = True
            except (RuntimeError, ValueError, NotImplementedError):
                pass
        try:
            yield
        finally:
            state.shutting_down = True
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            await state.batcher.stop()
            state.landmarker.close()

    return lifespan


async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"error": "invalid_request", "detail": validation_message(exc.errors())}, status_code=422)


def _native_telemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry only when the process is configured for it (an ``OTEL_*`` variable or
    ``FASTAPI_OTEL_AUTO_CONFIGURE`` at start): otherwise it looks up the providers in the environment on
    every request (6 % of the event loop's time under 50 clients), for spans nobody collects."""
    import inspect

    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:  # (FastAPI before native telemetry)
        return {}
    if any(k.startswith("OTEL_") or k == "FASTAPI_OTEL_AUTO_CONFIGURE" for k in os.environ):
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(predictor: Predictor, settings: ServiceSettings | None = None,
               loader: Callable[[str], Predictor] | None = None) -> FastAPI:
    """Build the FastAPI app serving ``predictor`` under ``settings``.

    ``loader(path)`` builds a new Predictor for ``POST /admin/reload`` and SIGHUP (default: the
    same backend as ``predictor``).
    """
    settings = settings or ServiceSettings()
    state = build_state(predictor, settings, loader)
    if settings.upload_root is not None:
        Path(settings.upload_root).mkdir(parents=True, exist_ok=True)
    app = FastAPI(
        title="signlang",
        version=__version__,
        description="Isolated sign-language recognition: a video or a landmark clip in, the top-k signs out.",
        lifespan=_lifespan(state),
        **_native_telemetry(),
    )
    app.state.service = state
    # Middleware: the last added is the outermost. Metrics see every answer (401/429 included).
    if state.keys:  # (absent when off: one layer less per request)
        app.add_middleware(ApiKeyMiddleware, keys=state.keys)
    if settings.rate_limit_per_s > 0:
        app.add_middleware(RateLimitMiddleware, rate=settings.rate_limit_per_s, burst=settings.burst, metrics=state.metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    for router in ROUTERS:
        app.include_router(router)
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process of ``signlang serve --workers N`` (uvicorn factory).

    Reads ``SIGNLANG_SERVE_SETTINGS``: JSON ``{"model", "backend", "threads", "settings"}``.
    """
    spec = json.loads(os.environ[ENV_SETTINGS])
    backend, threads = spec["backend"], int(spec.get("threads") or 1)
    predictor = Predictor(spec["model"], backend=backend, threads=threads)
    return create_app(predictor, ServiceSettings.from_json(json.dumps(spec["settings"])),
                      loader=lambda path: Predictor(path, backend=backend, threads=threads))
