"""The HTTP service: a FastAPI app around one swappable :class:`~signlang.inference.predictor.Predictor`.

Routes: ``POST /predict`` (multipart video in field ``video``), ``POST /predict/landmarks``
(JSON ``{"landmarks": T x 75 x 3 or T x 258}``, or an ``application/x-npy`` body holding one clip
``(T, 75, 3) | (T, 225) | (T, 258) | (T, 1662)`` or a batch ``(N, T, ...)``), ``POST /explain``
(:mod:`signlang.serve.explain_route`), ``POST /admin/reload``, ``GET /signs``, ``GET /health``
(liveness + model id/version), ``GET /ready`` (readiness), ``GET /metrics`` (Prometheus),
OpenAPI docs at ``/docs``.

Design: handlers parse and validate, then hand clips to the :class:`~signlang.serve.batching.Batcher`
(a bounded queue with dynamic batching; 503 + ``Retry-After`` only when it is full or a clip
waited past the deadline). Videos and explanations share a smaller gate, since MediaPipe and
gradients are the cost there. Every error is JSON ``{"error": code, "detail": message}``
(:mod:`signlang.serve.schemas`). Routers added by other modules read the shared
:class:`~signlang.serve.state.ServiceState` from ``app.state.service``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from signlang import __version__
from signlang.inference.policy import DetectionError, error_code
from signlang.inference.predictor import Predictor
from signlang.landmarks.extract import Landmarker
from signlang.landmarks.video import VideoReadError
from signlang.serve.batching import Batcher, Gate
from signlang.serve.explain_route import router as explain_router
from signlang.serve.live import install as install_live
from signlang.serve.metrics import MetricsMiddleware, ServiceMetrics
from signlang.serve.model_slot import ModelSlot, ReloadError
from signlang.serve.schemas import (
    LANDMARK_SCHEMA,
    NPY_MEDIA_TYPE,
    BatchResponse,
    HealthResponse,
    LandmarkRequest,
    PredictionResponse,
    ReadyResponse,
    ReloadRequest,
    ServiceError,
    error_responses,
    parse_npy,
    validation_message,
)
from signlang.serve.security import ApiKeyMiddleware, RateLimitMiddleware
from signlang.serve.settings import ENV_SETTINGS, ServiceSettings
from signlang.serve.state import ServiceState
from signlang.serve.upload import UploadError, UploadTooLarge, VideoRefused, check_video_limits, receive_upload

_K = Annotated[int, Query(ge=1, le=100, description="How many signs to return.")]


def _code(exc: BaseException | None) -> str:
    """The JSON error code of a clip the predictor refused: its policy's (``nothing_detected``) or ``invalid_request``."""
    return error_code(exc) if isinstance(exc, DetectionError) else "invalid_request"


def _hide(message: str, path: str | None) -> str:
    return message.replace(path, "uploaded file") if path else message


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 past ``limit`` bytes (by header first, then while reading)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ServiceError(413, "too_large", f"request body of {length} bytes exceeds the limit of {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ServiceError(413, "too_large", f"request body exceeds the limit of {limit} bytes")
    return bytes(raw)


def create_app(predictor: Predictor, settings: ServiceSettings | None = None,
               loader: Callable[[str], Predictor] | None = None) -> FastAPI:
    """Build the FastAPI app serving ``predictor`` under ``settings``.

    ``loader(path)`` builds a new Predictor for ``POST /admin/reload`` and SIGHUP (default: the
    same backend as ``predictor``).
    """
    settings = settings or ServiceSettings()
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

    slot = ModelSlot(predictor, loader)
    landmarker = Landmarker()  # MediaPipe graphs kept between uploads, one per concurrent request
    metrics.set_model(slot.identity.model_id, slot.identity.model_version, predictor.backend)
    batcher = Batcher(slot, concurrency=settings.concurrency, max_queue=settings.max_queue, max_batch=settings.max_batch,
                      window_ms=settings.batch_window_ms, deadline_s=settings.queue_deadline_s,
                      retry_after_s=settings.retry_after_s, metrics=metrics)
    heavy = Gate(settings.video_concurrency, settings.max_video_queue, deadline_s=settings.video_deadline_s,
                 retry_after_s=settings.retry_after_s, metrics=metrics, name="video")
    state = ServiceState(settings=settings, metrics=metrics, slot=slot, batcher=batcher, heavy=heavy)
    upload_root = settings.upload_root
    if upload_root is not None:
        Path(upload_root).mkdir(parents=True, exist_ok=True)

    async def reload_model(path: str | None) -> dict[str, Any]:
        try:
            identity = await to_thread.run_sync(slot.reload, path)
        except ReloadError as exc:
            metrics.reloads.labels("refused").inc()
            raise ServiceError(422, "reload_refused", f"{exc}; the previous model keeps serving") from None
        except RuntimeError as exc:
            raise ServiceError(409, "reload_running", str(exc)) from None
        metrics.reloads.labels("ok").inc()
        metrics.set_model(identity.model_id, identity.model_version, slot.predictor.backend)
        return _health(state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        sighup = False
        if hasattr(signal, "SIGHUP"):
            try:  # only possible in the main thread (the CLI); a server in a test thread has none
                loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_quietly()))
                sighup = True
            except (RuntimeError, ValueError, NotImplementedError):
                pass
        try:
            yield
        finally:
            state.shutting_down = True
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            await batcher.stop()

    async def _reload_quietly() -> None:
        try:
            await reload_model(None)
        except ServiceError as exc:
            print(f"signlang serve: SIGHUP reload refused: {exc.detail}", flush=True)

    app = FastAPI(
        title="signlang",
        version=__version__,
        description="Isolated sign-language recognition: a video or a landmark clip in, the top-k signs out.",
        lifespan=lifespan,
    )
    app.state.service = state
    app.state.predictor = predictor  # the model at start-up (state.slot.predictor is the one serving now)
    app.state.settings = settings
    app.state.metrics = metrics
    # Middleware: the last added is the outermost. Metrics see every answer (401/429 included).
    keys = settings.api_keys()
    if keys:  # (absent when off: one layer less per request)
        app.add_middleware(ApiKeyMiddleware, keys=keys)
    if settings.rate_limit_per_s > 0:
        app.add_middleware(RateLimitMiddleware, rate=settings.rate_limit_per_s, burst=settings.burst, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid_request", "detail": validation_message(exc.errors())}, status_code=422)

    def _k(k: int) -> int:
        return min(k, len(slot.predictor.classes))

    @app.post(
        "/predict/landmarks",
        response_model=PredictionResponse | BatchResponse,
        responses=error_responses(413, 415, 422, 503),
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": LANDMARK_SCHEMA},
            NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary",
                                        "description": "A .npy of one clip (T, 75, 3) | (T, 225) | (T, 258) | (T, 1662), "
                                                       "or a batch (N, T, ...) answered as {results: [...]} in order."}},
        }}},
    )
    async def predict_landmarks(request: Request, k: _K = 5) -> Any:
        """Classify a landmark clip (JSON or ``.npy``) or a batch of clips (``.npy`` of ``(N, T, ...)``)."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await _read_body(request, settings.max_upload_bytes)
        if ctype == NPY_MEDIA_TYPE:
            try:
                clips, batch = parse_npy(raw)
            except ValueError as exc:
                raise ServiceError(422, "invalid_request", str(exc)) from None
        elif ctype in ("application/json", ""):
            # pydantic-core parses and validates the raw body in one pass (about twice as fast as
            # json.loads followed by validation on a 64-frame clip).
            try:
                clips, batch = [LandmarkRequest.model_validate_json(raw).landmarks], False
            except ValidationError as exc:
                raise ServiceError(422, "invalid_request", validation_message(exc.errors())) from None
        else:
            raise ServiceError(415, "unsupported_media_type", f"Content-Type {ctype!r}: send application/json or {NPY_MEDIA_TYPE}")
        preds, errors = await batcher.submit(clips, _k(k))  # the predictor's policy decides (nobody, no hands, ...)
        if not batch:
            if errors or preds[0] is None:
                exc = errors.get(0)
                raise ServiceError(422, _code(exc), str(exc) if exc is not None else "the clip could not be classified")
            return JSONResponse(preds[0].to_dict())
        results: list[dict[str, Any]] = []
        for i, p in enumerate(preds):
            if p is None:
                exc = errors.get(i)
                results.append({"index": i, "prediction": None, "error": {"error": _code(exc), "detail": str(exc) if exc else "failed"}})
            else:
                results.append({"index": i, "prediction": p.to_dict(), "error": None})
        return JSONResponse({"results": results})

    @app.post(
        "/predict",
        response_model=PredictionResponse,
        responses=error_responses(413, 415, 422, 503),
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["video"],
            "properties": {"video": {"type": "string", "format": "binary", "description": "The video file."}},
        }}}}},
    )
    async def predict_video(request: Request, k: _K = 5) -> Any:
        """Classify an uploaded video (multipart form field ``video``)."""
        folder = Path(tempfile.mkdtemp(prefix="signlang-upload-", dir=upload_root))  # mode 0700
        try:
            try:
                upload = await receive_upload(request, field="video", folder=folder, max_bytes=settings.max_upload_bytes)
                await to_thread.run_sync(lambda: check_video_limits(
                    upload.path, max_side=settings.max_video_side, max_frames=settings.max_video_frames,
                    max_seconds=settings.max_video_seconds))
            except UploadTooLarge as exc:
                raise ServiceError(413, "too_large", str(exc)) from None
            except VideoRefused as exc:
                raise ServiceError(exc.status, "video_refused", _hide(str(exc), str(upload.path))) from None
            except UploadError as exc:
                raise ServiceError(422, "bad_upload", str(exc)) from None
            hide = str(upload.path)
            async with heavy:
                metrics.in_flight.inc()
                try:
                    got = await to_thread.run_sync(landmarker, upload.path)  # the one video -> landmarks function
                    with slot.use() as p:
                        result = await to_thread.run_sync(lambda: p.predict_landmarks(got.landmarks, _k(k), name=str(upload.path),
                                                                                      timings_ms=got.timings_ms))
                except DetectionError as exc:
                    raise ServiceError(422, "nothing_detected", _hide(str(exc), hide)) from None
                except VideoReadError as exc:
                    raise ServiceError(415, "unreadable_video", _hide(str(exc), hide)) from None
                finally:
                    metrics.in_flight.dec()
            metrics.observe_timings(result.timings_ms)
            return JSONResponse(result.to_dict())
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @app.get("/signs")
    async def signs() -> dict[str, Any]:
        """The vocabulary, in the model's class order."""
        classes = list(slot.predictor.classes)
        return {"signs": classes, "count": len(classes)}

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        """Liveness, and which model answers (id = manifest sha256, version = its creation time)."""
        return _health(state)

    @app.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
    async def ready() -> JSONResponse:
        """Readiness: 200 while this worker takes traffic, 503 when shutting down or its queue is full."""
        if state.shutting_down:
            return JSONResponse({"ready": False, "reason": "shutting down"}, status_code=503)
        if batcher.queued_clips >= settings.max_queue:
            return JSONResponse({"ready": False, "reason": "queue full"}, status_code=503)
        return JSONResponse({"ready": True, "reason": "ok"})

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of this app's own registry."""
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    @app.post("/admin/reload", response_model=HealthResponse, responses=error_responses(403, 409, 422))
    async def admin_reload(request: Request, body: ReloadRequest | None = None) -> Any:
        """Load a bundle (default: the folder served now), verify it (sha256, parity, probe) and swap it in.

        A refused bundle leaves the old one serving. Without API keys only loopback clients may call it.
        """
        if not settings.allow_reload:
            raise ServiceError(403, "forbidden", "model reload is disabled on this server")
        if not settings.api_keys() and not _is_loopback(request):
            raise ServiceError(403, "forbidden", "without API keys, /admin/reload is only open to loopback clients")
        return JSONResponse(await reload_model(body.model if body else None))

    app.include_router(explain_router)  # POST /explain
    install_live(app)  # GET / (the live page), /static/..., /live/config, WebSocket /ws/live
    return app


def _health(state: ServiceState) -> dict[str, Any]:
    ident = state.slot.identity
    return {"status": "ok", "version": __version__, "model_id": ident.model_id, "model_version": ident.model_version,
            "backend": state.predictor.backend, "n_signs": len(state.predictor.classes), "reloads": state.slot.reloads,
            "worker_pid": os.getpid()}


def app_from_env() -> FastAPI:
    """The app of one worker process of ``signlang serve --workers N`` (uvicorn factory).

    Reads ``SIGNLANG_SERVE_SETTINGS``: JSON ``{"model", "backend", "threads", "settings"}``.
    """
    spec = json.loads(os.environ[ENV_SETTINGS])
    backend, threads = spec["backend"], int(spec.get("threads") or 1)
    predictor = Predictor(spec["model"], backend=backend, threads=threads)
    return create_app(predictor, ServiceSettings.from_json(json.dumps(spec["settings"])),
                      loader=lambda path: Predictor(path, backend=backend, threads=threads))
